"""Keras' own InceptionResNetV2 (torch backend, in a process of its own) as the oracle of the .keras conversion."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from explorer.nets import make_config
from explorer.nets.loading import load_file
from explorer.nets.weights import WeightsError
from explorer.runtime.images import load_image, sample_paths
from explorer.runtime.preprocessing import crop_for_network

if importlib.util.find_spec("keras") is None:  # imported only in its own process, on the torch backend
    pytest.skip("keras is not installed (the test extras have it)", allow_module_level=True)

#: Three Keras models with random weights and batch-norm statistics away from the identity, saved as .keras,
#: and what Keras' predict says for the photographs: the 1000-class top, include_top=False, a 5-class head.
KERAS_SCRIPT = r"""
import sys, numpy as np, keras
folder = sys.argv[1]
pixels = np.load(f"{folder}/pixels.npy")  # (N, 299, 299, 3) uint8
x = pixels.astype("float32") / 127.5 - 1  # keras.applications.inception_resnet_v2.preprocess_input
rng = np.random.default_rng(0)
def randomise(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, var = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.1, beta.shape), rng.normal(0, 0.1, mean.shape),
                               rng.uniform(0.5, 1.5, var.shape)])
top = keras.applications.InceptionResNetV2(weights=None)
randomise(top)
backbone = keras.applications.InceptionResNetV2(weights=None, include_top=False, input_shape=(299, 299, 3))
randomise(backbone)
pooled = keras.layers.GlobalAveragePooling2D()(backbone.output)
head = keras.Model(backbone.input, keras.layers.Dense(5, activation="softmax")(pooled))
for name, model in (("top", top), ("backbone", backbone), ("head", head)):
    model.save(f"{folder}/{name}.keras")
    model.save_weights(f"{folder}/{name}.weights.h5")
    np.save(f"{folder}/{name}.npy", model.predict(x, verbose=0))
"""


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    crops = [np.asarray(crop_for_network(load_image(p).image)) for p in sample_paths()[:3]]
    np.save(folder / "pixels.npy", np.stack(crops))
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(folder)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def ours(folder, name: str, labels=None, suffix=".keras"):
    model, info = load_file(folder / f"{name}{suffix}", make_config("released"), labels)
    x = torch.from_numpy(np.load(folder / "pixels.npy")).permute(0, 3, 1, 2).float() / 127.5 - 1
    return model, info, x


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_the_1000_class_top_gives_keras_predictions(keras_files, suffix):
    model, info, x = ours(keras_files, "top", suffix=suffix)
    assert model.config.num_classes == 1000 and "converted from Keras" in info.notes[0]
    with torch.no_grad():
        probabilities = model(x).softmax(1).numpy()
    np.testing.assert_allclose(probabilities, np.load(keras_files / "top.npy"), rtol=1e-4, atol=1e-6)


def test_include_top_false_is_a_backbone_with_keras_feature_map(keras_files):
    model, info, x = ours(keras_files, "backbone")
    assert model.config.num_classes == 0 and any("backbone" in note for note in info.notes)
    with torch.no_grad():
        features = model.forward_features(x).permute(0, 2, 3, 1).numpy()  # NHWC, as Keras gives it
    expected = np.load(keras_files / "backbone.npy")
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("suffix", [".weights.h5"])  # the .keras path is the top's and the backbone's test
def test_a_five_class_dense_head_with_names_from_a_labels_file(keras_files, tmp_path, suffix):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["a", "b", "c", "d", "e"]))
    model, info, x = ours(keras_files, "head", labels, suffix)
    assert model.config.num_classes == 5 and info.class_names == ("a", "b", "c", "d", "e")
    with torch.no_grad():
        probabilities = model(x).softmax(1).numpy()
    np.testing.assert_allclose(probabilities, np.load(keras_files / "head.npy"), rtol=1e-4, atol=1e-6)


def test_other_files_are_refused_clearly(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(WeightsError, match=r"is not a Keras 3 \.keras file"):
        load_file(tmp_path / "broken.keras", make_config("released"))
    with pytest.raises(WeightsError, match="is the released network, not paper-v2"):
        load_file(tmp_path / "broken.keras", make_config("paper-v2"))
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(WeightsError, match=r"legacy Keras \.h5 files are not read here yet"):
        load_file(tmp_path / "old.h5", make_config("released"))
