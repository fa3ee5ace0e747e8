"""``irv2-explorer app``: serve the web app, as ``make run`` does."""

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
