"""The block graph, drawn from the code: the whole network, every block, or one block's branches."""

import pandas as pd
import streamlit as st

from explorer.analysis.summary import shape_text
from explorer.drawing.graph import DIRECTIONS, block_graph, network_graph
from explorer.nets import is_within
from explorer.runtime import Engine, EngineIdentity
from explorer.ui.caches import summary_of, trace_of
from explorer.ui.downloads import download, graph_downloads
from explorer.ui.engines import engine_of
from explorer.ui.network import variant_sidebar

VIEWS = {"Overview": "overview", "Every block": "expanded", "One block": "block"}

config = variant_sidebar()
traced = trace_of(config)
blocks = traced.model.block_names()

st.title("Block graph")
st.markdown(
    "Drawn from the PyTorch model and a traced forward pass, so it always matches the code. Every edge "
    "shows the shape of the tensor on it (height x width x channels); every node its parameters."
)

view = st.radio("View", list(VIEWS), horizontal=True, key="graph_view")
left, right = st.columns(2)
default_direction = "bottom to top" if VIEWS[view] == "block" else "top to bottom"
direction = left.selectbox("Direction", list(DIRECTIONS), index=list(DIRECTIONS).index(default_direction))
if VIEWS[view] == "block":
    st.session_state.setdefault("graph_block", "repeat.0" if "repeat.0" in blocks else blocks[0])
    if st.session_state["graph_block"] not in blocks:  # fewer blocks than before: fall back to the first
        st.session_state["graph_block"] = blocks[0]
    block = right.selectbox("Block", blocks, key="graph_block", help="Drill into one block's branches")
    graph = block_graph(traced, block, direction=DIRECTIONS[direction])
else:
    block = None
    graph = network_graph(traced, VIEWS[view], direction=DIRECTIONS[direction])
dot_source = graph.source

if block is None:
    st.graphviz_chart(dot_source)
else:
    drawing, details = st.columns([3, 2])
    with drawing:
        st.graphviz_chart(dot_source)
    with details:
        rows = [r for comp in summary_of(config).components for r in comp.rows if is_within(r.path, block)]
        st.subheader(f"{block}: torchinfo summary")
        st.dataframe(
            pd.DataFrame(
                {
                    "module": [r.path for r in rows],
                    "type": [r.class_name for r in rows],
                    "output": [shape_text(r.output_shape) for r in rows],
                    "params": [r.params for r in rows],
                    "MACs": [r.macs for r in rows],
                }
            ),
            hide_index=True,
            column_config={
                "params": st.column_config.NumberColumn(format="localized"),
                "MACs": st.column_config.NumberColumn(format="localized"),
            },
        )

name = f"{config.variant}-{block or VIEWS[view]}".replace(".", "_")
graph_downloads(dot_source, name)


@st.cache_data(show_spinner="Exporting the network (a minute or so on a CPU)...", max_entries=2, ttl=3600)
def exported(_engine: Engine, engine_key: EngineIdentity, fmt: str) -> bytes | str:
    """The network with the session's weights as ONNX or a .pt2 program; a line saying why not, else."""
    import copy
    import tempfile
    from pathlib import Path

    from explorer.nets.export import export

    model = _engine.source if _engine.device.type == "cpu" else copy.deepcopy(_engine.source).cpu()
    with tempfile.TemporaryDirectory() as where:
        try:
            return export(model, Path(where) / f"network.{fmt}", fmt).read_bytes()
        except (ValueError, RuntimeError) as error:
            return str(error)


with st.expander("The network as a file: ONNX for Netron and onnxruntime, or a torch.export program"):
    st.caption(
        "With the weights in use and the module names kept: Netron shows repeat_1.0.branch1.1 where this page "
        "does. About 230 MB for the released network; `irv2-explorer export` makes the same files."
    )
    engine, engine_key = engine_of(config)
    for column, fmt in zip(st.columns(2), ("onnx", "pt2"), strict=True):
        if column.button(f"Make the .{fmt} file", key=f"export_{fmt}"):
            made = exported(engine, engine_key, fmt)
            if isinstance(made, str):
                column.error(made, icon=":material/error:")
            else:
                file_name = f"inception-{config.variant}.{fmt}"
                download(column, f"Download {file_name}", made, file_name, key=f"download_{fmt}")
