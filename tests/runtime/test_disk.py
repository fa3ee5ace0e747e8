"""What sessions write on the server: a quota per session, a cap per server (oldest out first), and the weights
key of a session's own checkpoint, which names nothing outside its folder."""

from __future__ import annotations

import os

import pytest

from explorer.nets.loading import parse_weights_key
from explorer.nets.weights import WeightsError
from explorer.runtime.disk import QuotaError, SessionDisk

MB = 2**20


def write(path, megabytes: float, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * int(megabytes * MB))
    os.utime(path, (1_000_000 + age, 1_000_000 + age))


def test_a_session_past_its_quota_is_refused_in_a_line(tmp_path):
    disk = SessionDisk({tmp_path / "heads": 2}, session_quota=300 * MB, server_cap=10_000 * MB)
    first = tmp_path / "heads" / "aaaaaaaa" / "one.safetensors"
    disk.check("aaaaaaaa", 218 * MB, "This checkpoint")
    write(first, 218, 0)
    disk.claim("aaaaaaaa", first)
    assert disk.used("aaaaaaaa") == 218 * MB
    with pytest.raises(QuotaError) as refused:
        disk.check("aaaaaaaa", 218 * MB, "This checkpoint")
    assert str(refused.value) == (
        "This checkpoint (218 MB) would take this session past its 300 MB on the server (218 MB used): "
        "download what you made instead"
    )
    disk.check("bbbbbbbb", 218 * MB, "This checkpoint")  # another session has its own quota
    first.unlink()
    disk.check("aaaaaaaa", 218 * MB, "This checkpoint")  # what is gone counts no more


def test_past_its_cap_the_server_drops_the_oldest_entries_never_the_new_one(tmp_path):
    heads, indexes = tmp_path / "heads", tmp_path / "indexes"
    disk = SessionDisk({heads: 2, indexes: 1}, session_quota=10_000 * MB, server_cap=5 * MB)
    write(heads / "aaaaaaaa" / "old.safetensors", 2, age=0)
    write(indexes / "0123" / "images" / "cat.jpg", 2, age=1)
    write(indexes / "0123" / "index" / "manifest.json", 0.5, age=1)
    write(heads / "bbbbbbbb" / ".x.partial", 3, age=2)  # work in progress is not an entry
    newest = heads / "cccccccc" / "new.safetensors"
    write(newest, 2, age=3)
    assert [e.path.name for e in disk.entries()] == ["old.safetensors", "0123", "new.safetensors"]
    dropped = disk.claim("cccccccc", newest)
    assert dropped == [heads / "aaaaaaaa" / "old.safetensors"]  # 6.5 MB down to 4.5: the oldest alone
    assert newest.exists() and (indexes / "0123").exists()
    huge = heads / "dddddddd" / "huge.safetensors"
    write(huge, 8, age=4)
    assert disk.claim("dddddddd", huge) == [indexes / "0123", newest]  # all else, but never what was just made
    assert disk.owned("cccccccc") == [] and disk.owned("dddddddd") == [huge]


@pytest.mark.parametrize(
    "name",
    ["new-heads/../x.safetensors", "new-heads/0a1b2c3d/../../x.safetensors", "sub/x.safetensors", "new-heads/zz/x.pt"],
)
def test_a_session_file_key_names_only_a_file_of_a_sessions_folder(name):
    assert parse_weights_key("file:new-heads/0a1b2c3d-77/h.safetensors") == "file:new-heads/0a1b2c3d-77/h.safetensors"
    with pytest.raises(WeightsError, match="give a file name inside"):
        parse_weights_key(f"file:{name}")
