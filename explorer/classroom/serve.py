"""A class of hundreds on one machine: N app processes behind nginx on one port, Redis for the rooms.

Streamlit keeps a session in the process its websocket reached, and uploads and media are HTTP requests that
must reach that same process (elsewhere: HTTP 400). nginx answers a browser's first request from the replica with
the fewest connections and sets a cookie naming the replica that answered; later requests go to that replica.
When it is down, the group answers instead, Streamlit's page reconnects there (its session starts again; a
student following a room rejoins it from the address) and the cookie moves with it, so its uploads follow.
The replicas share one cookie secret (so the XSRF token a page holds passes on any of them), the weights cache
and the on-disk caches (they live in the user's folders), and Redis for the rooms. A replica that exits is
started again; Ctrl-C stops them all.

Several machines: the same nginx block with the hosts' replicas in its upstream, and EXPLORER_ROOMS pointing
every replica at one Redis (docs: "Several replicas").
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "ui" / "serve" / "app.py"

NGINX = """\
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    client_max_body_size 30m;
    # The cookie names the replica that answered this browser last; only the replicas' own addresses are
    # honoured (anything else goes to the group: a cookie cannot send a request anywhere else).
    map $cookie_explorer_replica $replica {{
        default explorer;
{known}
    }}
    # The replica that answered: the last address when nginx tried more than one ("a:1, b:2" or "a:1 : b:2").
    map $upstream_addr $answered {{ "~(?<last>[^ ,:]+:[0-9]+)$" $last; default $upstream_addr; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    upstream explorer {{
        least_conn;
{servers}
    }}
    server {{
        listen {address}:{port};
        location / {{
            proxy_pass http://$replica;
            include {run}/proxy.conf;
            # Its replica gone: the group answers (the page reconnects there) and the cookie follows the session.
            error_page 502 504 = @group;
        }}
        location @group {{
            proxy_pass http://explorer;
            include {run}/proxy.conf;
        }}
    }}
}}
"""

PROXY = """\
proxy_http_version 1.1;
proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection $connection_upgrade;
proxy_set_header Host $host;
proxy_read_timeout 86400s;
proxy_connect_timeout 2s;
proxy_next_upstream error timeout http_502 http_503;
add_header Set-Cookie "explorer_replica=$answered; Path=/; HttpOnly; SameSite=Lax" always;
add_header X-Explorer-Replica $answered always;
"""


class ServeError(RuntimeError):
    """What stops the class from starting, in a line."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
            return reply.read() == b"ok"
    except OSError:
        return False


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    restarts: int = 0

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Classroom:
    """Redis, ``replicas`` app processes on free loopback ports, and nginx on ``port``; :meth:`watch` restarts
    what exits until stopped."""

    def __init__(self, replicas: int, port: int, address: str = "0.0.0.0", say: Callable[[str], None] = print) -> None:
        if not 1 <= replicas <= 64:
            raise ServeError(f"--replicas takes 1 to 64, not {replicas}")
        for program in ("nginx", "redis-server"):
            if shutil.which(program) is None and not Path("/usr/sbin", program).exists():
                raise ServeError(f"{program} is not installed (Debian: apt-get install nginx redis-server)")
        self.say = say
        self.run = Path(tempfile.mkdtemp(prefix="explorer-class-"))
        self.port, self.address = port, address
        redis_port = free_port()
        self.rooms = f"redis://127.0.0.1:{redis_port}/0"
        cookie = secrets.token_hex(32)  # one for all: a page's XSRF token passes on every replica
        home = str(SCRIPT.parents[3])  # where ``explorer`` is imported from (a checkout, or site-packages)
        path = os.pathsep.join(p for p in (home, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "EXPLORER_ROOMS": self.rooms, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        env["STREAMLIT_SERVER_COOKIE_SECRET"] = cookie  # Streamlit takes it from here, not from its command line
        redis_command = [_program("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1"]
        self.redis = Child("redis", [*redis_command, "--save", "", "--appendonly", "no"], env, self.run / "redis.log")
        self.ports = [free_port() for _ in range(replicas)]
        self.replicas = [
            Child(f"replica {i + 1}", _streamlit(p), env, self.run / f"replica-{i + 1}.log")
            for i, p in enumerate(self.ports)
        ]
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in self.ports)
        known = "\n".join(f'        "127.0.0.1:{p}" 127.0.0.1:{p};' for p in self.ports)
        user = "user root;\n" if os.geteuid() == 0 else ""  # as root its workers would be nobody, locked out of run/
        conf = NGINX.format(user=user, run=self.run, servers=servers, known=known, address=address, port=port)
        (self.run / "nginx.conf").write_text(conf)
        (self.run / "proxy.conf").write_text(PROXY)
        nginx = [_program("nginx"), "-p", str(self.run), "-c", str(self.run / "nginx.conf"), "-g", "daemon off;"]
        self.nginx = Child("nginx", [*nginx, "-e", str(self.run / "nginx-error.log")], env, self.run / "nginx.log")

    def start(self, timeout: float = 180) -> None:
        self.redis.start()
        for replica in self.replicas:
            replica.start()
        self.nginx.start()
        deadline = time.monotonic() + timeout
        while not all(healthy(p) for p in self.ports) or not healthy(self.port):
            for child in (self.redis, self.nginx, *self.replicas):
                if not child.alive():
                    raise ServeError(f"{child.name} stopped at start: {_tail(child.log)}")
            if time.monotonic() > deadline:
                raise ServeError(f"the replicas did not answer within {timeout:.0f} s (logs in {self.run})")
            time.sleep(0.5)
        for replica, port in zip(self.replicas, self.ports, strict=True):
            self.say(f"{replica.name}: 127.0.0.1:{port}, pid {replica.process.pid if replica.process else '?'}")
        self.say(f"Logs: {self.run}")
        self.say(f"The class is served at http://{self._shown_host()}:{self.port} by {len(self.replicas)} replicas")

    def watch(self, until: Callable[[], bool] = lambda: False) -> None:
        """Restart whatever exits, about twice a second, until ``until()``."""
        while not until():
            for child in (self.redis, self.nginx, *self.replicas):
                if not child.alive():
                    child.restarts += 1
                    self.say(
                        f"{child.name} exited ({child.process.returncode if child.process else '?'}): started again"
                    )
                    child.start()
                    self.say(f"{child.name}: pid {child.process.pid if child.process else '?'}")
            time.sleep(0.5)

    def stop(self) -> None:
        for child in (self.nginx, *self.replicas, self.redis):
            child.stop()
        shutil.rmtree(self.run, ignore_errors=True)

    def _shown_host(self) -> str:
        return "localhost" if self.address in ("0.0.0.0", "127.0.0.1", "::") else self.address


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _streamlit(port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(SCRIPT),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
    ]  # fmt: skip


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(nothing logged)"
