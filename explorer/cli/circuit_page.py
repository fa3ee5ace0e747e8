"""``circuit --out DIR``: each input of a circuit as a tile (its dataset examples from the index, its expanded-
weights kernel, its feature visualisation with --visualise), the diagram, and a page that shows them together.

Everything is written into a fresh folder beside DIR first and moved in at the end: an interrupted run leaves
DIR as it was.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from explorer.channels.index.reader import ChannelIndex
    from explorer.nets import InceptionNetwork

TILE = 96


def write_page(
    out: str, report: dict, model: InceptionNetwork, index: ChannelIndex | None, args: argparse.Namespace, device
) -> None:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {out!r} is a file, not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".circuit-", dir=folder.parent))
    try:
        _write(work, report, model, index, args, device)
        folder.mkdir(exist_ok=True)
        for made in work.iterdir():
            os.replace(made, folder / made.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write(work: Path, report: dict, model, index, args, device) -> None:
    from explorer.drawing.circuit import circuit_graph, kernel_picture
    from explorer.drawing.graph import GraphRenderError, render
    from explorer.drawing.heatmaps import png_bytes

    inputs = report["inputs"]
    kernels = report["linear"].get("kernels", {})
    scale = max([float(np.abs(np.asarray(k)).max()) for k in kernels.values()] or [1.0])
    before = inputs[0]["block"] if inputs else ""
    pictures = _visualised(model, before, [e["channel"] for e in inputs], device, args) if args.visualise else {}
    target_picture = (
        _visualised(model, report["block"], [report["channel"]], device, args) if args.visualise else {}
    ).get(report["channel"])
    rows = []
    for rank, entry in enumerate(inputs, 1):
        parts: list[Image.Image] = []
        if entry["channel"] in pictures:
            parts.append(pictures[entry["channel"]])
        if "colour" in entry:
            parts.append(_swatch(entry["colour"]))
        examples = _examples(index, entry["block"], entry["channel"])
        if examples is not None:
            parts.append(examples)
        kernel = kernels.get(str(entry["channel"]))
        if kernel is not None:
            parts.append(kernel_picture(np.asarray(kernel), scale, TILE))
        name = f"input-{rank:02d}-{entry['block']}-{entry['channel']}.png"
        (work / name).write_bytes(png_bytes(_side_by_side(parts or [_swatch("white")])))
        rows.append((rank, entry, name))
    if target_picture is not None:
        (work / "target.png").write_bytes(png_bytes(target_picture))
    onward = report.get("onward", {})
    graph = circuit_graph(
        f"{report['block']} {report['channel']}",
        [(f"{e['block']} {e.get('colour', e['channel'])}", e["score"]) for e in inputs[:8]],
        [(f"{onward['next_block']} {e['channel']}", e["score"]) for e in onward.get("channels", [])[:5]],
        [(str(e.get("label", e["class"])), e["score"]) for e in onward.get("classes", [])[:3]],
    )
    try:
        svg = render(graph, "svg").decode()
        (work / "circuit.svg").write_text(svg)
    except GraphRenderError as error:
        svg = f"<p>{html.escape(str(error))}</p>"
    (work / "index.html").write_text(_page(report, rows, svg, target_picture is not None))


def _visualised(model, block: str, channels: list[int], device, args) -> dict[int, Image.Image]:
    from explorer.channels.features.visualise import Settings, visualise

    if block == "pixels":
        return {}
    settings = Settings.for_device(device)
    result = visualise(model, "channel", block, channels, settings, device)
    return {
        c: Image.fromarray(np.asarray(p)).resize((TILE, TILE)) for c, p in zip(channels, result.images, strict=True)
    }


def _examples(index: ChannelIndex | None, block: str, channel: int) -> Image.Image | None:
    from explorer.drawing.examples import crop_box, mosaic
    from explorer.runtime.images import ImageError, load_image
    from explorer.runtime.preprocessing import crop_for_network, preprocessing_for

    if index is None or block not in index.blocks:
        return None
    preprocessing = preprocessing_for(index.manifest["variant"])
    crops = []
    for example in index.examples(block, channel)[:9]:
        try:
            image = crop_for_network(load_image(index.root / example.path).image, preprocessing)
        except ImageError:
            continue
        crops.append(crop_box(image, example.box, TILE // 3))
    return mosaic(crops, columns=3) if crops else None


def _swatch(colour: str) -> Image.Image:
    return Image.new("RGB", (TILE, TILE), colour)


def _side_by_side(parts: list[Image.Image]) -> Image.Image:
    height = max(p.height for p in parts)
    sheet = Image.new("RGB", (sum(p.width for p in parts) + 4 * (len(parts) - 1), height), "white")
    x = 0
    for part in parts:
        sheet.paste(part.convert("RGB"), (x, 0))
        x += part.width + 4
    return sheet


def _page(report: dict, rows: list, svg: str, has_target: bool) -> str:
    e = html.escape
    ablation = report["ablation"]
    title = f"{report['block']} channel {report['channel']}"
    more = ", ..." if len(report["images"]) > 8 else ""
    body = [
        f"<h1>What builds {e(title)}</h1>",
        f"<p>Response: the channel's {e(report['response'])} over the grid, {ablation['response']:.4g} on average over "
        f"{len(report['images'])} images ({e(', '.join(report['images'][:8]))}{more}). "
        f"Weights: {e(report['weights'])}.</p>",
        f"<p>Ablation: the top {ablation['k']} driving inputs set to zero lower it by <b>{ablation['top']:.4g}</b>; "
        f"{ablation['k']} random inputs (median of {ablation['draws']} draws) by <b>{ablation['random']:.4g}</b>.</p>",
    ]
    if "shares" in report:
        body.append(
            f"<p>Through the shortcut: {report['shares']['identity']:+.4g}; through the branches: "
            f"{report['shares']['branches']:+.4g}.</p>"
        )
    if has_target:
        body.append('<p><img src="target.png" alt="the channel, visualised"></p>')
    body.append(f"<div>{svg}</div>")
    body.append("<table><tr><th>rank</th><th>input</th><th>score</th><th></th><th>tiles</th></tr>")
    for rank, entry, name in rows:
        sign = "drives" if entry["score"] > 0 else "holds back"
        label = f"{entry['block']} {entry.get('colour', entry['channel'])}"
        body.append(
            f"<tr><td>{rank}</td><td>{e(label)}</td><td>{entry['score']:+.4g}</td><td>{sign}</td>"
            f'<td><img src="{e(name)}" alt="{e(label)}"></td></tr>'
        )
    body.append("</table>")
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:4px 8px}svg{max-width:100%}"
    head = f"<meta charset='utf-8'><title>{e(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(body)}</body></html>\n"
