"""``irv2-explorer app``: serve the web app, as ``make run`` does; ``irv2-explorer class``: serve it from several
processes behind nginx, as ``make class`` does (explorer.classroom.serve)."""

from __future__ import annotations

import argparse
import sys


def _app(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "ui" / "serve" / "app.py"
    options = ["--server.port", str(args.port)] + (["--server.address", args.address] if args.address else [])
    # This process becomes Streamlit's server (only the UI imports streamlit; the CLI hands over to it).
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(script), *options])


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


def add_to(commands: argparse._SubParsersAction) -> None:
    app = commands.add_parser("app", help="serve the web app (as make run does)")
    app.add_argument("--port", type=_port, default=8501, help="default 8501")
    app.add_argument("--address", help="the address to listen on (default: every interface)")
    app.set_defaults(run=_app)
    add_class_to(commands)


def _class(args: argparse.Namespace) -> int:
    import signal
    import threading

    from explorer.classroom.serve import Classroom

    room = Classroom(args.replicas, args.port, args.address or "0.0.0.0", lambda line: print(line, flush=True))
    stopping = threading.Event()
    for sign in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sign, lambda *_: stopping.set())
    try:
        room.start()
        print("Ctrl-C stops every process.", flush=True)
        room.watch(stopping.is_set)
    finally:
        room.stop()
    return 0


def add_class_to(commands: argparse._SubParsersAction) -> None:
    served = commands.add_parser(
        "class",
        help="serve a class: N app processes behind nginx (sticky sessions) on one port, Redis for the rooms",
    )
    served.add_argument("--replicas", type=int, default=2, help="app processes (default 2; about 30 students each)")
    served.add_argument("--port", type=_port, default=8501, help="default 8501")
    served.add_argument("--address", help="the address to listen on (default: every interface)")
    served.set_defaults(run=_class)
