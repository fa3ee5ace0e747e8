"""One memory budget over the engines of other settings, the caches of results and the gallery: the least
recently used entry goes first, whichever holds it, and what was just made stays."""

from __future__ import annotations

import threading

import numpy as np
import torch

from explorer.channels.features.gallery import Gallery
from explorer.channels.features.visualise import Settings
from explorer.nets import make_config
from explorer.nets.weights import random_weights
from explorer.runtime import Engine
from explorer.runtime.engine_pool import EnginePool
from explorer.runtime.images import load_image, sample_path
from explorer.runtime.memory import MemoryBudget, SizedCache, nbytes_of

MB = 2**20


def build(repeats: tuple[int, int, int]) -> Engine:
    return Engine(*random_weights(make_config("released", repeats=repeats)), device="cpu")


def test_the_sizes_of_results_are_their_arrays_tensors_and_bytes():
    cat = load_image(sample_path("cat")).image
    result = build((1, 1, 1)).run(cat)
    assert nbytes_of(result) >= result.image.nbytes + sum(nbytes_of(block) for block in result.blocks)
    assert sum(nbytes_of(block) for block in result.blocks) > 100_000  # the maps of every block
    assert nbytes_of((b"x" * 1000, np.zeros(250, np.float32), torch.zeros(10, dtype=torch.float64))) >= 2080


def test_engines_results_and_pictures_share_one_budget_oldest_first():
    first, second = (1, 1, 1), (1, 2, 1)
    both = build(first).nbytes + build(second).nbytes
    # Room for a build's height too (an engine and its model side by side) while the pool fills...
    memory = MemoryBudget(budget=both + 2 * build(second).nbytes + 20 * MB)
    pool = EnginePool(build, budget=10 * both, memory=memory)  # the pool's own budget is not what binds here
    cache, gallery, settings = SizedCache(memory), Gallery(memory=memory), Settings(steps=4, size=64)
    cache.get("old maps", lambda: np.zeros(10 * MB, np.uint8))
    gallery.images(pool.get(first).source, "net", "conv2d_1a", [0], settings, "cpu")
    pool.get(second)
    assert memory.held() <= memory.budget and memory.dropped == 0
    memory.budget = both + 20 * MB  # ...then a budget that holds the two engines and 20 MB besides
    cache.get("new maps", lambda: np.zeros(15 * MB, np.uint8))
    assert "old maps" not in cache and memory.dropped == 1  # the least recently used went, which was enough
    assert pool.stats().keys == (first, second)
    assert gallery.known("net", "conv2d_1a", "channel", settings, 0) is not None  # a picture looked at again
    cache.get("more maps", lambda: np.zeros(10 * MB, np.uint8))
    assert pool.stats().keys == (second,)  # the engine used before it went, the picture stayed
    assert gallery.known("net", "conv2d_1a", "channel", settings, 0) is not None
    assert memory.held() <= memory.budget
    cache.get("too big", lambda: np.zeros(memory.budget + MB, np.uint8))
    assert "too big" in cache and "new maps" not in cache  # what was just made stays...
    assert pool.stats().keys == (second,)  # ...and so does the newest engine


def test_a_result_asked_for_by_several_threads_at_once_is_made_once():
    cache, made, started = SizedCache(MemoryBudget(budget=100 * MB)), [], threading.Barrier(4)

    def make() -> bytes:
        made.append(1)
        return b"maps"

    def ask() -> None:
        started.wait()
        assert cache.get("same", make) == b"maps"

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1


def test_an_engine_dropped_while_a_run_holds_it_still_counts_until_it_is_let_go():
    first, second = (1, 1, 1), (1, 2, 1)
    memory = MemoryBudget(budget=build(first).nbytes + 5 * MB)
    pool = EnginePool(build, budget=10 * memory.budget, memory=memory)
    running = pool.get(first)  # a session's run holds it
    pool.get(second)  # over the budget: the first is dropped from the pool, but the run still has it
    assert pool.stats().keys == (second,)
    assert memory.held() >= running.nbytes + pool.get(second).nbytes
    cache = SizedCache(memory)
    cache.get("maps", lambda: np.zeros(MB, np.uint8))
    cache.get("more maps", lambda: np.zeros(MB, np.uint8))
    assert "maps" not in cache  # the results gave way to the engine still in use
    del running
    memory.enforce()  # the next result's enforcement collects it
    assert memory.held() < 2 * pool.get(second).nbytes
