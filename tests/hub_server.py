"""A stand-in for the Hugging Face Hub on 127.0.0.1: serves files the tests make, can cut transfers."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFiles:
    files: dict[str, Path] = field(default_factory=dict)  # "repo/filename" -> file on disk
    etags: dict[Path, str] = field(default_factory=dict)
    cut_after: int | None = None  # close the connection after this many body bytes...
    cuts_left: int = 0  # ...for this many GET requests
    requests: list[str] = field(default_factory=list)
    hold: threading.Event | None = None  # GET requests wait until this is set: a download in progress


class _Handler(BaseHTTPRequestHandler):
    hub: HubFiles

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _lookup(self) -> Path | None:
        # /{org}/{name}/resolve/{revision}/{filename}
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.hub.files.get(f"{parts[0]}/{parts[1]}/{'/'.join(parts[4:])}")
        return None

    def _headers(self, path: Path, length: int, status: int = 200, start: int = 0) -> None:
        size = path.stat().st_size
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{self.hub.etags[path]}"')
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.hub.requests.append(f"HEAD {self.path}")
        path = self._lookup()
        if path is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self._headers(path, path.stat().st_size)

    def do_GET(self) -> None:
        self.hub.requests.append(f"GET {self.path} {self.headers.get('Range', '')}")
        path = self._lookup()
        if path is None:
            self.send_response(404)
            self.end_headers()
            return
        if self.hub.hold is not None:
            self.hub.hold.wait(timeout=120)
        data = path.read_bytes()
        start = 0
        requested = self.headers.get("Range", "")
        if requested.startswith("bytes="):
            start = int(requested.removeprefix("bytes=").split("-")[0])
        body = data[start:]
        self._headers(path, len(body), 206 if start else 200, start)
        if self.hub.cuts_left > 0 and self.hub.cut_after is not None:
            self.hub.cuts_left -= 1
            self.wfile.write(body[: self.hub.cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the transfer breaks off mid-file
            return
        self.wfile.write(body)


class HubServer:
    """``with HubServer() as hub: hub.endpoint`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.state = HubFiles()
        handler = type("Handler", (_Handler,), {"hub": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo: str, filename: str, path: Path) -> None:
        self.state.files[f"{repo}/{filename}"] = path
        self.state.etags[path] = hashlib.sha256(path.read_bytes()).hexdigest()

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
