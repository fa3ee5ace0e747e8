"""How many layers? Every convention, per component, with the published figures and claims checked."""

import pandas as pd
import streamlit as st

from explorer.analysis.report import counts_table_rows, to_csv
from explorer.analysis.summary import shape_text
from explorer.drawing.count_charts import convention_bars, kinds_bars
from explorer.text.usertext import quoted
from explorer.ui.caches import cached_counts, counts_of, published_checks, shared_figures
from explorer.ui.downloads import download, download_json
from explorer.ui.network import variant_sidebar
from explorer.ui.present import Ready, chart, ready


@shared_figures
def count_figures(variant: str, repeats: tuple[int, int, int], convention: str, present: bool) -> tuple[Ready, Ready]:
    counts = cached_counts(variant, repeats)
    return ready(convention_bars(counts, convention), present=present), ready(kinds_bars(counts), present=present)


config = variant_sidebar()
counts = counts_of(config)

st.title("How many layers?")
st.markdown(
    "It depends on what you count. Each row below is one convention people use, defined in one sentence "
    "and counted on the network built from the code. Where a total is a figure that gets published, the "
    "last column says which. Change the variant or the number of blocks in the sidebar and every count follows."
)

# ?convention=KEY (the opening page's links): that row picked and highlighted; the pick goes back into the address.
keys = [c.key for c in counts.conventions]
names = [c.name for c in counts.conventions]
asked = st.query_params.get("convention")
if asked is not None and asked not in keys:
    st.error(
        f"No convention called {quoted(asked)}; the conventions are {', '.join(keys)}.", icon=":material/link_off:"
    )
    del st.query_params["convention"]  # said once; the address keeps no value that names nothing
elif asked is not None:
    st.session_state["convention"] = names[keys.index(asked)]


def _pick() -> None:
    st.query_params["convention"] = keys[names.index(st.session_state["convention"])]


answer = pd.DataFrame(
    [{"convention": c.name, "total": c.total, "reproduces": c.reproduces or "-"} for c in counts.conventions]
)
picked = st.session_state.get("convention") if asked in keys else None
st.dataframe(
    answer.style.apply(
        lambda row: ["background-color: rgba(255, 196, 0, 0.35)" if row["convention"] == picked else ""] * len(row),
        axis=1,
    ),
    hide_index=True,
)

st.subheader("One convention, component by component", anchor="one-convention")
chosen_name = st.selectbox("Convention", names, key="convention", on_change=_pick)
chosen = counts.conventions[names.index(chosen_name)]
st.markdown(f"**{chosen.name}**: {chosen.definition}")
st.metric("Total", chosen.total)
figures = count_figures(counts.variant, counts.repeats, chosen.name, st.session_state.get("present", False))
chart(figures[0])

st.subheader("Layers by kind")
table = pd.DataFrame(counts_table_rows(counts)).drop(columns=[c.name for c in counts.conventions])
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "params": st.column_config.NumberColumn(format="localized"),
        "MACs": st.column_config.NumberColumn(format="localized"),
    },
)
chart(figures[1])

reconciliations, claims = published_checks()

st.subheader("The published figures, explained")
st.dataframe(
    pd.DataFrame(
        [
            {
                "figure": r.figure.says,
                "source": r.figure.source,
                "reproduced": "yes" if r.reproduced_by else "no",
                "explanation": r.explanation,
                "nearest": "; ".join(f"{c.convention} on {c.variant}: {c.value:,}" for c in r.nearest) or "-",
            }
            for r in reconciliations
        ]
    ),
    hide_index=True,
)

st.subheader("Claims from the texts students find, checked")
st.caption("Against the unmodified variants; the evidence is computed from each network.")
st.dataframe(
    pd.DataFrame(
        [
            {
                "source": claim.source_name,
                "claim": claim.claim,
                "variant": v.variant,
                "verdict": v.verdict,
                "evidence": v.evidence,
            }
            for claim in claims
            for v in claim.verdicts
        ]
    ),
    hide_index=True,
)

stem = f"layer-counts-{counts.variant}-{'-'.join(map(str, counts.repeats))}"
left, right = st.columns(2)
download(left, "Download CSV", to_csv(counts), f"{stem}.csv")
download_json(right, "Download JSON", counts.to_json(), f"{stem}.json")
st.caption(f"Output of the whole network: {shape_text(counts.whole.output_shape)} logits.")
