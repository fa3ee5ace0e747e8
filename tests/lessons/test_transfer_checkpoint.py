"""The New head page's checkpoint: the frozen network with the trained head, loaded again as weights."""

from __future__ import annotations

import torch

from explorer.lessons.transfer import Example, head_checkpoint, pooled_features, train_head
from explorer.nets import make_config, model_from_config
from explorer.nets.loading import load_weights
from explorer.nets.weights import load_weights_file
from explorer.runtime import Engine
from explorer.runtime.images import load_image, sample_paths


def test_the_checkpoint_loads_with_its_classes_and_gives_the_heads_answers(tmp_path):
    model, info = load_weights("random", make_config("released"))
    images = [load_image(p).image for p in sample_paths()]
    features = pooled_features(model, images)
    classes = ["animals", "animals", "things", "things", "things", "animals"]
    head = train_head([Example(c, f"{n}", f) for n, (c, f) in enumerate(zip(classes, features, strict=True))])
    path = tmp_path / "new-head.safetensors"
    path.write_bytes(head_checkpoint(model, head, info.identity))
    loaded, loaded_info = load_weights_file(path, make_config("released"))
    assert loaded.config.num_classes == 2 and loaded_info.class_names == head.classes
    with torch.no_grad():
        logits = loaded(torch.zeros(1, 3, 299, 299))
    assert logits.shape == (1, 2)
    expected = head.probabilities(features)
    engine = Engine(loaded, loaded_info, device="cpu", cpu_dtype=torch.float32)
    for image, want in zip(images, expected, strict=True):
        top = engine.run(image).top5
        assert top[0].label == head.classes[int(want.argmax())]
        assert abs(top[0].probability - float(want.max())) < 1e-3


def test_a_new_head_replaces_a_keras_models_hidden_layers_too(tmp_path):
    """A Keras model with a hidden Dense layer: the new head takes the pooled features, so the checkpoint is the
    released network with one classifier, not the old hidden layer feeding a head it was not trained with."""
    model = model_from_config(make_config("released", head_hidden=(64,), num_classes=3), seed=0)
    images = [load_image(p).image for p in sample_paths()[:2]]
    features = pooled_features(model, images)
    head = train_head([Example(c, c, f) for c, f in zip(("cat", "dog"), features, strict=True)])
    path = tmp_path / "new-head.safetensors"
    path.write_bytes(head_checkpoint(model, head, "a Keras file"))
    loaded, _ = load_weights_file(path, make_config("released"))
    assert loaded.config.head_hidden == () and loaded.head_hidden is None
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        pooled = model.global_pool(model.forward_features(x))  # the backbone is the same network's
        torch.testing.assert_close(loaded(x).softmax(1), head.probabilities(pooled))


def test_the_frozen_count_leaves_out_a_keras_heads_hidden_layers():
    from explorer.lessons.transfer import head_shapes

    plain = head_shapes(model_from_config(make_config("released"), seed=None, device="meta"), 2)
    keras = head_shapes(model_from_config(make_config("released", head_hidden=(64,), num_classes=3), device="meta"), 2)
    assert keras.frozen_params == plain.frozen_params == 55_843_464 - 1_537_000  # the backbone's alone
