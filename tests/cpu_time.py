"""Where the suite's CPU goes: a pytest plugin that records each test's wall time and CPU time, its own process's
and its child processes' (servers, compilers, commands), and a report of them by test file.

On a machine the suite keeps busy, a test's wall time (``--durations``) says as much about what ran beside it as
about the test; its CPU seconds do not, and their sum over the files is what the cores must get through.

    .venv/bin/python -m pytest -p tests.cpu_time --cpu-times=cpu.jsonl -n auto --dist loadfile
    .venv/bin/python -m tests.cpu_time cpu.jsonl        # by file, most CPU first

A child's CPU counts once the test has waited for it (the kernel adds it then): a module's server is counted in the
test whose teardown stops it, a fixture's setup in the first test that uses it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-times", metavar="FILE", help="append each test's wall and CPU seconds to FILE (JSON lines)")


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    out = item.config.getoption("--cpu-times")
    if not out:
        yield
        return
    start, (own, children) = time.perf_counter(), _cpu()
    yield
    wall, (own_after, children_after) = time.perf_counter() - start, _cpu()
    row = {"test": item.nodeid, "wall": wall, "own": own_after - own, "children": children_after - children}
    with open(out, "a") as file:  # one short line a write: workers appending at once do not interleave
        file.write(json.dumps(row) + "\n")


def by_file(rows: list[dict]) -> list[tuple[str, int, float, float, float]]:
    """(file, tests, wall, own CPU, children's CPU) for each test file, most CPU first."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for row in rows:
        total = totals[row["test"].split("::")[0]]
        total[0] += 1
        total[1] += row["wall"]
        total[2] += row["own"]
        total[3] += row["children"]
    table = [(name, int(t[0]), t[1], t[2], t[3]) for name, t in totals.items()]
    return sorted(table, key=lambda r: r[3] + r[4], reverse=True)


def main(path: str) -> int:
    try:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        print(f"{path}: not a --cpu-times file ({error})", file=sys.stderr)
        return 2
    table = by_file(rows)
    print(f"{'CPU s':>8} {'own':>8} {'children':>8} {'wall s':>8} {'tests':>5}  file")
    for name, count, wall, own, children in table:
        print(f"{own + children:8.1f} {own:8.1f} {children:8.1f} {wall:8.1f} {count:5d}  {name}")
    cpu = sum(r[3] + r[4] for r in table)
    print(f"{cpu:8.1f} CPU s in {len(rows)} tests")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m tests.cpu_time FILE", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
