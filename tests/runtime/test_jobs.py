"""The server's job queue: one job a session, a limit on what runs at once, a shared job for the same request,
cancelling, and a real feature visualisation cancelled half-way that leaves nothing behind."""

from __future__ import annotations

import threading

import pytest
import torch

from explorer.channels.features.gallery import Gallery
from explorer.channels.features.visualise import Settings
from explorer.nets import build_model
from explorer.runtime.jobs import JobCancelled, JobRefused, Jobs


class Held:
    """Work that runs until released, reporting as it goes (so that a cancel reaches it), counting its runs."""

    def __init__(self, result: object = "made") -> None:
        self.started, self.release, self.runs, self.result = threading.Event(), threading.Event(), 0, result
        self.cancelled = threading.Event()

    def __call__(self, report) -> object:
        self.runs += 1
        try:
            report(0.5, "half-way")
            self.started.set()
            while not self.release.wait(0.01):
                report(0.5, "half-way")
        except JobCancelled:
            self.cancelled.set()
            raise
        return self.result


def test_a_second_session_waits_in_the_queue_and_runs_when_the_first_ends():
    jobs, first, second = Jobs(workers=1), Held("one"), Held("two")
    jobs.submit("a", "k1", "first", first, estimate_s=40)
    assert first.started.wait(30)
    queued = jobs.submit("b", "k2", "second", second, estimate_s=10)
    assert (queued.state, queued.ahead) == ("queued", 1)
    assert 0 < queued.wait_s <= 40
    assert jobs.view("a").state == "running" and jobs.view("a").text == "half-way"
    assert jobs.busy()[0] == 2
    first.release.set()
    assert jobs.wait("a", timeout=30).result == "one"
    assert second.started.wait(30)
    second.release.set()
    ended = jobs.wait("b", timeout=30)
    assert (ended.state, ended.result) == ("done", "two")
    assert jobs.collect("b").result == "two" and jobs.view("b") is None  # handed over once


def test_one_job_a_session_and_the_same_request_shared_by_two_sessions():
    jobs, work = Jobs(workers=2), Held()
    jobs.submit("a", "same", "shared work", work)
    assert work.started.wait(30)
    with pytest.raises(JobRefused, match="your job “shared work” is not finished: wait for it or cancel it first"):
        jobs.submit("a", "other", "more", Held())
    assert jobs.submit("a", "same", "shared work", Held()).sessions == 1  # asking again is not a second job
    joined = jobs.submit("b", "same", "shared work", Held())
    assert joined.sessions == 2 and joined.state == "running"
    work.release.set()
    assert jobs.wait("a", timeout=30).result == jobs.wait("b", timeout=30).result == "made"
    assert work.runs == 1
    jobs.collect("a")
    jobs.submit("a", "other", "more", other := Held())  # free again once collected
    other.release.set()
    assert jobs.wait("a", timeout=30).state == "done"


def test_cancel_stops_a_job_only_when_nobody_waits_for_it():
    jobs, work, queued = Jobs(workers=1), Held(), Held()
    jobs.submit("a", "k", "shared", work)
    jobs.submit("b", "k", "shared", work)
    jobs.submit("c", "later", "queued", queued)
    assert work.started.wait(30)
    jobs.cancel("a")
    assert jobs.view("a") is None and jobs.view("b").state == "running" and not work.cancelled.is_set()
    jobs.cancel("c")  # a queued job nobody waits for is dropped before it starts
    jobs.cancel("b")
    assert jobs.idle(30)
    assert work.cancelled.is_set() and queued.runs == 0


def test_a_full_queue_and_a_failing_job_each_say_so_in_a_line():
    jobs, holder = Jobs(workers=1, max_queued=1), Held()
    jobs.submit("a", "k1", "first", holder)
    assert holder.started.wait(30)
    jobs.submit("b", "k2", "second", Held())
    with pytest.raises(JobRefused, match="the server has 1 jobs waiting, its most: try again in a few minutes"):
        jobs.submit("c", "k3", "third", Held())
    jobs.cancel("b")
    holder.release.set()
    jobs.wait("a", timeout=30)

    def broken(report) -> None:
        raise ValueError("the upload is not an image")

    jobs.submit("c", "k4", "broken", broken)
    ended = jobs.wait("c", timeout=30)
    assert (ended.state, ended.error) == ("failed", "the upload is not an image")


def test_a_visualisation_cancelled_half_way_keeps_nothing_and_a_second_ask_makes_it():
    model = build_model("released", seed=0, repeats=(1, 1, 1)).eval()
    gallery, settings = Gallery(), Settings(steps=24, size=96)
    jobs, halfway = Jobs(workers=1), threading.Event()
    steps_seen: list[int] = []

    def work(report) -> None:
        def progress(step: int, steps: int) -> None:
            steps_seen.append(step)
            if step >= steps // 2:
                halfway.set()
                halfway_reached.wait(30)
            report(step / steps, f"step {step} of {steps}")

        gallery.images(model, "net", "conv2d_2a", [0, 1], settings, torch.device("cpu"), progress=progress)

    halfway_reached = threading.Event()
    jobs.submit("a", "vis", "two channels", work)
    assert halfway.wait(120)
    jobs.cancel("a")
    halfway_reached.set()
    assert jobs.idle(60)  # the cancel lands at the job's next report
    assert max(steps_seen) < settings.steps
    assert gallery.known("net", "conv2d_2a", "channel", settings, 0) is None

    halfway_reached.set()
    jobs.submit("b", "vis", "two channels", work)
    assert jobs.wait("b", timeout=300).state == "done"
    assert gallery.known("net", "conv2d_2a", "channel", settings, 1).png.startswith(b"\x89PNG")
