"""The folder the index tests read (tests/index_folder.py makes it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.index_folder import make_folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """21 readable images and 2 files that are not (read-only for the tests: copy it to change it)."""
    return make_folder(tmp_path_factory.mktemp("images"))
