"""Pictures of a channel's dataset examples: the part of each image its maximum sees, side by side, or outlined."""

from __future__ import annotations

from PIL import Image, ImageDraw

#: The outline's colour: the heatmaps' yellow, visible on photographs.
OUTLINE = (255, 214, 10)


def crop_box(image: Image.Image, box: tuple[int, int, int, int], size: int = 96) -> Image.Image:
    """The box (left, top, right, bottom) of a network-sized image, scaled to ``size`` pixels square (a box
    clipped by the image's edge is padded grey, so that every crop shows its part at the same scale)."""
    left, top, right, bottom = box
    side = max(right - left, bottom - top)
    square = Image.new("RGB", (side, side), (128, 128, 128))
    square.paste(image.crop(box), ((side - (right - left)) // 2, (side - (bottom - top)) // 2))
    return square.resize((size, size), Image.Resampling.LANCZOS)


def mosaic(crops: list[Image.Image], columns: int = 3, gap: int = 2) -> Image.Image:
    """Crops of one size in a grid, in order (row by row), on white."""
    if not crops:
        raise ValueError("a mosaic needs at least one crop")
    size = crops[0].size[0]
    rows = -(-len(crops) // columns)
    width, height = columns * size + (columns - 1) * gap, rows * size + (rows - 1) * gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    for n, crop in enumerate(crops):
        row, column = divmod(n, columns)
        canvas.paste(crop, (column * (size + gap), row * (size + gap)))
    return canvas


def outlined(image: Image.Image, box: tuple[int, int, int, int], width: int = 3) -> Image.Image:
    """The image with the box drawn on it (a copy)."""
    drawn = image.convert("RGB").copy()
    left, top, right, bottom = box
    ImageDraw.Draw(drawn).rectangle((left, top, right - 1, bottom - 1), outline=OUTLINE, width=width)
    return drawn
