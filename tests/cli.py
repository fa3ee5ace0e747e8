"""The command line run inside the test's own process: ``explorer(*args)`` is ``python -m explorer ARGS`` without
starting Python, importing torch and building the caches again (about 2 s of a core each time, some 40 times
in the suite). What a process adds is tested where it matters, with real processes: ``tests/test_docs.py`` runs
the tutorials' commands, ``tests/test_package.py`` the installed command, ``tests/channels/test_processes.py``
Ctrl-C and torchrun, ``tests/nets/test_weights.py`` the Hub's address (read once, as huggingface_hub starts).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import traceback


def explorer(*args: str, binary: bool = False) -> subprocess.CompletedProcess:
    """``main(args)``'s exit status and what it wrote, as ``subprocess.run(..., capture_output=True)`` gives them
    (text unless ``binary``). An exception that escapes ``main`` is a traceback on stderr and status 1, as Python
    would make it, so that a test's ``"Traceback" not in stderr`` still means what it says."""
    from explorer.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)  # with .buffer, for binary output
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(list(args)) or 0
        except SystemExit as exit_:  # argparse's usage errors, and a command's own exit
            if isinstance(exit_.code, str):
                print(exit_.code, file=stderr)
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            traceback.print_exc(file=stderr)
            status = 1
        stdout.flush()
        stderr.flush()
    if binary:
        return subprocess.CompletedProcess(["explorer", *args], status, out.getvalue(), err.getvalue())
    return subprocess.CompletedProcess(
        ["explorer", *args], status, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8")
    )
