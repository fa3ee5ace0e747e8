"""The dataset-examples index against brute force on timm's model: forward hooks on every block, every image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.channels import build_index, read_manifest
from explorer.channels.index.folder import decode, list_files
from explorer.channels.index.forward import ChannelMaxima, locate
from explorer.channels.index.reader import ChannelIndex
from explorer.concepts.classes import ClassTable
from explorer.nets import make_config
from explorer.nets.loading import load_weights
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.preprocessing import normalise, preprocessing_for

timm = pytest.importorskip("timm")

K = 5
NEAR = 1e-4  # relative: two maxima this close are a tie that float rounding may order either way


@pytest.fixture(scope="module")
def network():
    return load_weights("random", make_config("released"))


@pytest.fixture(scope="module")
def index(image_folder, network, tmp_path_factory):
    model, info = network
    out = tmp_path_factory.mktemp("index") / "examples"
    build_index(image_folder, out, model, info, top_k=K, batch_size=5, dtype=torch.float32, classes="folders")
    return ChannelIndex(out)


@pytest.fixture(scope="module")
def peer_run(image_folder, network, index):
    """Per block, for every image: each channel's maximum, its first position and whether another position
    comes within NEAR of it; from forward hooks on timm's Inception-ResNet-v2 carrying the same weights. And the
    peer's logits and every block's output of each image (for the atlas vectors)."""
    model, _ = network
    peer = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    peer.load_state_dict(model.state_dict())
    found: dict[str, list] = {name: [] for name in index.blocks}

    def keep(name):
        def hook(_module, _inputs, output):
            flat = output.flatten(2)
            top = flat.amax(2)
            scale = 1e-5 * float(top.abs().max())
            close = (flat >= (top - NEAR * top.abs() - scale)[..., None]).sum(2) > 1
            found[name].append((top, flat.argmax(2), close))

        return hook

    atlas = index.manifest["atlas"]["blocks"]
    maps: dict[str, list] = {name: [] for name in atlas}
    handles = [peer.get_submodule(name).register_forward_hook(keep(name)) for name in index.blocks]
    handles += [peer.get_submodule(n).register_forward_hook(lambda _m, _i, o, n=n: maps[n].append(o)) for n in atlas]
    preprocessing = preprocessing_for("released")
    logits = []
    with torch.inference_mode():
        for path in index.images:
            crop = decode(image_folder, 0, path, preprocessing).crop
            logits.append(peer(normalise(torch.from_numpy(crop.copy())[None], preprocessing)))
    for handle in handles:
        handle.remove()
    blocks = {name: [torch.cat(parts).numpy() for parts in zip(*rows, strict=True)] for name, rows in found.items()}
    return blocks, torch.cat(logits), {name: torch.cat(outputs) for name, outputs in maps.items()}


@pytest.fixture(scope="module")
def brute_force(peer_run):
    return peer_run[0]


def test_the_manifest_lists_the_images_the_skipped_files_and_each_block(index, image_folder):
    manifest = index.manifest
    files = list_files(image_folder)
    assert len(files) == 23
    assert [e["path"] for e in manifest["skipped"]] == ["broken/truncated.jpg", "notes.txt"]
    assert "damaged or truncated" in manifest["skipped"][0]["reason"]
    assert index.images == [f for f in files if f not in ("broken/truncated.jpg", "notes.txt")]
    assert all(len(e["digest"]) == 64 for e in manifest["images"])
    assert manifest["k"] == K and manifest["variant"] == "released" and manifest["weights"] == "random:0"
    blocks = {b["name"]: b for b in manifest["blocks"]}
    assert list(blocks)[:2] == ["conv2d_1a", "conv2d_2a"] and len(blocks) == 51
    assert blocks["repeat_1.0"]["channels"] == 1088 and blocks["repeat_1.0"]["grid"] == [17, 17]
    assert blocks["conv2d_1a"]["receptive_field"] == {"size": 3, "stride": 2, "start": 1.0}


def test_every_channel_of_every_block_equals_brute_force_on_timm(index, brute_force):
    compared = positions_compared = swapped = 0
    for name, (maxima, where, close) in brute_force.items():
        block = index.block(name)
        n = maxima.shape[0]
        order = np.lexsort((np.broadcast_to(np.arange(n)[:, None], maxima.shape), -maxima), axis=0)[:K]  # (K, C)
        expected = np.take_along_axis(maxima, order, 0).T  # (C, K): ties by image order
        # The index runs the folded copy (batch norms inside the convolutions): float rounding differs from
        # timm's by about 1e-6 of a block's largest maximum, which is what near-zero maxima are measured against.
        scale = 1e-5 * float(np.abs(expected).max())
        np.testing.assert_allclose(block.values, expected, rtol=1e-3, atol=scale, err_msg=name)
        ours = np.asarray(block.images)
        differ = ours != order.T
        # Where the order differs, our image's maximum must tie with the one brute force put there.
        channel = np.nonzero(differ)[0]
        np.testing.assert_allclose(
            maxima[ours[differ], channel], expected[differ], rtol=NEAR * 2, atol=scale, err_msg=name
        )
        swapped += int(differ.sum())
        same = ~differ & ~close[order.T, np.arange(maxima.shape[1])[:, None]]
        grid = index.blocks[name]["grid"][1]
        peer_rows_cols = np.stack(np.divmod(where[order.T, np.arange(maxima.shape[1])[:, None]], grid), -1)
        assert (np.asarray(block.positions)[same] == peer_rows_cols[same]).all(), name
        compared += differ.size
        positions_compared += int(same.sum())
    assert compared == sum(b["channels"] for b in index.manifest["blocks"]) * K
    assert swapped < compared * 0.01, f"{swapped} of {compared} slots ordered otherwise than brute force"
    assert positions_compared > compared * 0.5


def test_channel_means_are_the_mean_over_images_and_grid(index, network, image_folder):
    model, _ = network
    preprocessing = preprocessing_for("released")
    crops = [decode(image_folder, 0, path, preprocessing).crop for path in index.images]
    with torch.inference_mode():
        _, outputs = model.forward_intermediates(normalise(torch.from_numpy(np.stack(crops)), preprocessing))
    for name in ("conv2d_1a", "repeat.3", "mixed_7a", "conv2d_7b"):
        np.testing.assert_allclose(index.block(name).mean, outputs[name].mean((0, 2, 3)).numpy(), rtol=1e-4, atol=1e-6)


def test_examples_carry_the_box_their_maximum_sees(index):
    examples = index.examples("maxpool_5a", 7)
    assert [e.rank for e in examples] == list(range(K))
    values = [e.value for e in examples]
    assert values == sorted(values, reverse=True)
    field = index.field("maxpool_5a")
    for e in examples:
        left, top, right, bottom = e.box
        centre = field.start + field.stride * np.array([e.column, e.row])
        assert left <= centre[0] < right and top <= centre[1] < bottom
        assert right - left <= field.size and bottom - top <= field.size
        assert 0 <= left < right <= 299 and 0 <= top < bottom <= 299
    assert read_manifest(index.folder) == index.manifest


def test_positions_located_after_the_merge_give_the_same_index(image_folder, tmp_path):
    """The GPU's way of finding positions (only for the maxima that enter the top K, from the batch's kept maps)
    gives the index that finding every position in the forward gives, number for number. Batches of 3 over 21
    images: entries come in, stay and are pushed out."""
    model, info = load_weights("random", make_config("released", repeats=(1, 1, 1)))
    found = {}
    for later in (False, True):
        out = tmp_path / f"later-{later}"
        build_index(image_folder, out, model, info, top_k=4, batch_size=3, dtype=torch.float32, locate_later=later)
        found[later] = ChannelIndex(out)
    assert found[True].blocks == found[False].blocks
    for name in found[False].blocks:
        inline, later = found[False].block(name), found[True].block(name)
        for part in ("values", "images", "positions", "mean"):
            np.testing.assert_array_equal(getattr(later, part), getattr(inline, part), err_msg=f"{name} {part}")


def test_locating_every_slot_finds_the_positions_locating_the_new_ones_finds(image_folder):
    """The GPU's way (a map read for every top-K slot, nothing asked of the device) against the CPU's (only the
    new entries' maps, counted first), on real images' block outputs; both against each map's own argmax."""
    model, _ = load_weights("random", make_config("released", repeats=(1, 1, 1)))
    preprocessing = preprocessing_for("released")
    paths = list_files(image_folder)
    crops = [decode(image_folder, i, p, preprocessing).crop for i, p in enumerate(paths)]
    x = normalise(torch.from_numpy(np.stack([c for c in crops if c is not None][:4])), preprocessing)
    with torch.inference_mode():
        found = ChannelMaxima(inference_copy(model), keep_maps=True).eval()(x)
    maxima, maps = found["maxima"], found["maps"]
    generator = torch.Generator().manual_seed(0)
    channels = maxima.shape[1]
    new = torch.rand(channels, K, generator=generator) < 0.3
    places = torch.randint(0, x.shape[0], (channels, K), generator=generator)
    sparse = locate(maps, new, places)
    every = locate(maps, new, places, every_slot=True)
    assert torch.equal(every[new], sparse[new]) and (every[~new] == 0).all() and (sparse[~new] == 0).all()
    flat = torch.cat([m.flatten(2).argmax(2) for m in maps], 1)  # (B, C): each map's first maximum
    assert torch.equal(every[new], flat[places[new], new.nonzero()[:, 0]])


def test_class_tables_equal_brute_force_on_timm(index, brute_force):
    """Every class's mean of every channel's maximum, and every channel's top class, against timm's maxima grouped
    by the image's class folder (the top-level images have none; broken/ holds no readable image)."""
    table = ClassTable(index)
    labels = [path.split("/")[0] if "/" in path else None for path in index.images]
    names = sorted({label for label in labels if label is not None})
    assert table.names == names == ["crops", "flipped", "generated"]
    assert [entry.get("label") for entry in index.manifest["images"]] == labels
    members = [np.array([label == name for label in labels]) for name in names]
    assert table.counts.tolist() == [int(m.sum()) for m in members] == [6, 6, 3]
    near = 0
    for name, (maxima, _, _) in brute_force.items():
        expected = np.stack([maxima[m].astype(np.float64).mean(0) for m in members])
        scale = 1e-5 * float(np.abs(expected).max())
        np.testing.assert_allclose(table.means(name), expected, rtol=1e-4, atol=scale, err_msg=name)
        best = expected.argmax(0)
        ours = [table.classes_of(name, channel, top=1)[0] for channel in range(maxima.shape[1])]
        for channel, row in enumerate(ours):
            if row.name != names[best[channel]]:  # a tie to rounding: the two means must agree
                near += 1
                assert abs(row.mean - expected[best[channel], channel]) <= 2e-4 * abs(row.mean) + scale, name
            assert row.count == int(members[names.index(row.name)].sum())
        top = table.channels_of(name, "flipped", top=5)
        np.testing.assert_allclose([c.mean for c in top], np.sort(expected[1])[::-1][:5], rtol=1e-4, atol=scale)
    assert near < 0.01 * sum(b["channels"] for b in index.manifest["blocks"])


def test_each_images_top_classes_and_atlas_vectors_are_timms(index, peer_run):
    _, logits, maps = peer_run
    records = np.load(index.folder / "images.npz")
    probabilities = logits.softmax(1)
    expected = probabilities.topk(5, 1)
    np.testing.assert_allclose(records["top_probabilities"], expected.values.numpy(), rtol=1e-4, atol=1e-6)
    agree = (records["top_classes"] == expected.indices.numpy()).mean()
    assert agree > 0.95  # random weights: near-equal probabilities may swap places
    assert index.manifest["head_classes"][:2] == ["tench", "goldfish"]
    for name, outputs in maps.items():
        atlas = np.load(index.folder / f"atlas-{name}.npz")
        rows, cols = atlas["positions"][:, 0], atlas["positions"][:, 1]
        assert (atlas["images"] == np.repeat(np.arange(len(index.images)), 4)).all()
        peer = outputs[torch.from_numpy(atlas["images"]).long(), :, rows, cols].numpy()
        np.testing.assert_allclose(atlas["vectors"].astype(np.float32), peer, rtol=2e-3, atol=2e-3 * np.abs(peer).max())
