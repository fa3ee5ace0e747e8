"""Layer counts: every convention on every variant, pinned to Keras and timm for the released network."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys

import pytest
import torchinfo
from torch import nn

from explorer.analysis.claims import ARTICLE_BREAKDOWN, check_claims
from explorer.analysis.conventions import RULES
from explorer.analysis.counting import count_layers
from explorer.analysis.reconciliation import reconcile
from explorer.analysis.report import to_csv
from explorer.analysis.tracing import KINDS, trace_operations
from explorer.nets import VARIANTS, build_model, make_config
from tests.cli import explorer


@pytest.fixture(scope="module")
def all_counts():
    return {variant: count_layers(make_config(variant)) for variant in VARIANTS}


@pytest.fixture(scope="module")
def released(all_counts):
    return all_counts["released"]


# ------------------------------------------------------------------------- Keras and timm agree

KERAS_SCRIPT = r"""
import collections, json, keras
model = keras.applications.InceptionResNetV2(weights=None)
classes = collections.Counter(type(layer).__name__ for layer in model.layers)
longest = {}
for layer in model.layers:  # longest Conv2D/Dense path over Keras' own layer graph
    parents = [] if type(layer).__name__ == "InputLayer" else [
        t._keras_history.operation for t in layer._inbound_nodes[0].input_tensors]
    weight = int(type(layer).__name__ in ("Conv2D", "Dense"))
    longest[layer.name] = weight + max((longest[p.name] for p in parents), default=0)
