"""Layer counts as text and as CSV: the tables the command line prints and the pages offer for download."""

from __future__ import annotations

from explorer.analysis.counting import LayerCounts
from explorer.analysis.summary import shape_text
from explorer.analysis.tracing import KINDS
from explorer.nets.tables import VARIANTS


def counts_table_rows(counts: LayerCounts) -> list[dict[str, object]]:
    """One row per component and one for the whole: kinds, parameters, MACs, shape, conventions."""
    rows = []
    for comp in (*counts.components, counts.whole):
        row: dict[str, object] = {"component": comp.title, "modules": " ".join(comp.modules)}
        row.update({KINDS[k]: v for k, v in comp.kinds.items()})
        row["params"] = comp.params
        row["MACs"] = comp.macs
        row["output_shape"] = shape_text(comp.output_shape)
        for conv in counts.conventions:
            row[conv.name] = conv.total if comp.key == "total" else conv.per_component[comp.key]
        rows.append(row)
    return rows


def to_csv(counts: LayerCounts) -> str:
    import csv
    import io

    rows = counts_table_rows(counts)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def format_counts(counts: LayerCounts) -> str:
    """The answer table (conventions) and the per-component table, as plain text."""
    r = counts.repeats
    name = VARIANTS[counts.variant].network
    lines = [f"{name} ({counts.variant}, {r[0]} x A, {r[1]} x B, {r[2]} x C): how many layers?", ""]
    lines.append(f"{'convention':<42} {'total':>6}  reproduces")
    for conv in counts.conventions:
        lines.append(f"{conv.name:<42} {conv.total:>6}  {conv.reproduces or '-'}")
    lines.append("")
    lines += [f"  {conv.name}: {conv.definition}" for conv in counts.conventions]
    lines.append("")
    short = dict(zip(KINDS, ("conv", "bn", "act", "pool", "cat", "scale", "add", "fc", "other"), strict=True))
    header = f"{'component':<28}" + "".join(f"{short[k]:>6}" for k in KINDS) + f"{'params':>13}{'MACs':>16}  output"
    lines.append(header)
    for comp in (*counts.components, counts.whole):
        shape = shape_text(comp.output_shape)
        lines.append(
            f"{comp.title:<28}"
            + "".join(f"{comp.kinds[k]:>6}" for k in KINDS)
            + f"{comp.params:>13,}{comp.macs:>16,}  {shape}"
        )
    return "\n".join(lines)
