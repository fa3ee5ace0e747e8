"""The package's layout keeps its contract (pyproject's [tool.importlinter]): one direction of imports between the
sub-packages, only the UI imports streamlit, no cycles; and the house rules on sizes."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("nets", "analysis", "runtime", "explain", "channels", "drawing", "lessons", "text", "cli", "ui")


def lint_imports(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    # --no-cache: the copy's graph must be built from its own files
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=where, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def copy_of_the_package(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("layout")
    shutil.copytree(ROOT / "explorer", where / "explorer", ignore=shutil.ignore_patterns("__pycache__", "samples"))
    shutil.copy(ROOT / "pyproject.toml", where)
    return where


def test_the_package_keeps_its_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.count("KEPT") == 3


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("nets/units.py", "from explorer.ui import common", "One direction of imports"),
        ("runtime/labels.py", "import streamlit", "Only the UI imports streamlit"),
        ("drawing/palette.py", "from explorer.drawing import graph", "No import cycles"),
    ],
)
def test_the_contract_fails_on_a_wrong_import(copy_of_the_package, module, line, broken):
    path = copy_of_the_package / "explorer" / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # the wrong import\n")
        done = lint_imports(copy_of_the_package)
    finally:
        path.write_text(original)
    assert done.returncode != 0
    assert f"{broken}" in done.stdout.split("Broken contracts")[-1], done.stdout[-3000:]


def test_only_init_and_main_at_the_root_and_every_package_has_a_public_api():
    at_root = sorted(p.name for p in (ROOT / "explorer").glob("*.py"))
    assert at_root == ["__init__.py", "__main__.py"]
    for package in PACKAGES:
        if package == "ui":  # the app: no library API to export
            continue
        module = importlib.import_module(f"explorer.{package}")
        assert module.__all__, package
        for name in module.__all__:  # each name is there, from the module the package says
            assert getattr(module, name) is not None, (package, name)
        # a name that is also a module's would turn into the module once that module is imported
        modules = {p.stem for p in (ROOT / "explorer" / package).glob("*.py")}
        assert not modules & set(module.__all__), package


def test_no_module_over_400_lines_and_no_class_over_150():
    too_long = []
    for path in sorted((ROOT / "explorer").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            lines = node.end_lineno - node.lineno + 1 if isinstance(node, ast.ClassDef) else 0
            if lines > 150:
                too_long.append(f"{path.relative_to(ROOT)}: class {node.name}, {lines} lines")
    assert not too_long, too_long
