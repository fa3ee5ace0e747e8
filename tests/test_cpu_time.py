"""tests/cpu_time.py counts a test's own CPU and its child processes' apart, and reports them by file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cpu_time import main

ROOT = Path(__file__).resolve().parents[1]

BUSY = """
import subprocess, sys, time

def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def test_busy_here():
    spin(0.5)

def test_busy_in_a_child():
    child = "import time\\nend = time.process_time() + 0.5\\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", child], check=True)

def test_idle():
    time.sleep(0.3)
"""


def test_own_and_childrens_cpu_are_told_apart_and_reported_by_file(tmp_path, capsys):
    (tmp_path / "test_busy.py").write_text(BUSY)
    out = tmp_path / "cpu.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.cpu_time", f"--cpu-times={out}", "test_busy.py"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    rows = {row["test"].split("::")[1]: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows["test_busy_here"]["own"] >= 0.45 and rows["test_busy_here"]["children"] < 0.1
    assert rows["test_busy_in_a_child"]["children"] >= 0.45 and rows["test_busy_in_a_child"]["own"] < 0.3
    assert rows["test_idle"]["wall"] >= 0.3 and rows["test_idle"]["own"] + rows["test_idle"]["children"] < 0.2
    assert main(str(out)) == 0
    report = capsys.readouterr().out
    assert "test_busy.py" in report.splitlines()[1] and report.splitlines()[-1].endswith("CPU s in 3 tests")
    assert main(str(tmp_path / "test_busy.py")) == 2  # not such a file: one line, no traceback
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a --cpu-times file" in error
