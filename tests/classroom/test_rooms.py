"""Class rooms in this process and in a real Redis: only the teacher's secret moves a room, followers read each
move once, rooms expire an hour after the teacher was last seen."""

from __future__ import annotations

import time

import pytest

from explorer.classroom.rooms import MemoryRooms, RedisRooms, RoomError, View, normal_code, rooms_from_environment
from tests.classroom.servers import redis_server


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
def rooms(request, redis_url):
    return MemoryRooms() if request.param == "memory" else RedisRooms(redis_url)


def test_the_teacher_moves_a_room_and_followers_read_each_move(rooms):
    code, secret = rooms.open(View("map", {"node": "mixed_6a"}))
    assert normal_code(code.lower()) == code and len(secret) >= 32
    first = rooms.read(code)
    assert first.view == View("map", {"node": "mixed_6a"}) and first.version == 1
    assert rooms.move(code, secret, View("tour", {"step": "3"})) == 2
    assert rooms.move(code, secret, View("channels", {"block": "repeat.3", "channel": "7"})) == 3
    now = rooms.read(code)
    assert now.version == 3 and now.view.page == "channels" and now.view.params["channel"] == "7"
    other, _ = rooms.open(View("", {}))
    assert other != code and rooms.read(other).view.page == ""  # rooms do not share views


def test_a_move_without_the_teacher_s_secret_is_refused_and_changes_nothing(rooms):
    code, secret = rooms.open(View("map", {}))
    _, another_teachers = rooms.open(View("map", {}))
    for forged in ("", "guess", another_teachers, secret[:-1]):
        with pytest.raises(RoomError, match=f"only the teacher who opened room {code} can move it"):
            rooms.move(code, forged, View("tour", {"step": "9"}))
        with pytest.raises(RoomError):
            rooms.close(code, forged)
    assert rooms.read(code).version == 1 and rooms.read(code).view.page == "map"
    with pytest.raises(RoomError, match="there is no room ZZZZZZ"):
        rooms.move("ZZZZZZ", secret, View("map", {}))
    rooms.close(code, secret)
    assert rooms.read(code) is None


def test_views_that_no_page_could_be_are_refused(rooms):
    code, secret = rooms.open(View("map", {}))
    with pytest.raises(RoomError, match="at most 20 short parameters"):
        rooms.move(code, secret, View("map", {str(i): "x" for i in range(21)}))
    with pytest.raises(RoomError, match="short texts"):
        rooms.move(code, secret, View("map", {"block": "x" * 300}))


def test_codes_as_typed_and_codes_that_cannot_be():
    assert normal_code(" k7q-f3m ") == "K7QF3M"
    for bad in ("K7QF3", "K7QF3MM", "K7QF0M", "<script>"):
        with pytest.raises(RoomError, match="6 letters and digits"):
            normal_code(bad)


def test_a_room_expires_an_hour_after_the_teacher_was_last_seen():
    hours = [0.0]
    rooms = MemoryRooms(clock=lambda: hours[0] * 3600)
    code, secret = rooms.open(View("map", {}))
    hours[0] = 0.9
    rooms.heartbeat(code, secret)  # the teacher's tab is still open
    hours[0] = 1.8
    assert rooms.read(code) is not None  # 0.9 h since the heartbeat
    hours[0] = 1.95
    assert rooms.read(code) is None
    with pytest.raises(RoomError, match="an hour without its teacher closes it"):
        rooms.move(code, secret, View("map", {}))


def test_redis_expires_a_room_by_its_own_clock_and_a_heartbeat_renews_it(redis_url):
    import redis

    rooms = RedisRooms(redis_url, expires_s=2)
    code, secret = rooms.open(View("map", {}))
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl(f"room:{code}") <= 2
    client.expire(f"room:{code}", 100)
    rooms.heartbeat(code, secret)  # the hour (here 2 s) starts again
    assert 0 < client.ttl(f"room:{code}") <= 2
    deadline = time.monotonic() + 30
    while rooms.read(code) is not None:  # gone by Redis's own expiry, not ours
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_store_is_chosen_by_the_environment(monkeypatch, redis_url):
    monkeypatch.delenv("EXPLORER_ROOMS", raising=False)
    assert isinstance(rooms_from_environment(), MemoryRooms)
    monkeypatch.setenv("EXPLORER_ROOMS", redis_url)
    assert isinstance(rooms_from_environment(), RedisRooms)
    monkeypatch.setenv("EXPLORER_ROOMS", "postgres://x")
    with pytest.raises(RoomError, match="EXPLORER_ROOMS is memory or a redis:// address"):
        rooms_from_environment()
