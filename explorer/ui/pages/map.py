"""The network map: click from the whole network down to one convolution, with this image's activations."""

import inspect

import pandas as pd
import plotly.express as px
import streamlit as st
from plotly.graph_objects import Figure
from torch import nn

from explorer.analysis.conventions import RULES
from explorer.analysis.counting import counts_within
from explorer.analysis.summary import shape_text
from explorer.drawing.graph import TracedNetwork
from explorer.drawing.heatmaps import COLOUR_SCALE, colourise, overlay, png_bytes
from explorer.drawing.netmap import (
    MapDrawing,
    MapNode,
    drawing,
    figure,
    layout,
    nearest,
    position_on,
    presentation_path,
    resolve,
)
from explorer.explain import CAM_METHODS, METHODS, Explainer, display
from explorer.nets import ConvBnRelu
from explorer.runtime.images import ImageError, load_image, sample_paths
from explorer.runtime.inside import PART_KINDS
from explorer.text.usertext import quoted, shown
from explorer.ui.caches import cached_inside, cached_trace, counts_of, shared_figures, summary_of, trace_of
from explorer.ui.channel_view import channels_view
from explorer.ui.downloads import graph_downloads
from explorer.ui.engines import engine_of
from explorer.ui.network import variant_sidebar
from explorer.ui.pictures import chosen_sample, pick_image
from explorer.ui.present import chart, sized, step_controls
from explorer.ui.state import image_digest

config = variant_sidebar()
traced = trace_of(config)
model = traced.model
repeats = config.repeats.as_tuple()


def go(name: str) -> None:
    """Select another node: it goes into the URL, so the link shows the same thing."""
    st.query_params["node"] = name
    if "channel" in st.query_params:  # a channel of the block left behind
        del st.query_params["channel"]
    st.rerun()


# ------------------------------------------------------------------------------ the URL: node and image
asked = st.query_params.get("node", "")
network = (config.variant, repeats)
switched = st.session_state.get("map_network") not in (None, network)  # the sidebar changed the network
st.session_state["map_network"] = network
try:
    node = resolve(model, asked)
except ValueError as error:
    if switched:  # a normal action, not a broken link: the nearest part that this network has too
        node = nearest(model, asked, st.session_state.get("map_component", ""))
        st.info(
            f"The {config.variant} network has no {quoted(asked)}: here is {quoted(node.title)} instead.",
            icon=":material/swap_horiz:",
        )
    else:
        st.error(f"{shown(error, limit=300)}. Here is the whole network instead.", icon=":material/link_off:")
        node = resolve(model, "")
    if node.name:
        st.query_params["node"] = node.name
    elif "node" in st.query_params:
        del st.query_params["node"]
st.session_state["map_component"] = node.component
asked_image = st.query_params.get("image")
samples = [p.stem for p in sample_paths()]
if asked_image is not None and asked_image not in samples:
    st.error(
        f"No sample image called {quoted(asked_image)}; the samples are {', '.join(samples)}.", icon=":material/image:"
    )
    del st.query_params["image"]
    asked_image = None
if asked_image is not None and st.session_state.get("map_image_from_url") != asked_image:
    st.session_state["map_image_from_url"] = asked_image  # the link's image once; the picker's afterwards
else:
    asked_image = None

st.title("Network map")
st.caption(
    "Click a node to open it: the whole network, a component, one block, one unit. Scroll to zoom, drag to pan, "
    "hover for details. The link in the address bar opens this very view."
)

# ------------------------------------------------------------------------------ breadcrumb
crumbs = st.columns(len(node.trail) + 1)
for column, (name, title) in zip(crumbs, node.trail, strict=False):
    if column.button(title, key=f"crumb-{name or 'network'}", icon=":material/arrow_upward:"):
        go(name)
crumbs[-1].markdown(f"**{node.title}**")

