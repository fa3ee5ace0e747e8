"""Engines for other settings share one memory budget: built when asked for, least recently used dropped."""

from __future__ import annotations

import threading

import pytest

from explorer.explain import Explainer
from explorer.nets import make_config
from explorer.nets.weights import random_weights
from explorer.runtime import Engine
from explorer.runtime.engine_pool import DEFAULT_BUDGET_MB, EnginePool, budget_from_environment
from explorer.runtime.images import load_image, sample_path

SMALL = [(1, 1, 1), (1, 2, 1), (2, 1, 1)]  # three small networks, each a real engine


def build(repeats: tuple[int, int, int]) -> Engine:
    return Engine(*random_weights(make_config("released", repeats=repeats)), device="cpu")


@pytest.fixture(scope="module")
def sizes() -> dict[tuple[int, int, int], int]:
    return {key: build(key).nbytes for key in SMALL}


def test_the_least_recently_used_engine_goes_when_the_budget_is_full(sizes):
    pool = EnginePool(build, budget=sizes[SMALL[0]] + sizes[SMALL[1]] + sizes[SMALL[2]] // 2)
    first = pool.get(SMALL[0])
    pool.get(SMALL[1])
    assert pool.get(SMALL[0]) is first  # held: no second build, and now the most recently used
    pool.get(SMALL[2])
    stats = pool.stats()
    assert stats.keys == (SMALL[0], SMALL[2]) and stats.dropped == 1 and stats.built == 3
    assert stats.nbytes == sizes[SMALL[0]] + sizes[SMALL[2]] <= stats.budget
    pool.get(SMALL[1])  # dropped before: built again
    assert pool.stats().built == 4


def test_a_budget_smaller_than_one_engine_keeps_the_newest(sizes):
    pool = EnginePool(build, budget=1)
    for key in SMALL:
        assert pool.get(key).config.repeats.as_tuple() == key
    assert pool.stats().keys == (SMALL[-1],)


def test_sessions_asking_at_once_wait_for_one_build():
    calls: list[tuple[int, int, int]] = []

    def counted(key: tuple[int, int, int]) -> Engine:
        calls.append(key)
        return build(key)

    pool = EnginePool(counted, budget=2**40)
    got: list[Engine] = []
    threads = [threading.Thread(target=lambda: got.append(pool.get(SMALL[0]))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [SMALL[0]] and len({id(e) for e in got}) == 1


def test_an_engine_counts_its_attribution_copy_once_it_is_made(sizes):
    engine = build(SMALL[0])
    before = engine.nbytes
    Explainer(engine).explain(load_image(sample_path("cat")).image, "saliency")
    assert engine.nbytes > before
    pool = EnginePool(lambda key: engine if key == "grown" else build(key), budget=before + sizes[SMALL[1]])
    pool.get("grown")
    pool.get(SMALL[1])
    assert pool.stats().keys == (SMALL[1],)  # the grown engine no longer fits beside it


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("EXPLORER_ENGINE_BUDGET_MB", "512")
    assert budget_from_environment() == 512 * 2**20
    monkeypatch.setenv("EXPLORER_ENGINE_BUDGET_MB", "lots")
    assert budget_from_environment() == DEFAULT_BUDGET_MB * 2**20
