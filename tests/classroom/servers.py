"""Real servers for the class-room tests: redis-server on a free loopback port, and the class (nginx, replicas)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from explorer.classroom.serve import free_port


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server of its own (no persistence), its URL once it answers PING."""
    import redis

    port = free_port()
    folder = tempfile.mkdtemp(prefix="explorer-redis-")
    settings = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder]
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), *settings],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