if st.session_state.get("present", False):
    # A presenter walks the network: the whole, each component, one block of each run, with big buttons.
    path = presentation_path(model)
    step_controls(
        position_on(model, path, node), len(path), lambda i: go(path[i]), [resolve(model, p).title for p in path]
    )


@st.cache_data(show_spinner="Laying out the drawing with Graphviz...", max_entries=256)
def drawn(variant: str, repeats: tuple[int, int, int], name: str) -> tuple[MapDrawing, str]:
    """The layout of a node's drawing and its DOT source."""
    network = cached_trace(variant, repeats)
    graph = drawing(network, resolve(network.model, name))
    return layout(graph), graph.source


def hover_text(traced: TracedNetwork, name: str) -> str:
    try:
        module = traced.model.get_submodule(name)
    except AttributeError:
        return name
    return f"{name} ({type(module).__name__})<br>{traced.params(name):,} parameters" if name else name


@shared_figures
def map_figure(variant: str, repeats: tuple[int, int, int], drawn_name: str, selected: str, present: bool) -> Figure:
    """The drawing of ``drawn_name`` with ``selected`` outlined, shared by every session (never changed)."""
    network = cached_trace(variant, repeats)
    laid_out, _ = drawn(variant, repeats, drawn_name)
    hover = {box.target: hover_text(network, box.target) for box in laid_out.boxes if box.target}
    return sized(figure(laid_out, selected, hover), present=present)


picture, detail = st.columns([3, 2], gap="large")
with picture:
    dot_source = drawn(config.variant, repeats, node.drawn)[1]
    present = st.session_state.get("present", False)
    event = st.plotly_chart(
        map_figure(config.variant, repeats, node.drawn, node.name, present),
        on_select="rerun",
        selection_mode="points",
        key=f"map-{config.variant}-{repeats}-{node.name}",
        config={"scrollZoom": True, "displaylogo": False},
    )
    points = event.selection.points if event else []
    if points:
        chosen = points[0].get("customdata")
        chosen = chosen[0] if isinstance(chosen, list) else chosen
        if chosen and chosen != node.name:
            go(chosen)
    graph_downloads(dot_source, f"{config.variant}-{node.drawn or 'network'}".replace(".", "_"))


# ------------------------------------------------------------------------------ what the node is
def module_rows(name: str) -> list[tuple[str, str]]:
    """Type, kernel, stride, padding, channels, parameters, MACs, output shape of a module."""
    module = model.get_submodule(name)
    rows = [("type", type(module).__name__)]
    conv = module.conv if isinstance(module, ConvBnRelu) else module if isinstance(module, nn.Conv2d) else None
    if conv is not None:
        kh, kw = conv.kernel_size
        padding = "valid" if max(kh, kw) > 1 and conv.padding == (0, 0) else "same"
        rows += [("kernel", f"{kh}x{kw}"), ("stride", str(conv.stride[0])), ("padding", padding)]
        rows += [("channels in, out", f"{conv.in_channels}, {conv.out_channels}")]
    elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        rows += [("kernel", f"{module.kernel_size}x{module.kernel_size}"), ("stride", str(module.stride))]
    ops = traced.ops_in(name)
    if ops and ops[0].inputs and conv is None:
        first_in = traced.ops[ops[0].inputs[0]].shape or ()
        channels_in = first_in[1] if len(first_in) > 1 else "?"
        rows.append(("channels in, out", f"{channels_in}, {traced.output_shape(name)[1]}"))
    macs = next((r.macs for c in summary_of(config).components for r in c.rows if r.path == name), None)
    rows += [("parameters", f"{traced.params(name):,}")]
    if macs is not None:
        rows.append(("MACs", f"{macs:,}"))
    rows.append(("output shape", shape_text(traced.output_shape(name))))
    return rows


def convention_table(values: dict[str, int]) -> None:
    names = {rule.key: rule.name for rule in RULES}
    st.dataframe(
        pd.DataFrame({"convention": [names[k] for k in values], "layers": list(values.values())}),
        hide_index=True,
        width="stretch",
    )