print(json.dumps({
    "layers": len(model.layers),
    "with_weights": sum(1 for layer in model.layers if layer.weights),
    "classes": classes,
    "params": model.count_params(),
    "longest_conv_dense_path": longest[model.layers[-1].name],
}))
"""


@pytest.fixture(scope="module")
def keras_facts() -> dict:
    if importlib.util.find_spec("keras") is None:  # importing it here would pick TensorFlow's backend
        pytest.skip("keras is not installed (make test installs it)")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_keras_layer_counts_match_keras_itself(released, keras_facts):
    assert released.convention("keras_layers").total == keras_facts["layers"] == 782
    assert released.convention("weighted_layers").total == keras_facts["with_weights"] == 449
    assert released.convention("longest_conv_fc_path").total == keras_facts["longest_conv_dense_path"]
    classes = keras_facts["classes"]
    kinds = released.whole.kinds
    assert kinds["conv"] == classes["Conv2D"] == 244
    assert kinds["batch_norm"] == classes["BatchNormalization"]
    assert kinds["activation"] == classes["Activation"]
    assert kinds["concat"] == classes["Concatenate"]
    assert kinds["residual_add"] == classes["CustomScaleLayer"]
    assert kinds["fc"] == classes["Dense"]
    assert released.keras_params == keras_facts["params"]


def test_released_counts_match_timm(released):
    timm = pytest.importorskip("timm")
    model = timm.create_model("inception_resnet_v2", pretrained=False).eval()
    modules = list(model.modules())
    assert released.whole.kinds["conv"] == sum(isinstance(m, nn.Conv2d) for m in modules)
    assert released.whole.kinds["batch_norm"] == sum(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert released.whole.kinds["fc"] == sum(isinstance(m, nn.Linear) for m in modules)
    assert released.whole.params == sum(p.numel() for p in model.parameters())
    stats = torchinfo.summary(model, input_size=(1, 3, 299, 299), verbose=0, depth=99)
    timm_macs = sum(layer.macs for layer in stats.summary_list if layer.class_name in ("Conv2d", "Linear"))
    ours = torchinfo.summary(
        build_model(device="meta"), input_size=(1, 3, 299, 299), device="meta", verbose=0, depth=99
    )
    our_macs = sum(layer.macs for layer in ours.summary_list if layer.class_name in ("Conv2d", "Linear"))
    assert our_macs == timm_macs


# ------------------------------------------------------------------- every convention, every variant


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_components_add_up_to_the_whole(all_counts, variant):
    counts = all_counts[variant]
    for conv in counts.conventions:
        assert sum(conv.per_component.values()) == conv.total, conv.key
        assert list(conv.per_component) == [c.key for c in counts.components]
    for kind in KINDS:
        assert sum(c.kinds[kind] for c in counts.components) == counts.whole.kinds[kind]
    model = build_model(variant, device="meta")
    assert sum(c.params for c in counts.components) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_conventions_relate_as_their_definitions_say(all_counts, variant):
    counts = all_counts[variant]
    total = {c.key: c.total for c in counts.conventions}
    k = counts.whole.kinds
    assert total["conv_layers"] == k["conv"]
    assert total["conv_fc_layers"] == k["conv"] + k["fc"]
    assert total["weighted_layers"] == k["conv"] + k["batch_norm"] + k["fc"]
    # Keras: input + every layer kind, one CustomScaleLayer per scale-and-add, no flatten or dropout
    assert total["keras_layers"] == 1 + sum(k.values()) - k["scaling"] - k["other"]
    assert total["operations"] == sum(k.values())
    model = build_model(variant, device="meta")
    module_calls = [
        op
        for op in trace_operations(model)
        if op.kind in ("conv", "batch_norm", "activation", "pooling", "fc", "other")
    ]
    assert total["leaf_modules"] == len(module_calls)  # each leaf module is called exactly once
    assert total["longest_conv_fc_path"] < total["conv_fc_layers"]
    assert total["longest_operation_path"] < total["operations"]
    assert {c.key for c in counts.conventions} == {r.key for r in RULES}
    assert all(c.definition.endswith(".") for c in counts.conventions)


# The longest conv/FC path written out from the paper's figures: stem, then per block its deepest
# branch plus the linear 1x1, the reductions' deepest branch (3), and the FC layer.
HAND_LONGEST_PATH = {
    "released": 5 + 3 + 10 * 4 + 3 + 20 * 4 + 3 + 10 * 4 + 1 + 1,  # stem 5, Mixed_5b 3, conv2d_7b, FC
    "paper-v2": (3 + 1 + 4 + 1) + 5 * 4 + 3 + 10 * 4 + 3 + 5 * 4 + 1,  # Figure 3 stem: 9
    "paper-v1": 6 + 5 * 4 + 3 + 10 * 4 + 3 + 5 * 4 + 1,  # Figure 14 stem: 6
    # Inception-v4 (Figures 3-9): stem 9; A's deepest branch 3, Reduction-A 3, B's 5, Reduction-B 4,
    # C's 4 (1x1, 3x1, 1x3, then one of the split pair); no linear 1x1; the FC.
    "inception-v4": 9 + 4 * 3 + 3 + 7 * 5 + 4 + 3 * 4 + 1,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_longest_conv_fc_path_matches_the_figures(all_counts, variant):
    assert all_counts[variant].convention("longest_conv_fc_path").total == HAND_LONGEST_PATH[variant]


def test_counts_follow_user_chosen_repeats(released):
    shorter = count_layers(make_config("released", repeats=(5, 10, 5)))
    # an A block has 7 convs, a B or C block 5; each adds 4 to the longest conv path
    assert shorter.convention("conv_layers").total == 244 - 5 * 7 - 10 * 5 - 5 * 5
    assert shorter.convention("longest_conv_fc_path").total == 176 - 20 * 4
    assert shorter.components[2].title == "Inception-ResNet-A x5"
    assert not shorter.is_published_network
    assert all(c.reproduces == "" for c in shorter.conventions)  # no published figure is about this network


# ---------------------------------------------------------------------- published figures and claims


def test_reconciliation_explains_164_and_reproduces_the_rest(all_counts):
    rows = {r.figure.says: r for r in reconcile(list(all_counts.values()))}
    miss = rows["164 layers deep"]
    assert not miss.reproduced_by
    assert "176" in miss.explanation and "37 residual blocks instead of 40" in miss.explanation
    assert miss.nearest[0].value == 176
    for says in ("Depth 449", "about 780 layers", "244 convolutions", "55.8M parameters", "55.9M parameters"):
        assert rows[says].reproduced_by, says
        assert all(c.variant == "released" for c in rows[says].reproduced_by)


def test_claims_are_checked_per_variant(all_counts):
    claims = {c.claim: {v.variant: v for v in c.verdicts} for c in check_claims(all_counts)}

    def find(word: str) -> dict:
        return next(v for text, v in claims.items() if word in text)

    repeats = find("repeated 5, 10 and 5")
    assert (repeats["released"].verdict, repeats["paper-v2"].verdict) == ("false", "true")
    assert all(v.verdict == "false" for v in find("about 164").values())
    breakdown = find("breakdown")["paper-v2"]
    assert f"add up to {sum(ARTICLE_BREAKDOWN.values())}, not 164" in breakdown.evidence
    assert "Stem ~9: Longest conv/FC path" in breakdown.evidence  # the paper stem's depth is 9
    assert find("scaled by about 0.1")["released"].verdict == "partly"  # block8 is unscaled
    assert all(v.verdict == "true" for v in find("not used after the summations").values())
    assert "Block17 384->1088" in find("filter expansion")["released"].evidence
    assert find("Inception-v3")["paper-v1"].verdict == "true"


# ------------------------------------------------------------------------------------ CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return explorer(*args)


def test_cli_counts_json(released):
    result = run_cli("counts", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    conventions = {c["name"]: c for c in data["conventions"]}
    assert {"name", "definition", "total", "reproduces"} <= set(next(iter(conventions.values())))
    assert conventions["Layers with weights (Keras 'Depth')"]["total"] == 449
    components = data["components"]
    assert {"name", "params", "macs", "output_shape", "conv", "batch_norm"} <= set(components[0])
    assert components[-1]["name"] == "Whole network"
    assert sum(c["conv"] for c in components[:-1]) == components[-1]["conv"] == 244


def test_cli_counts_csv_and_table():
    result = run_cli("counts", "--variant", "paper-v1", "--format", "csv", "--repeats", "2", "3", "4")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    counts = count_layers(make_config("paper-v1", repeats=(2, 3, 4)))
    assert result.stdout == to_csv(counts)
    assert rows[-1]["component"] == "Whole network"
    assert int(rows[-1]["convolutions"]) == sum(int(r["convolutions"]) for r in rows[:-1])
    table = run_cli("counts", "--variant", "paper-v2")
    assert "Longest conv/FC path (MathWorks 'depth')" in table.stdout and " 96 " in table.stdout


def test_cli_claims_and_bad_input():
    result = run_cli("claims", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["claims"]) >= 10 and len(data["published_figures"]) == 6
    bad = run_cli("counts", "--format", "xml")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_tracing_leaves_other_threads_forward_passes_alone():
    """torch.fx patches nn.Module for the whole process while it traces: a session's forward pass in another
    thread must still run as itself (the server counts a variant while another session runs an image)."""
    import threading

    import torch

    from explorer.nets.weights import WeightsInfo
    from explorer.runtime import Engine
    from explorer.runtime.images import load_image
    from tests.conftest import SAMPLES

    # a small network: the threads' question is the same, and a forward pass is a fifth of the released one's
    engine = Engine(build_model("released", seed=1, repeats=(1, 1, 1)), WeightsInfo("r", random=True), device="cpu")
    image = load_image(SAMPLES / "cat.jpg").image
    expected = engine.block_inputs(image)
    done, tracing = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    traces = [0]

    def trace_repeatedly() -> None:
        try:
            while not done.is_set():
                trace_operations(build_model("paper-v1", device="meta"))
                traces[0] += 1
                tracing.set()
        except BaseException as error:  # reported below, in the test's own thread
            failures.append(error)
            tracing.set()

    tracer = threading.Thread(target=trace_repeatedly)
    tracer.start()
    try:
        assert tracing.wait(120)
        overlapped = 0
        while not overlapped and not failures:  # until a whole trace ran within one forward pass
            before = traces[0]
            got = engine.block_inputs(image)
            overlapped = traces[0] - before
            for name in expected:
                torch.testing.assert_close(got[name], expected[name])
    finally:
        done.set()
        tracer.join(120)
    assert not failures, failures


def test_several_sessions_can_trace_at_once():
    """Two threads counting different networks at the same moment, as two sessions moving sliders do."""
    import threading as _threading

    from explorer.analysis.counting import count_layers as _count
    from explorer.nets import make_config as _make

    configs = [_make("released", repeats=r) for r in ((2, 3, 2), (3, 2, 2), (2, 2, 3), (1, 1, 1))]
    found: dict[int, int] = {}
    errors: list[BaseException] = []

    def count(index: int) -> None:
        try:
            found[index] = _count(configs[index]).conventions[0].total
        except BaseException as error:  # reported below, with the others
            errors.append(error)

    threads = [_threading.Thread(target=count, args=(i,)) for i in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert found == {i: _count(c).conventions[0].total for i, c in enumerate(configs)}
