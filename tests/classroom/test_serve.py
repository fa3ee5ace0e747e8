"""irv2-explorer class: real nginx, redis-server and app processes. The cookie routes a browser to the replica
that answered it, a forged cookie goes to the group, a killed replica is started again, bad arguments are a line."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from explorer.classroom.serve import Classroom, ServeError, free_port
from tests.cli import explorer

ROOT = Path(__file__).resolve().parents[2]


def fetch(port: int, cookie: str | None = None) -> tuple[bytes, str, list[str]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_stcore/health", headers={"Cookie": f"explorer_replica={cookie}"} if cookie else {}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.read(), reply.headers["X-Explorer-Replica"], reply.headers.get_all("Set-Cookie")


def test_replicas_behind_nginx_keep_a_browser_on_its_replica_and_come_back_when_killed():
    lines: list[str] = []
    port = free_port()
    served = Classroom(2, port, "127.0.0.1", lines.append)
    try:
        served.start()
        check = subprocess.run(["nginx", "-t", "-p", str(served.run), "-c", str(served.run / "nginx.conf")],
                               capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0, check.stderr
        replicas = [f"127.0.0.1:{p}" for p in served.ports]
        body, first, cookies = fetch(port)
        assert body == b"ok" and first in replicas
        assert f"explorer_replica={first}; Path=/; HttpOnly; SameSite=Lax" in cookies
        other = next(r for r in replicas if r != first)
        assert {fetch(port, other)[1] for _ in range(5)} == {other}  # the cookie keeps a browser where it is
        assert fetch(port, "10.9.9.9:22")[1] in replicas  # a forged cookie: the group, never that address
        victim = served.replicas[1]
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        answered = fetch(port, replicas[1])  # its replica dead: the group answers, the cookie follows
        assert answered[1] == replicas[0] and f"explorer_replica={replicas[0]}; Path=/" in " ".join(answered[2])
        stop_at = time.monotonic() + 120
        served.watch(until=lambda: victim.alive() or time.monotonic() > stop_at)
        assert victim.restarts == 1 and any("replica 2 exited" in line for line in lines)
        while fetch(port, replicas[1])[1] != replicas[1]:  # back, and its browsers with it
            assert time.monotonic() < stop_at
            time.sleep(0.2)
    finally:
        served.stop()
    assert not served.run.exists() and not any(c.alive() for c in (served.nginx, served.redis, *served.replicas))


def test_bad_arguments_and_missing_programs_are_one_line(monkeypatch):
    with pytest.raises(ServeError, match="--replicas takes 1 to 64, not 0"):
        Classroom(0, free_port())
    done = explorer("class", "--replicas", "0")
    assert done.returncode == 2 and done.stderr.strip() == "error: --replicas takes 1 to 64, not 0"
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("explorer.classroom.serve.Path.exists", lambda self: False)
    with pytest.raises(ServeError, match="nginx is not installed"):
        Classroom(1, free_port())