def explanation(name: str) -> str:
    """What a module does, as its class says it: our block and unit classes cite the paper's figures."""
    kind = type(model.get_submodule(name))
    return (inspect.getdoc(kind) or "") if kind.__module__.startswith("explorer.") else ""


def describe(node: MapNode) -> None:
    if node.level == "network":
        summary = summary_of(config)
        st.subheader(node.title)
        st.markdown(
            f"**{summary.params:,}** parameters, **{summary.macs / 1e9:.2f} G** multiply-adds per image, "
            f"**{len(model.components)}** components in a chain. Click one to see its blocks."
        )
        convention_table({cv.key: cv.total for cv in counts_of(config).conventions})
        return
    if node.level == "component":
        comp = next(c for c in model.components if c.key == node.component)
        counts = counts_of(config)
        st.subheader(node.title)
        row = next(c for c in counts.components if c.key == comp.key)
        st.markdown(
            f"**{row.params:,}** parameters, **{row.macs / 1e9:.2f} G** multiply-adds, output "
            f"**{shape_text(row.output_shape)}**. Click a block to open it."
        )
        blocks_here = [b for b in model.block_names() if model.component_of(b).key == comp.key]
        if blocks_here:  # what its blocks are, as their class says (Block35, InceptionA, ...)
            st.markdown(explanation(blocks_here[0]))
        convention_table({cv.key: cv.per_component[comp.key] for cv in counts.conventions})
        return
    st.subheader(node.title)
    if node.level == "part" and node.kind in PART_KINDS:
        st.markdown(f"**{PART_KINDS[node.kind]}** of {node.block}.")
        return
    st.table(pd.DataFrame(module_rows(node.name), columns=["", node.name]).set_index(""))
    text = explanation(node.name)
    if text:
        st.markdown(text)
    convention_table(counts_within(model, traced.ops, node.name))


with detail:
    describe(node)


# ------------------------------------------------------------------------------ this image, inside
st.divider()
st.subheader("What this image does here")
image_column, live = st.columns([1, 3], gap="large")
with image_column:
    picked = pick_image("0", sample=asked_image)
    sample = chosen_sample("0")
    if sample is not None and st.query_params.get("image") != sample:
        st.query_params["image"] = sample  # the link carries the sample in use
    elif sample is None:
        if "image" in st.query_params:
            del st.query_params["image"]  # an upload or a shot cannot travel in a link: it opens without one
        st.caption("A link to this view opens without your image: only the samples travel in links.")
if picked is None:
    live.info("Choose an image to watch it go through the network.")
    st.stop()
name, data = picked
try:
    image = load_image(data, name)
except ImageError as error:
    live.error(shown(error, limit=400), icon=":material/image:")
    st.stop()
engine, engine_key = engine_of(config)
digest = image_digest(data)
image_column.image(image.image, caption=shown(name), width="stretch")


def big_maps(part: object, title: str) -> None:
    left, right = st.columns(2)
    for column, values, kind in ((left, part.mean_map, "channel mean"), (right, part.max_map, "channel max")):
        heat = px.imshow(values, color_continuous_scale=COLOUR_SCALE, title=f"{title}: {kind}")
        heat.update_layout(height=300, margin={"t": 40, "b": 0, "l": 0, "r": 0}, coloraxis_showscale=False)
        heat.update_xaxes(visible=False)
        heat.update_yaxes(visible=False)
        chart(heat, where=column, width="stretch", key=f"big-{title}-{kind}")
    st.caption(
        f"{'x'.join(map(str, part.shape))} (channels x height x width); mean {part.mean:.4f}, std {part.std:.4f}, "
        f"{part.zero_fraction:.1%} zeros; most active channels: {', '.join(map(str, part.top_channels))}"
    )
    channels = st.columns(len(part.top_channels))
    for column, channel, values in zip(channels, part.top_channels, part.top_maps, strict=True):
        column.image(png_bytes(colourise(values, (64, 64))), caption=f"ch {channel}")


