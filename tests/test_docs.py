"""The documentation cannot drift from the code: every Python and shell block of the tutorials runs here, on random
weights and the bundled samples, and the site builds with mkdocs --strict (broken links and API references fail)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import explorer

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
SCRATCH = "/tmp/explorer-tutorial"  # the tutorials' scratch paths, moved into the test's own folder


def blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def environment() -> dict[str, str]:
    return {**os.environ, "EXPLORER_WEIGHTS": "random", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_every_python_block_of_a_tutorial_runs(page, tmp_path):
    code = "\n\n".join(blocks(page, "python")).replace(SCRATCH, str(tmp_path / "scratch"))
    if not code:
        pytest.skip(f"{page.name} has no Python block")
    script = tmp_path / f"{page.stem}.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=environment(), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"{page.name}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{page.name}: its blocks print what they show, and printed nothing"


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_every_shell_command_of_a_tutorial_runs(page, tmp_path, monkeypatch):
    commands = [line[2:] for block in blocks(page, "console") for line in block.splitlines() if line.startswith("$ ")]
    if not commands:
        pytest.skip(f"{page.name} has no shell block")
    monkeypatch.chdir(ROOT)  # the tutorials' paths are the checkout's
    monkeypatch.setenv("EXPLORER_WEIGHTS", "random")
    for number, command in enumerate(commands):
        words = shlex.split(command.replace(SCRATCH, str(tmp_path / "scratch")))
        assert words[:3] == ["python", "-m", "explorer"], f"{page.name}: only the explorer's commands run here"
        if number == 0:  # the first as the reader runs it, a process of its own; the rest in this one (tests/cli.py)
            done = subprocess.run([sys.executable, *words[1:]], cwd=ROOT, env=environment(), capture_output=True,
                                  text=True, timeout=600)  # fmt: skip
        else:
            done = explorer(*words[3:])
        assert done.returncode == 0, f"{page.name}: {command}\n{done.stderr[-3000:]}"


def test_the_site_builds_strictly_and_every_page_is_in_its_navigation(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env={**environment(), "NO_MKDOCS_2_WARNING": "1"}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Every convention and every layer kind" in (tmp_path / "site/reference/api/index.html").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    listed = set(re.findall(r":\s*\"?([\w/-]+\.md)", (ROOT / "mkdocs.yml").read_text()))
    assert pages == listed, pages ^ listed


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)
