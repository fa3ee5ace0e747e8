"""The running top-K's merge by rounds (what a compiled build on a GPU runs, as one kernel) against torch.topk."""

import torch

from explorer.channels.index.top import NO_IMAGE, ChannelTop, sort_keys, strongest


def test_the_merge_by_rounds_keeps_what_topk_keeps_ties_and_empty_slots_included():
    generator = torch.Generator().manual_seed(0)
    channels, k, batch = 300, 9, 7  # fewer images than K at first: empty slots are taken and left
    keys = ChannelTop.empty(channels, k).keys
    empty = keys[0, 0].item()
    for b in range(6):
        maxima = torch.randint(0, 4, (channels, batch), generator=generator).float()  # many equal maxima
        new = sort_keys(maxima, torch.arange(b * batch, (b + 1) * batch)[None, :])
        expected, expected_columns = strongest(keys, new, k)
        taken, columns = strongest(keys, new, k, by_rounds=True)
        assert torch.equal(taken, expected)
        real = taken != empty
        assert torch.equal(columns[real], expected_columns[real])  # unique keys: the same entry
        both = torch.cat([keys, new], 1)
        assert torch.equal(both.gather(1, columns), taken)  # empty slots: one of them, each once
        assert (columns.sort(1).values.diff(1) > 0).all()
        keys = taken
    assert (ChannelTop(keys, torch.zeros_like(keys), torch.zeros(channels)).images < NO_IMAGE).all()
