"""A folder to index, made the way a user's folder looks: photographs, flips and crops of them, generated
pictures, a truncated JPEG and a text file, in sub-folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from explorer.runtime.images import sample_paths


def make_folder(root: Path) -> Path:
    for path in sample_paths():
        shutil.copy(path, root / path.name)
        image = Image.open(path).convert("RGB")
        (root / "flipped").mkdir(exist_ok=True)
        ImageOps.mirror(image).save(root / "flipped" / f"{path.stem}.png")
        (root / "crops").mkdir(exist_ok=True)
        width, height = image.size
        image.crop((width // 5, height // 6, width * 4 // 5, height * 5 // 6)).save(root / "crops" / path.name)
    generated = root / "generated"
    generated.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(generated / "noise.png")
    ramp = np.linspace(0, 255, 300, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (200, 1))] * 3, -1)).save(generated / "gradient.png")
    checks = (np.indices((256, 256)).sum(0) // 32 % 2 * 255).astype(np.uint8)
    Image.fromarray(checks).save(generated / "checker.bmp")
    (root / "broken").mkdir()
    (root / "broken" / "truncated.jpg").write_bytes(sample_paths()[0].read_bytes()[:3000])
    (root / "notes.txt").write_text("not a picture\n")
    return root


def assert_same_index(a: Path, b: Path, same_folder: bool = True) -> None:
    """Two index folders hold the same index: the same manifest (but for when it was made), the same images
    and positions per channel, the values and means to float rounding."""
    import json

    first, second = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    for key in ("created", *(() if same_folder else ("folder",))):
        first.pop(key), second.pop(key)
    assert first == second
    slots = differ = 0
    for block in first["blocks"]:
        x, y = (np.load(p / f"{block['name']}.npz") for p in (a, b))
        # The same image and position in (nearly) every slot; where rounding orders two near-equal maxima the
        # other way, the values below still agree.
        differ += int(((x["images"] != y["images"]) | (x["positions"] != y["positions"]).any(-1)).sum())
        slots += x["images"].size
        # Rounding differs with the batch and the threads by about 1e-6 of the block's largest value.
        scale = 1e-5 * float(np.abs(y["values"][np.isfinite(y["values"])]).max())
        np.testing.assert_allclose(x["values"], y["values"], rtol=1e-5, atol=scale, err_msg=block["name"])
        np.testing.assert_allclose(x["mean"], y["mean"], rtol=1e-5, atol=scale, err_msg=block["name"])
    assert differ <= max(2, slots // 1000), f"{differ} of {slots} slots hold another image or position"
    _assert_same_records(a, b, first)


def _assert_same_records(a: Path, b: Path, manifest: dict) -> None:
    """The per-image records, class tables and atlas vectors of two indexes of the same images agree: the same
    top classes but where rounding swaps near-equal probabilities, sums to rounding, vectors to float16's."""
    if manifest.get("format", 1) < 2:
        return
    first, second = (np.load(p / "images.npz") for p in (a, b))
    np.testing.assert_allclose(first["top_probabilities"], second["top_probabilities"], rtol=1e-4, atol=1e-6)
    assert (first["top_classes"] != second["top_classes"]).mean() < 0.05
    for table in ("predicted.npz", "classes.npz"):
        if (a / table).exists() or (b / table).exists():
            x, y = np.load(a / table), np.load(b / table)
            if table == "classes.npz":
                assert x["classes"].tolist() == y["classes"].tolist() and x["counts"].tolist() == y["counts"].tolist()
            if x["classes"].tolist() == y["classes"].tolist():
                np.testing.assert_allclose(x["sums"], y["sums"], rtol=1e-4, atol=1e-4 * np.abs(y["sums"]).max())
    for block in manifest["atlas"]["blocks"]:
        x, y = (np.load(p / f"atlas-{block}.npz") for p in (a, b))
        assert (x["images"] == y["images"]).all() and (x["positions"] == y["positions"]).all()
        scale = float(np.abs(y["vectors"].astype(np.float32)).max())
        np.testing.assert_allclose(x["vectors"].astype(np.float32), y["vectors"], rtol=2e-3, atol=1e-3 * scale)
