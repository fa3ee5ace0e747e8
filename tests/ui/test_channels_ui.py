"""A session's own index: what uploads and zips become on disk, and what is refused."""

from __future__ import annotations

import io
import tempfile
import zipfile

import pytest

from explorer.runtime.images import sample_paths
from explorer.ui.channels import MAX_IMAGES, gather_images


class Upload:
    """What st.file_uploader gives: a name and the bytes."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_uploads_and_zips_become_files_named_without_their_folders(tmp_path):
    photo = sample_paths()[0].read_bytes()
    archive = zipped({"../../escape.jpg": photo, "trip/day1/cat.jpg": photo, "__MACOSX/._cat.jpg": b"x", "d/": b""})
    count = gather_images([Upload("cat.jpg", photo), Upload("holiday.zip", archive)], False, tmp_path / "in")
    assert count == 3
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["cat (1).jpg", "cat.jpg", "escape.jpg"]
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path.parent / "escape.jpg").exists()


def test_too_many_files_or_a_broken_zip_are_refused(tmp_path):
    many = [Upload(f"{n}.jpg", b"x") for n in range(MAX_IMAGES + 1)]
    with pytest.raises(ValueError, match=f"{MAX_IMAGES + 1} files: an index built here takes {MAX_IMAGES}"):
        gather_images(many, False, tmp_path / "a")
    with pytest.raises(ValueError, match="is not a zip file that can be read"):
        gather_images([Upload("broken.zip", b"PK\x03\x04 not really")], False, tmp_path / "b")
    assert gather_images([], True, tmp_path / "c") == len(sample_paths())


def test_an_index_of_uploads_that_fails_names_no_folder_of_the_server():
    """Built as the app builds it, a job of the server's queue: its failure, the line the page shows."""
    from explorer.nets import build_model
    from explorer.nets.weights import WeightsInfo
    from explorer.runtime import Engine
    from explorer.runtime.jobs import Jobs
    from explorer.ui.channels import index_job

    model = build_model("released", seed=0, repeats=(1, 1, 1))
    engine = Engine(model, WeightsInfo("random", random=True), device="cpu")
    out, work = index_job(engine, [Upload("notes.zip", zipped({"notes.txt": b"not a picture\n"}))], False)
    jobs = Jobs(workers=1)
    jobs.submit("me", ("index", out), "Indexing 1 image", work)
    ended = jobs.wait("me", timeout=300)
    assert ended is not None and ended.state == "failed"
    assert ended.error.startswith("your files hold"), ended.error
    assert tempfile.gettempdir() not in ended.error and "explorer-indexes" not in ended.error
