"""Server time of the network map: selecting a block and showing every output inside it.

    python -m benchmarks.map_page [--rounds 5]

Runs the map page as the server does (Streamlit's AppTest: the page's script run, every element
built, no browser) on the CPU with random weights. After one warm-up visit (the model, the
image's block inputs and the drawings' layouts cached, as on a server that has been running),
it times, per round:

- a block opened for the first time for this image (its inside computed: its submodules run and
  every output reduced to maps), for blocks of each kind;
- the same block selected again (everything cached);
- a unit inside a block (its convolution, batch norm and ReLU).

Reports the median seconds of the page run for each; the target is 0.3 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EXPLORER_WEIGHTS", "random")

MAP_PAGE = str(ROOT / "explorer" / "ui" / "pages" / "map.py")
NEW_BLOCKS = ["repeat.3", "mixed_6a", "repeat_1.7", "mixed_7a", "repeat_2.4", "block8"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_file(MAP_PAGE, default_timeout=600)
    page.query_params["image"] = "cat"

    def visit(node: str) -> float:
        page.query_params["node"] = node
        start = time.perf_counter()
        page.run()
        took = time.perf_counter() - start
        if page.exception or page.error:
            raise SystemExit(f"{node}: {page.exception or page.error}")
        return took

    for node in ["repeat_1.0", *NEW_BLOCKS]:  # warm-up on the cat: the model, each drawing's layout
        visit(node)
    first, again, unit = [], [], []
    by_block: dict[str, list[float]] = {node: [] for node in NEW_BLOCKS}
    images = ["coffee", "rocket", "brick", "astronaut", "camera"]  # each block's inside is new for these
    for round_ in range(min(args.rounds, len(images))):
        page.query_params["image"] = images[round_ % len(images)]
        visit("repeat.0")  # this image's block inputs, computed once per image
        for node in NEW_BLOCKS:
            first.append(visit(node))
            by_block[node].append(first[-1])
            again.append(visit(node))
        unit.append(visit("repeat_1.7.branch1.1"))
    print(f"cpu cores {os.cpu_count()}, {args.rounds} rounds, {len(NEW_BLOCKS)} blocks a round")
    print(f"a block opened for the first time: median {statistics.median(first):.3f} s, max {max(first):.3f} s")
    print(f"the same block selected again:     median {statistics.median(again):.3f} s, max {max(again):.3f} s")
    print(f"a unit inside a block:             median {statistics.median(unit):.3f} s, max {max(unit):.3f} s")
    print("first time, by block: " + ", ".join(f"{n} {statistics.median(t):.3f} s" for n, t in by_block.items()))


if __name__ == "__main__":
    main()
