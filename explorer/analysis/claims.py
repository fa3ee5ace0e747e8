"""The claims students arrive with (../shared/seeds/), checked against the built networks.

Each claim gets a verdict per variant and the evidence, computed from the models, their traced
operations and their layer counts. The claim texts are short quotations or close paraphrases of
the source texts; nothing in a verdict is typed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torchinfo
from torch import nn

from explorer.analysis.counting import LayerCounts
from explorer.analysis.summary import shape_text
from explorer.analysis.tracing import Operation, trace_operations
from explorer.nets import PAPER_V2, InceptionNetwork, InceptionResNetBlock, build_model

TRUE, FALSE, PARTLY, UNCHECKED = "true", "false", "partly", "not checked"


@dataclass(frozen=True)
class Verdict:
    variant: str
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Claim:
    source: str  # the seed text it comes from (its file's number)
    claim: str
    verdicts: tuple[Verdict, ...]

    @property
    def source_name(self) -> str:
        """What the text is, for people ("a study card with Keras code"), where a table shows the source."""
        return SOURCES.get(self.source, f"text {self.source}")


@dataclass(frozen=True)
class _Network:
    """What the checks look at for one variant."""

    variant: str
    model: InceptionNetwork
    ops: list[Operation]
    counts: LayerCounts

    def residual_blocks(self) -> list[InceptionResNetBlock]:
        return [m for m in self.model.modules() if isinstance(m, InceptionResNetBlock)]


#: The per-component breakdown of seed 000, in component order.
ARTICLE_BREAKDOWN: dict[str, int] = {
    "stem": 9,
    "block_a": 35,
    "reduction_a": 1,
    "block_b": 100,
    "reduction_b": 1,
    "block_c": 10,
    "head": 1,
}
ARTICLE_TOTAL = 164


def check_claims(counts: Mapping[str, LayerCounts]) -> list[Claim]:
    """Every seed claim against every Inception-ResNet variant in ``counts`` (unmodified variant tables)."""
    networks = []
    for variant, layer_counts in counts.items():
        model = build_model(variant, device="meta")
        networks.append(_Network(variant, model, trace_operations(model), layer_counts))
    # The claims are about the Inception-ResNets; Inception-v4 is there to be compared with.
    checked = [n for n in networks if n.model.config.residual]
    return [Claim(source, text, tuple(check(n, networks) for n in checked)) for source, text, check in _CLAIMS]


def _total_layers(net: _Network, _: list[_Network]) -> Verdict:
    hits = [c.name for c in net.counts.conventions if c.total == ARTICLE_TOTAL]
    if hits:
        return Verdict(net.variant, TRUE, f"{', '.join(hits)} gives {ARTICLE_TOTAL}.")
    nearest = sorted(net.counts.conventions, key=lambda c: abs(c.total - ARTICLE_TOTAL))[:2]
    listed = "; ".join(f"{c.name} = {c.total}" for c in nearest)
    return Verdict(net.variant, FALSE, f"No convention gives {ARTICLE_TOTAL}; nearest: {listed}.")


def _breakdown(net: _Network, networks: list[_Network]) -> Verdict:
    own_sum = sum(ARTICLE_BREAKDOWN.values())
    parts = []
    matched = 0
    for key, value in ARTICLE_BREAKDOWN.items():
        if key not in {comp.key for comp in net.model.components}:
            continue
        names = [c.name for c in net.counts.conventions if c.per_component.get(key) == value]
        matched += bool(names)
        title = next(comp.title for comp in net.model.components if comp.key == key)
        actual = net.counts.convention("conv_layers").per_component[key]
        parts.append(f"{title} ~{value}: " + (", ".join(names) if names else f"no convention (it has {actual} convs)"))
    uncovered = [comp.title for comp in net.model.components if comp.key not in ARTICLE_BREAKDOWN]
    evidence = f"The rows add up to {own_sum}, not {ARTICLE_TOTAL}. " + "; ".join(parts) + "."
    if uncovered:
        evidence += f" Left out: {', '.join(uncovered)}."
    return Verdict(net.variant, FALSE if matched < len(parts) else PARTLY, evidence)


def _repeats(net: _Network, _: list[_Network]) -> Verdict:
    r = net.model.config.repeats
    verdict = TRUE if r == PAPER_V2.repeats else FALSE  # the claim is the paper's Figure 15
    return Verdict(net.variant, verdict, f"{r.a} x A, {r.b} x B, {r.c} x C.")


def _scales(net: _Network, _: list[_Network]) -> Verdict:
    scales = [b.scale for b in net.residual_blocks()]
    inside = [s for s in scales if 0.1 <= s <= 0.3]
    values = ", ".join(f"{s:g}" for s in sorted(set(scales)))
    evidence = f"{len(inside)} of {len(scales)} residual blocks scale by 0.1 to 0.3 (scales used: {values})."
    if len(inside) == len(scales):
        if net.variant != "released":
            evidence += " The paper gives no per-block values; these are the released code's."
        return Verdict(net.variant, TRUE, evidence)
    outside = [name for name, m in net.model.named_modules() if isinstance(m, InceptionResNetBlock) and m.scale > 0.3]
    return Verdict(net.variant, PARTLY, evidence + f" Unscaled: {', '.join(outside)}.")


def _no_bn_after_sum(net: _Network, _: list[_Network]) -> Verdict:
    bns = [op for op in net.ops if op.kind == "batch_norm"]
    after_sum = [op for op in bns if any(net.ops[i].kind == "residual_add" for i in op.inputs)]
    after_conv = [op for op in bns if all(net.ops[i].kind == "conv" for i in op.inputs)]
    verdict = TRUE if not after_sum else FALSE
    return Verdict(
        net.variant,
        verdict,
        f"{len(after_sum)} of {len(bns)} batch norms read a residual sum; {len(after_conv)} read a convolution.",
    )


def _bn_in_every_block(net: _Network, _: list[_Network]) -> Verdict:
    blocks = net.residual_blocks()
    with_bn = [b for b in blocks if any(isinstance(m, nn.BatchNorm2d) for m in b.modules())]
    linear_with_bn = 0  # the linear 1x1 is a bare Conv2d: check that nothing normalises it
    for op in net.ops:
        if op.kind == "batch_norm" and any(net.ops[i].target.endswith(".conv2d") for i in op.inputs):
            linear_with_bn += 1
    return Verdict(
        net.variant,
        TRUE if len(with_bn) == len(blocks) else FALSE,
        f"{len(with_bn)} of {len(blocks)} residual blocks have batch norms in their branches; "
        f"{linear_with_bn} of their {len(blocks)} linear 1x1 convs is followed by one.",
    )


def _filter_expansion(net: _Network, _: list[_Network]) -> Verdict:
    blocks = net.residual_blocks()
    widths = {}
    bare = 0
    for block in blocks:
        conv = block.conv2d
        widths[type(block).__name__] = f"{conv.in_channels}->{conv.out_channels}"
        bare += conv.kernel_size == (1, 1) and conv.out_channels == block.out_channels
    consumers = {op.target for op in net.ops for i in op.inputs if net.ops[i].target.endswith(".conv2d")}
    activated = [t for t in consumers if t.endswith(("relu", "act"))]
    described = ", ".join(f"{name} {w}" for name, w in widths.items())
    return Verdict(
        net.variant,
        TRUE if bare == len(blocks) and not activated else FALSE,
        f"{bare} of {len(blocks)} residual blocks end in a 1x1 conv with no activation that widens the "
        f"concatenated branches back to the block's input width ({described}). The reduction blocks have none.",
    )


def _cost(net: _Network, networks: list[_Network]) -> Verdict:
    macs = net.counts.whole.macs
    if net.variant == "paper-v1":
        v3 = inception_v3_macs()
        ratio = macs / v3
        verdict = TRUE if 0.8 <= ratio <= 1.25 else FALSE
        return Verdict(
            net.variant,
            verdict,
            f"{macs / 1e9:.2f} GMACs against torchvision's Inception-v3 at 299x299, {v3 / 1e9:.2f} GMACs "
            f"({ratio:.2f}x).",
        )
    v4 = next((n for n in networks if n.variant == "inception-v4"), None)
    if net.variant in ("paper-v2", "released") and v4 is not None:
        ratio = macs / v4.counts.whole.macs
        params = net.counts.whole.params / v4.counts.whole.params
        v1 = next((n.counts.whole.macs for n in networks if n.variant == "paper-v1"), None)
        vs_v1 = f" It costs {macs / v1:.2f}x paper-v1." if v1 and net.variant == "paper-v2" else ""
        blocks = " / ".join(map(str, net.counts.repeats))
        return Verdict(
            net.variant,
            TRUE if 0.8 <= ratio <= 1.25 else FALSE,
            f"{macs / 1e9:.2f} GMACs ({blocks} blocks) against Inception-v4's {v4.counts.whole.macs / 1e9:.2f} "
            f"({ratio:.2f}x), {params:.2f}x its parameters.{vs_v1}",
        )
    return Verdict(net.variant, UNCHECKED, f"{macs / 1e9:.2f} GMACs; the claim is about the paper's networks.")


def _other_paper_variant(net: _Network, networks: list[_Network]) -> _Network | None:
    if net.variant not in ("paper-v1", "paper-v2"):
        return None
    return next((n for n in networks if n.variant in ("paper-v1", "paper-v2") and n.variant != net.variant), None)


def _same_reductions(net: _Network, networks: list[_Network]) -> Verdict:
    other = _other_paper_variant(net, networks)
    if other is None:
        return Verdict(net.variant, UNCHECKED, "the claim compares the paper's v1 and v2.")
    parts, same_layout, same_widths = [], True, True
    for key in ("reduction_a", "reduction_b"):
        layout = _structure(net, key) == _structure(other, key)
        widths = _widths(net, key) == _widths(other, key)
        same_layout &= layout
        same_widths &= widths
        title = next(c.title for c in net.model.components if c.key == key)
        parts.append(
            f"{title}: {'same' if layout else 'different'} layout, {'same' if widths else 'different'} widths "
            f"({_widths(net, key)} here, {_widths(other, key)} in {other.variant})"
        )
    stem_differs = _structure(net, "stem") != _structure(other, "stem")
    parts.append(f"stems: {'different' if stem_differs else 'the same'}")
    verdict = TRUE if same_layout and same_widths and stem_differs else PARTLY if same_layout else FALSE
    return Verdict(net.variant, verdict, "; ".join(parts) + ".")


def _v1_v2_widths_only(net: _Network, networks: list[_Network]) -> Verdict:
    other = _other_paper_variant(net, networks)
    if other is None:
        return Verdict(net.variant, UNCHECKED, "the claim compares the paper's v1 and v2.")
    differ = [comp.title for comp in net.model.components if _structure(net, comp.key) != _structure(other, comp.key)]
    if not differ:
        return Verdict(net.variant, TRUE, f"Every component has the same layout as {other.variant}'s.")
    return Verdict(
        net.variant,
        PARTLY,
        f"Same block types and schema as {other.variant}, but the layout differs in: {', '.join(differ)}.",
    )


def _keras_features(net: _Network, _: list[_Network]) -> Verdict:
    last = next(c for c in net.counts.components[::-1] if c.key != "head")
    if net.variant != "released":
        return Verdict(
            net.variant, UNCHECKED, f"Keras builds the released network (here: {shape_text(last.output_shape)})."
        )
    return Verdict(
        net.variant,
        TRUE,
        f"Without its head the released network gives {shape_text(last.output_shape)} at 299x299x3, "
        f"which the card's GlobalAveragePooling2D turns into {last.output_shape[1]} features.",
    )


def _structure(net: _Network, key: str) -> list[tuple[str, tuple[int, ...]]]:
    """A component's layout: each leaf module's type and kernel, in order, without widths."""
    comp = next((c for c in net.model.components if c.key == key), None)
    if comp is None:
        return []
    layout = []
    for name in comp.modules:
        for module in getattr(net.model, name).modules():
            if not any(module.children()):
                kernel = getattr(module, "kernel_size", ())
                layout.append((type(module).__name__, tuple(kernel) if isinstance(kernel, tuple) else (kernel,)))
    return layout


def _widths(net: _Network, key: str) -> list[int]:
    comp = next(c for c in net.model.components if c.key == key)
    return [
        m.out_channels for name in comp.modules for m in getattr(net.model, name).modules() if isinstance(m, nn.Conv2d)
    ]


def inception_v3_macs() -> int:
    """MACs of torchvision's Inception-v3 (no auxiliary head) on one 299x299 image."""
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=False, init_weights=False).to("meta").eval()
    stats = torchinfo.summary(model, input_size=(1, 3, 299, 299), device="meta", verbose=0)
    return int(stats.total_mult_adds)


