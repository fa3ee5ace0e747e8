"""A fine-tuned checkpoint: a head of any number of classes, with the names from the file or beside it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from explorer.cli import main
from explorer.nets import make_config
from explorer.nets.weights import WeightsError, load_weights_file
from explorer.runtime import Engine
from explorer.runtime.images import load_image, sample_paths

timm = pytest.importorskip("timm")

NAMES = ["daisy", "dandelion", "rose", "sunflower", "tulip", "orchid", "lily"]


@pytest.fixture(scope="module")
def fine_tuned():
    """timm's Inception-ResNet-v2 with a 7-class head, its head's weights random (a fine-tune, as far as we can
    tell), as people save it."""
    model = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=7).eval()
    with torch.no_grad():
        model.classif.weight.normal_(0, 0.05)
        model.classif.bias.uniform_(-1, 1)
    return model


def test_a_seven_class_safetensors_with_names_loads_and_gives_timms_logits(fine_tuned, tmp_path, photos):
    path = tmp_path / "flowers.safetensors"
    save_file(fine_tuned.state_dict(), str(path), metadata={"class_names": json.dumps(NAMES)})
    model, info = load_weights_file(path, make_config("released"))
    assert model.config.num_classes == 7 and info.class_names == tuple(NAMES)
    assert any("a head of 7 classes" in note for note in info.notes)
    with torch.no_grad():
        torch.testing.assert_close(model(photos), fine_tuned(photos), rtol=1e-4, atol=1e-4)
    engine = Engine(model, info, device="cpu", cpu_dtype=torch.float32)
    result = engine.run(load_image(sample_paths()[0]).image)
    with torch.no_grad():
        expected = fine_tuned(engine.prepare(load_image(sample_paths()[0]).image)[1]).softmax(1)[0]
    assert result.top5[0].label == NAMES[int(expected.argmax())]
    assert {p.label for p in result.top5} <= set(NAMES)


def test_names_from_a_pth_dict_or_a_labels_file_and_the_command_line(fine_tuned, tmp_path, capsys):
    pth = tmp_path / "flowers.pth"
    torch.save({"state_dict": fine_tuned.state_dict(), "class_names": NAMES}, pth)
    assert load_weights_file(pth, make_config("released"))[1].class_names == tuple(NAMES)
    bare = tmp_path / "bare" / "model.safetensors"
    bare.parent.mkdir()
    save_file(fine_tuned.state_dict(), str(bare))
    assert load_weights_file(bare, make_config("released"))[1].class_names is None  # "class 0".."class 6"
    (bare.parent / "labels.txt").write_text("\n".join(NAMES) + "\n")
    _, beside = load_weights_file(bare, make_config("released"))
    assert beside.class_names == tuple(NAMES) and "labels" in beside.identity
    other = tmp_path / "other.json"
    other.write_text(json.dumps({str(i): name.upper() for i, name in enumerate(NAMES)}))
    assert load_weights_file(bare, make_config("released"), other)[1].class_names[0] == "DAISY"
    (bare.parent / "labels.txt").write_text("daisy\nrose\n")  # made for another head: found, not asked for
    _, passed_over = load_weights_file(bare, make_config("released"))
    assert passed_over.class_names is None and "labels" not in passed_over.identity
    assert "labels.txt beside model.safetensors names 2 classes, its head has 7: not used" in passed_over.notes
    with pytest.raises(WeightsError, match=r"labels\.txt names 2 classes, the head of model\.safetensors has 7"):
        load_weights_file(bare, make_config("released"), bare.parent / "labels.txt")  # asked for: an error
    (bare.parent / "labels.txt").write_bytes(b"\xff\xfe\x00broken")
    _, unreadable = load_weights_file(bare, make_config("released"))
    assert unreadable.class_names is None and any(
        n.endswith("not used (the classes are numbered)") for n in unreadable.notes
    )
    assert main(["infer", str(sample_paths()[0]), "--weights", str(bare), "--device", "cpu"]) == 0
    assert "not used (the classes are numbered)" in capsys.readouterr().out  # among the result's notes
    assert main(["weights", "check", str(pth)]) == 0  # the command line reads the same (infer: the engine's test)
    assert "head: 7 classes (daisy, dandelion, rose, sunflower, tulip, ...)" in capsys.readouterr().out


def test_a_1001_class_head_and_another_backbone_are_still_refused(tmp_path):
    background = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=1001).state_dict()
    save_file(background, str(tmp_path / "cadene.safetensors"))
    with pytest.raises(WeightsError, match="1001 classes"):
        load_weights_file(tmp_path / "cadene.safetensors", make_config("released"))
    v4 = timm.create_model("inception_v4", pretrained=False, num_classes=7).state_dict()
    save_file(v4, str(tmp_path / "v4.safetensors"))
    with pytest.raises(WeightsError, match="does not fit the released network"):
        load_weights_file(tmp_path / "v4.safetensors", make_config("released"))
