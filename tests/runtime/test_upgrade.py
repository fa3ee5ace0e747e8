"""From plain kernels to compiled ones whatever torch a server meets (explorer.runtime.upgrade), on the CPU: the
GPU runner's code with the small network, servers as processes of their own (tests/compile_server.py).

AOTInductor is made to crash as it does on torch 2.11 with CUDA 13 (tests/crash_ahead: the build process dies
of a segmentation fault), so that the servers take the next way: torch.compile in a child process, then in
each server from the cache it left. (On the GPU: benchmarks/serving_gpu.py on the device.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from explorer.runtime.builds import Request
from explorer.runtime.handover import compiled_rows
from explorer.runtime.upgrade import WAYS, Memory, compile_setting, upgrade
from tests.ahead_build import SIZE, network

ROOT = Path(__file__).resolve().parents[2]
CRASHING_AHEAD = ROOT / "tests" / "crash_ahead"


def start_server(root: Path, crash_ahead: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "EXPLORER_COMPILE")}
    env["PYTHONPATH"] = os.pathsep.join([*([str(CRASHING_AHEAD)] if crash_ahead else []), str(ROOT)])
    command = [sys.executable, "-m", "tests.compile_server", str(root), str(SIZE)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report(server: subprocess.Popen) -> dict:
    out, err = server.communicate(timeout=600)
    assert server.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def handed_manifest(root: Path) -> dict:
    (folder,) = root.glob("*-handed")
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two servers started at once on an empty cache, where AOTInductor crashes."""
    root = tmp_path_factory.mktemp("compiled")
    servers = [start_server(root, crash_ahead=True) for _ in range(2)]
    return root, [report(server) for server in servers]


def test_where_packages_crash_two_servers_compile_once_in_a_child_and_serve_compiled_rows(served):
    root, reports = served
    for got in reports:
        assert got["way"] == "handed", got
        assert got["failures"] == [f"{WAYS['ahead']} failed: the build process died of signal 11 (SIGSEGV)"]
        assert got["notes"] == []  # compiled kernels serve: nothing to tell every result
        # Compiled in the server from the cache the child filled: every graph found, none compiled afresh.
        assert got["cache hits"] > 0 and got["cache misses"] == 0
        assert got["largest relative difference"] < 1e-4 and got["same top-5 classes"]
    assert sorted(got["built"] for got in reports) == [False, True]  # one child compiled; the other server waited
    (remembered,) = (root / "paths").glob("*.json")
    record = json.loads(remembered.read_text())
    assert record["worked"] == "handed" and "signal 11" in record["failed"]["ahead"]
    manifest = handed_manifest(root)
    assert manifest["cache"] == str((root / "inductor").resolve()) and len(manifest["files"]) > 10


def test_a_restart_goes_straight_to_the_way_that_worked(served):
    root, _ = served
    got = report(start_server(root, crash_ahead=False))  # AOTInductor would work now: it is not tried again
    assert got["way"] == "handed" and not got["built"]
    assert got["cache misses"] == 0 and got["same top-5 classes"]
    assert got["log"] == [f"{WAYS['ahead']} failed before: the build process died of signal 11 (SIGSEGV)"]
    assert "to try again" in got["failures"][0]
    assert not [p for p in root.iterdir() if p.is_dir() and p.name.startswith("paper-v2") and "handed" not in p.name]


def test_a_damaged_cache_is_rebuilt_not_loaded(served):
    root, _ = served
    files = handed_manifest(root)["files"]
    cache = root / "inductor"
    damaged = max(files, key=lambda name: (cache / name).stat().st_size)
    whole = (cache / damaged).read_bytes()
    (cache / damaged).write_bytes(whole[: len(whole) // 2])  # a disk that filled up mid-write
    got = report(start_server(root, crash_ahead=False))
    assert got["way"] == "handed" and got["built"], got  # built again by a child, not compiled from
    assert any(line.startswith("1 of the compile cache's files are missing or damaged") for line in got["log"])
    assert got["cache misses"] == 0 and got["largest relative difference"] < 1e-4 and got["same top-5 classes"]
    rebuilt = handed_manifest(root)["files"]
    assert rebuilt.keys() >= files.keys() - {damaged}  # the intact files are still checked at every start
    assert rebuilt.keys() - files.keys()  # and what the child wrote again (an entry's name is its content's digest)
    assert damaged not in rebuilt and not (cache / damaged).exists()  # the damaged entry is gone, not served


def test_when_every_way_fails_each_says_why_in_a_line_and_plain_kernels_serve(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.delenv("EXPLORER_COMPILE", raising=False)
    model = network(seed=0)
    request = Request(model.config, "cpu", 1, 8, 20, "fp32")  # too small an input for the stem's strides
    log: list[str] = []
    first = upgrade(model, request, partial(compiled_rows, model, request), root=tmp_path, log=log.append)
    assert first.way == "plain" and first.made is None and not first.built
    assert [line.split(" failed: ")[0] for line in first.failures] == list(WAYS.values())
    assert all(len(line.splitlines()) == 1 and line.split(" failed: ")[1] for line in first.failures)
    # Each in the network's own words, found by an eager run before anything compiles, not the compiler's.
    assert all("Kernel size can't be greater than actual input size" in line for line in first.failures), first.failures
    assert first.notes == (*first.failures, "running uncompiled kernels")
    assert log == list(first.failures)  # the console says the same, a line a way
    worked, failed = Memory(request, tmp_path).read()
    assert worked is None and sorted(failed) == sorted(WAYS)
    again: list[str] = []
    second = upgrade(model, request, partial(compiled_rows, model, request), root=tmp_path, log=again.append)
    assert second.way == "plain" and all("to try again" in line for line in second.failures)
    assert all(" failed before: " in line for line in again)  # nothing tried: each failed before


def test_the_setting_pins_one_way_or_none():
    assert compile_setting("auto") == compile_setting("1") == ["ahead", "handed", "here"]
    assert compile_setting("thread") == compile_setting("here") == ["here"]
    assert compile_setting("handed") == ["handed"] and compile_setting("0") == [] and compile_setting("off") == []
