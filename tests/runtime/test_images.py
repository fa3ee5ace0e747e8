"""Decoding user images: real photographs in every shape people upload, and clear errors otherwise."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explorer.runtime.images import MAX_PIXELS, ImageError, load_image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    from tests.conftest import SAMPLES

    return Image.open(SAMPLES / "cat.jpg").convert("RGB")


def test_every_sample_decodes_to_rgb(sample_paths):
    for path in sample_paths:
        loaded = load_image(path)
        assert loaded.image.mode == "RGB" and loaded.format == "JPEG"
        assert loaded.image.size == loaded.original_size


def test_grayscale_sample_says_so(sample_paths):
    camera = next(p for p in sample_paths if p.name == "camera.jpg")
    loaded = load_image(camera)
    assert any("grayscale" in note for note in loaded.notes)
    red, green, blue = (np.asarray(loaded.image)[..., c] for c in range(3))
    assert (red == green).all() and (green == blue).all()


@pytest.mark.parametrize(
    ("convert", "fmt", "note"),
    [
        (lambda im: im.convert("RGBA"), "PNG", None),
        (lambda im: im.convert("CMYK"), "JPEG", "CMYK"),
        (lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE), "GIF", None),
        (lambda im: im.convert("RGB"), "WEBP", None),
        (lambda im: im.convert("RGB"), "BMP", None),
        (lambda im: im.convert("RGB"), "TIFF", None),
    ],
)
def test_formats_and_modes(cat, convert, fmt, note):
    loaded = load_image(encode(convert(cat), fmt), f"cat.{fmt.lower()}")
    assert loaded.image.mode == "RGB" and loaded.image.size == cat.size
    if note:
        assert any(note in n for n in loaded.notes)


def test_transparency_is_filled_with_white(cat):
    rgba = cat.convert("RGBA")
    rgba.putalpha(0)
    loaded = load_image(encode(rgba, "PNG"))
    assert np.asarray(loaded.image).min() == 255
    palette = cat.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    loaded = load_image(encode(palette, "PNG", transparency=0))
    assert any("transparent" in n for n in loaded.notes)


def test_sixteen_bit_is_scaled(cat):
    gray = np.asarray(cat.convert("L"), dtype=np.uint16) * 257
    loaded = load_image(encode(Image.fromarray(gray), "PNG"))
    assert any("16-bit" in n for n in loaded.notes)
    np.testing.assert_allclose(np.asarray(loaded.image)[..., 0], np.asarray(cat.convert("L")), atol=1)


def test_animated_gif_uses_the_first_frame(cat):
    frames = [cat, cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("RGB", cat.size, (250, 0, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(data, "anim.gif")
    assert any("3 frames" in n and "first frame" in n for n in loaded.notes)
    first = np.asarray(loaded.image, dtype=float)
    assert first.std() > 10  # the photo, not the flat red frame
    assert np.abs(first - np.asarray(cat, dtype=float)).mean() < 20  # and not the mirrored one


def test_exif_rotation_is_applied(cat):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    loaded = load_image(encode(cat, "JPEG", exif=exif.tobytes()))
    assert loaded.image.size == (cat.height, cat.width)
    assert any("EXIF" in n for n in loaded.notes)


def test_tiny_and_elongated_images_work_with_a_note():
    tiny = load_image(encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"))
    assert tiny.image.size == (1, 1) and any("enlarged" in n for n in tiny.notes)
    strip = load_image(encode(Image.new("RGB", (4000, 3), (0, 90, 0)), "PNG"))
    assert any("elongated" in n for n in strip.notes)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"just some text, renamed .jpg", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),  # never handed to Ghostscript
    ],
)
def test_unusable_bytes(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data, "upload.jpg")


def test_truncated_files(cat):
    for fmt in ("JPEG", "PNG"):
        data = encode(cat, fmt)
        with pytest.raises(ImageError, match="damaged or truncated"):
            load_image(data[: len(data) // 2], f"half.{fmt.lower()}")


def test_decompression_bomb_is_refused():
    side = int(MAX_PIXELS**0.5) + 100
    bomb = encode(Image.new("1", (side, side)), "PNG")  # tiny file, huge image
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match=r"megapixels|too many pixels"):
        load_image(bomb, "bomb.png")


def test_paths(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