_CLAIMS: tuple[tuple[str, str, Callable[[_Network, list[_Network]], Verdict]], ...] = (
    ("000", "Inception-ResNet-v2 has about 164 layers.", _total_layers),
    (
        "000",
        "Layer breakdown: stem ~9, A ~35, Reduction-A ~1, B ~100, Reduction-B ~1, C ~10, output ~1; total ~164.",
        _breakdown,
    ),
    ("000", "Inception-ResNet-A, -B and -C are repeated 5, 10 and 5 times.", _repeats),
    ("003", "The residuals are scaled by about 0.1 to 0.3 before the addition, for stability.", _scales),
    ("002", "Batch normalisation is not used after the summations.", _no_bn_after_sum),
    ("001", "Batch normalisation is used within each Inception block.", _bn_in_every_block),
    (
        "002",
        "Each Inception block is followed by a 1x1 convolution without activation (filter expansion) "
        "to match the input's depth.",
        _filter_expansion,
    ),
    (
        "002",
        "Inception-ResNet-v1 costs about as much as Inception-v3; Inception-ResNet-v2 about as much as Inception-v4.",
        _cost,
    ),
    ("002", "v1 and v2 have the same reduction blocks but different stems.", _same_reductions),
    ("003", "v1 and v2 share the architecture and differ only in widths.", _v1_v2_widths_only),
    (
        "001",
        "Keras InceptionResNetV2(include_top=False, input_shape=(299, 299, 3)) gives a feature map to pool.",
        _keras_features,
    ),
)

SOURCES: dict[str, str] = {
    "000": "an article answering the layer-count question",
    "001": "a study card with Keras code",
    "002": "an article on Inception-v4 and Inception-ResNets",
    "003": "study notes",
}
