"""The New head lesson on real photographs: the loss falls from the first step, an image counts once, and a file
that cannot be read is named."""

from __future__ import annotations

import pytest

from explorer.lessons.transfer import Example, TransferError, check_images, extract, pooled_features, train_head
from explorer.nets import make_config
from explorer.nets.loading import load_weights
from explorer.runtime.images import load_image, sample_paths


@pytest.fixture(scope="module")
def features():
    model, _ = load_weights("random", make_config("released"))
    return pooled_features(model, [load_image(p).image for p in sample_paths()])


@pytest.mark.parametrize("labels", [["a", "a", "b", "b", "b", "a"], ["a", "b", "a", "b", "c", "c"]])
def test_the_loss_falls_from_the_first_step(features, labels):
    head = train_head([Example(label, str(i), f) for i, (label, f) in enumerate(zip(labels, features, strict=True))])
    losses = head.losses
    assert max(losses) == losses[0], losses[:5]  # no jump before it falls (Adam at 0.05 went 0.7 -> 29)
    assert losses[-1] < 0.1 * losses[0]
    assert [head.classify(f)[0][0] for f in features] == labels  # it fits what it was trained on


def test_an_image_counts_once():
    cat, coffee = (p.read_bytes() for p in sample_paths() if p.stem in ("cat", "coffee"))
    with pytest.raises(TransferError, match=r"the same image is in class “warm” and in class “sky”: an image counts"):
        check_images({"warm": [("cat (sample)", cat)], "sky": [("cat (sample)", cat)]})
    with pytest.raises(TransferError, match=r"twice in class “warm” \(as “cat \(sample\)” and “kitty.jpg”\)"):
        check_images({"warm": [("cat (sample)", cat), ("kitty.jpg", cat)], "sky": [("coffee", coffee)]})
    check_images({"warm": [("cat", cat)], "sky": [("coffee", coffee)]})


def test_a_file_that_cannot_be_read_is_named_with_its_class(features):
    cat = next(p for p in sample_paths() if p.stem == "cat").read_bytes()
    classes = {"warm": [("cat", cat)], "sky": [("holiday.jpg", cat[: len(cat) // 3]), ("notes.txt", b"not an image")]}
    seen = []

    def features_of(data: bytes):
        load_image(data)  # raises ImageError for what is not an image
        return features[0]

    with pytest.raises(TransferError, match=r"^class “sky”, “holiday.jpg”: ") as raised:
        extract(classes, features_of, lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3)] and "\n" not in str(raised.value)