def inside_view() -> None:
    """Every output inside the open block or unit, one enlarged, and its attribution maps."""
    opened = node.drawn  # the block or unit whose inside is shown
    inside = cached_inside(engine, engine_key, digest, opened, data)
    st.markdown(
        f"Every output inside **{opened}**, in forward order, from this image: each map is the mean over "
        "channels (yellow: strong, dark: weak). Click a node in the drawing, or a button, to enlarge it."
    )
    per_row = 6
    for start in range(0, len(inside), per_row):
        columns = st.columns(per_row)
        for column, (part, picture_png) in zip(columns, inside[start : start + per_row], strict=False):
            label = part.name[len(opened) + 1 :] or part.name
            column.image(picture_png)
            current = "primary" if part.name == node.name else "secondary"
            # the button right under its map, the caption (one to three lines) after it: the buttons line up
            if column.button("Enlarge", key=f"open-{part.name}", type=current):
                go(part.name)
            column.caption(f"{label}: {PART_KINDS[part.kind]}, {'x'.join(map(str, part.shape))}")
    enlarged = next((p for p, _ in inside if p.name == node.name), inside[-1][0])
    big_maps(enlarged, enlarged.name)
    if st.toggle(f"Why did it say that? Attribution maps, the CAMs at {node.block}", key="map_explain"):
        methods = st.multiselect(
            "Methods",
            list(METHODS),
            default=list(CAM_METHODS),
            key="map_explain_methods",
            help="Grad-CAM and Guided Grad-CAM look at this block; the others at the input, whatever the block.",
        )
        explained = st.session_state.setdefault("map_attributions", {})
        crop, _ = engine.prepare(image.image)
        for column, method in zip(st.columns(max(len(methods), 1)), methods, strict=False):
            key = (engine_key, digest, method, node.block)
            if key not in explained:
                while len(explained) >= 24:  # the oldest go first
                    explained.pop(next(iter(explained)))
                bar = column.progress(0.0, text=f"{method}...")
                explained[key] = Explainer(engine).explain(
                    image.image, method, node.block, progress=lambda f, t, bar=bar: bar.progress(f, text=t)
                )
                bar.empty()
            found = explained[key]
            column.image(
                overlay(crop, display(found.heatmap)),
                caption=f"{method}: why '{found.label}', {found.seconds:.2f} s",
            )
        st.caption("The class, the settings and the sanity check: the Activations page, Why did it say that?")


with live:
    if node.level in ("network", "component"):
        result_block = model.block_names()[-1] if node.level == "network" else None
        if node.level == "component":
            comp = next(c for c in model.components if c.key == node.component)
            blocks_here = [b for b in model.block_names() if model.component_of(b).key == comp.key]
            result_block = blocks_here[-1] if blocks_here else None
        if result_block is None:
            st.info("The head turns the last feature map into class scores: open the Activations page for them.")
        else:
            inside = cached_inside(engine, engine_key, digest, result_block, data)
            st.markdown(f"The output of **{result_block}**, where this part ends. Click a node in the drawing.")
            big_maps(inside[-1][0], result_block)
    elif node.block is None:
        st.info("A layer of the head: open the Activations page for the class scores.")
    else:
        view = "Inside the block"
        if node.level == "block":  # a block's channels, from an index of dataset examples (explorer.channels)
            default = "Channels" if "channel" in st.query_params else view
            view = st.segmented_control("Show", [view, "Channels"], default=default, key="map_view") or view
            st.markdown(f"[{node.block}'s channels on the Channels page](/channels?block={node.block})")
            if view != "Channels" and "channel" in st.query_params:
                del st.query_params["channel"]
        if view == "Channels":
            channels_view(engine, engine_key, node.block, digest, data, engine.prepare(image.image)[0], page="map")
        else:
            inside_view()
