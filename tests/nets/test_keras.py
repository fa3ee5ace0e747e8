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

from explorer.cli.commands import main
from explorer.nets import make_config
from explorer.nets.loading import load_file
from explorer.nets.weights import WeightsError
from explorer.runtime.images import load_image, sample_paths
from explorer.runtime.preprocessing import crop_for_network

if importlib.util.find_spec("keras") is None:  # imported only in its own process, on the torch backend
    pytest.skip("keras is not installed (the test extras have it)", allow_module_level=True)

#: Keras models with random weights and batch-norm statistics away from the identity, saved in every format
#: Keras writes, and what Keras' predict says for the photographs: the 1000-class top, include_top=False, the
#: study card's head (Dense 1024 relu, then 5 classes) and the backbone used as one layer of a model with one
#: 5-class Dense (Keras' transfer-learning guide).
KERAS_SCRIPT = r"""
import sys, h5py, numpy as np, keras
from keras.src.legacy.saving import legacy_h5_format
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
hidden = keras.layers.Dense(1024, activation="relu")(pooled)
card = keras.Model(backbone.input, keras.layers.Dense(5, activation="softmax")(hidden))
inputs = keras.Input((299, 299, 3))
nested = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
nested = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(nested))
# Each kind of file at least once: Keras 3's .keras and .weights.h5, the legacy whole-model .h5 (nested), Keras 2's
# weights-only .h5 (card_weights_only); every file is about 220 MB, so not every model in every kind.
saves = {"top": ".keras .weights.h5", "backbone": ".keras", "card": ".keras .weights.h5", "nested": ".keras .h5"}
for name, model in (("top", top), ("backbone", backbone), ("card", card), ("nested", nested)):
    for suffix in saves[name].split():
        save = model.save_weights if suffix == ".weights.h5" else model.save
        save(f"{folder}/{name}{suffix}")
    np.save(f"{folder}/{name}.npy", model.predict(x, verbose=0))
with h5py.File(f"{folder}/card_weights_only.h5", "w") as f:  # Keras 2's save_weights("x.h5")
    legacy_h5_format.save_weights_to_hdf5_group(f, card)
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


def predictions(model, x):
    with torch.no_grad():
        return model(x).softmax(1).numpy()


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_the_1000_class_top_gives_keras_predictions(keras_files, suffix):
    model, info, x = ours(keras_files, "top", suffix=suffix)
    assert model.config.num_classes == 1000 and "converted from Keras" in info.notes[0]
    np.testing.assert_allclose(predictions(model, x), np.load(keras_files / "top.npy"), rtol=1e-4, atol=1e-6)


def test_include_top_false_is_a_backbone_with_keras_feature_map(keras_files):
    model, info, x = ours(keras_files, "backbone")
    assert model.config.num_classes == 0 and any("backbone" in note for note in info.notes)
    with torch.no_grad():
        features = model.forward_features(x).permute(0, 2, 3, 1).numpy()  # NHWC, as Keras gives it
    expected = np.load(keras_files / "backbone.npy")
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_a_five_class_dense_head_with_names_from_a_labels_file(keras_files, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["a", "b", "c", "d", "e"]))
    model, info, x = ours(keras_files, "nested", labels, ".h5")  # one Dense after pooling, a legacy .h5
    assert model.config.num_classes == 5 and model.config.head_hidden == ()
    assert info.class_names == ("a", "b", "c", "d", "e")
    np.testing.assert_allclose(predictions(model, x), np.load(keras_files / "nested.npy"), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["card.keras", "card.weights.h5", "card_weights_only.h5"])
def test_the_study_cards_head_of_two_dense_layers(keras_files, name):
    stem, _, suffix = name.partition(".")
    model, info, x = ours(keras_files, stem, suffix=f".{suffix}" if suffix else ".h5")
    assert (model.config.head_hidden, model.config.num_classes) == ((1024,), 5)
    assert "a head of 2 Dense layers (1536 -> 1024 -> 5)" in info.notes
    np.testing.assert_allclose(predictions(model, x), np.load(keras_files / "card.npy"), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras"])  # the .h5 is the five-class head's test
def test_the_backbone_as_one_layer_of_a_model(keras_files, suffix):
    model, _, x = ours(keras_files, "nested", suffix=suffix)
    np.testing.assert_allclose(predictions(model, x), np.load(keras_files / "nested.npy"), rtol=1e-4, atol=1e-6)


def test_infer_prints_keras_top_classes_with_the_labels_files_names(keras_files, tmp_path, capsys, monkeypatch):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["benign", "malignant", "normal", "cyst", "other"]))
    monkeypatch.setenv("EXPLORER_PRECISION", "fp32")
    assert (
        main(
            [
                "infer",
                str(sample_paths()[0]),
                "--weights",
                str(keras_files / "card.keras"),
                "--labels",
                str(labels),
                "--format",
                "json",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    keras_probabilities = np.load(keras_files / "card.npy")[0]
    names = labels.read_text().split()
    assert [p["label"] for p in printed["top5"]] == [names[i] for i in np.argsort(-keras_probabilities)]
    np.testing.assert_allclose(
        [p["probability"] for p in printed["top5"]], np.sort(keras_probabilities)[::-1], rtol=1e-3
    )
    assert main(["weights", "check", str(keras_files / "card.weights.h5"), "--labels", str(labels)]) == 0
    assert main(["weights", "check", str(keras_files / "backbone.keras")]) == 0
    checked = capsys.readouterr().out.splitlines()
    assert checked[1] == "head: 5 classes (benign, malignant, normal, cyst, other) after a hidden layer of 1024"
    assert "a head of 2 Dense layers (1536 -> 1024 -> 5)" in checked[0]
    assert checked[3] == "head: none (a backbone: maps, no classes)"


def test_other_files_are_refused_clearly(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(WeightsError, match=r"is not a Keras 3 \.keras file"):
        load_file(tmp_path / "broken.keras", make_config("released"))
    with pytest.raises(WeightsError, match="is the released network, not paper-v2"):
        load_file(tmp_path / "broken.keras", make_config("paper-v2"))
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(WeightsError, match=r"old\.h5 is not an HDF5 file"):
        load_file(tmp_path / "old.h5", make_config("released"))


def test_heads_that_do_not_convert_are_refused_with_the_layer(keras_files, tmp_path):
    import h5py

    for name, change in (("sigmoid", "sigmoid"), ("wide", None)):
        copy = tmp_path / f"{name}.h5"
        copy.write_bytes((keras_files / "nested.h5").read_bytes())
        with h5py.File(copy, "r+") as f:
            config = f.attrs["model_config"]
            config = config.decode() if isinstance(config, bytes) else config
            if change:  # the last Dense's softmax made a sigmoid
                f.attrs["model_config"] = config.replace('"softmax"', f'"{change}"')
            else:  # the hidden Dense's kernel one row short: it no longer takes the pooled 1536 features
                group = f["model_weights"]
                hidden = next(str(n) for n in group.attrs["layer_names"] if str(n).startswith("dense"))
                kernel = next(str(w) for w in group[hidden].attrs["weight_names"] if str(w).endswith("kernel"))
                value = group[hidden][kernel][...]
                del group[hidden][kernel]
                group[hidden][kernel] = value[1:]
        message = "has activation sigmoid" if change else "takes 1535 inputs where 1536 come"
        with pytest.raises(WeightsError, match=message):
            load_file(copy, make_config("released"))
