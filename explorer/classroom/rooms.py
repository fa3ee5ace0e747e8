"""Class rooms: a teacher's view (a page and its address's parameters) that students' sessions follow.

Streamlit has no push from one session to another, so a room is a value in a store every server process reads:
the teacher's session writes each move, followers read it about once a second. Only the session that opened the
room can move it: it holds the room's secret (kept in that session, never in a link); the store keeps the
secret's hash. A room expires an hour after the teacher was last seen (each move and a heartbeat renew it).

:class:`MemoryRooms` keeps rooms in this process (one server); :class:`RedisRooms` in Redis, for replicas behind
one address (``EXPLORER_ROOMS=redis://host:port/db``). :func:`rooms_from_environment` picks one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

EXPIRES_S = 3600.0  # the teacher gone this long: the room is gone
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off a projector
CODE_LENGTH = 6
MAX_PARAMS = 20
MAX_TEXT = 200


class RoomError(ValueError):
    """A room that is not there, or a move its sender may not make: a line for people."""


@dataclass(frozen=True)
class View:
    """What followers show: a page (its url path, "" for the first page) and its address's parameters."""

    page: str
    params: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"page": self.page, "params": dict(self.params)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> View:
        found = json.loads(text)
        return cls(str(found["page"]), {str(k): str(v) for k, v in found["params"].items()})

    def checked(self) -> View:
        """The view, or a RoomError if it is not one a page could be (a move is a teacher's, but still input)."""
        if len(self.page) > MAX_TEXT or len(self.params) > MAX_PARAMS:
            raise RoomError("a view has one page and at most 20 short parameters")
        for key, value in self.params.items():
            if not isinstance(key, str) or not isinstance(value, str) or len(key) + len(value) > MAX_TEXT:
                raise RoomError("a view's parameters are short texts")
        return self


@dataclass(frozen=True)
class Room:
    code: str
    view: View
    version: int  # each move adds one: followers apply a view once


def normal_code(code: str) -> str:
    """A code as typed (any case, spaces, dashes) as it is stored; a RoomError when it cannot be one."""
    cleaned = "".join(code.split()).replace("-", "").upper()
    if len(cleaned) != CODE_LENGTH or any(c not in ALPHABET for c in cleaned):
        raise RoomError(f"a room's code is {CODE_LENGTH} letters and digits, like K7QF3M")
    return cleaned


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Rooms(Protocol):
    def open(self, view: View) -> tuple[str, str]:
        """A new room showing ``view``: its code and the teacher's secret."""

    def move(self, code: str, secret: str, view: View) -> int:
        """The teacher's move; its version. RoomError when the room is gone or the secret is not its."""

    def read(self, code: str) -> Room | None:
        """The room now, or None when there is none (never was, expired, closed)."""

    def heartbeat(self, code: str, secret: str) -> None:
        """The teacher is still there: the hour starts again."""

    def close(self, code: str, secret: str) -> None: ...


class MemoryRooms:
    """Rooms in this process's memory, for one server; ``clock`` for the tests' hours."""

    def __init__(self, expires_s: float = EXPIRES_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.expires_s, self._clock = expires_s, clock
        self._rooms: dict[str, tuple[str, Room, float]] = {}  # code: (secret's hash, room, teacher last seen)
        self._lock = threading.Lock()

    def open(self, view: View) -> tuple[str, str]:
        secret = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            code = _new_code()
            while code in self._rooms:
                code = _new_code()
            self._rooms[code] = (_hash(secret), Room(code, view.checked(), 1), self._clock())
        return code, secret

    def move(self, code: str, secret: str, view: View) -> int:
        with self._lock:
            digest, room = self._owned(code, secret)
            moved = Room(room.code, view.checked(), room.version + 1)
            self._rooms[room.code] = (digest, moved, self._clock())
            return moved.version

    def read(self, code: str) -> Room | None:
        with self._lock:
            self._expire()
            found = self._rooms.get(code)
            return found[1] if found else None

    def heartbeat(self, code: str, secret: str) -> None:
        with self._lock:
            digest, room = self._owned(code, secret)
            self._rooms[room.code] = (digest, room, self._clock())

    def close(self, code: str, secret: str) -> None:
        with self._lock:
            self._owned(code, secret)
            del self._rooms[code]

    def _owned(self, code: str, secret: str) -> tuple[str, Room]:
        self._expire()
        found = self._rooms.get(code)
        if found is None:
            raise RoomError(f"there is no room {code} (an hour without its teacher closes it)")
        if not hmac.compare_digest(found[0], _hash(secret)):
            raise RoomError(f"only the teacher who opened room {code} can move it")
        return found[0], found[1]

    def _expire(self) -> None:
        now = self._clock()
        for code in [c for c, (_, _, seen) in self._rooms.items() if now - seen > self.expires_s]:
            del self._rooms[code]


class RedisRooms:
    """Rooms in Redis (``room:CODE``, a hash of the secret's hash, the view and its version), expiring by Redis's
    own TTL an hour after the teacher's last move or heartbeat. A move is checked and written in one script, so
    two replicas never interleave."""

    _MOVE = """
    local digest = redis.call('HGET', KEYS[1], 'secret')
    if not digest then return -1 end
    if digest ~= ARGV[1] then return -2 end
    if ARGV[2] ~= '' then
        redis.call('HSET', KEYS[1], 'view', ARGV[2])
        redis.call('HINCRBY', KEYS[1], 'version', 1)
    end
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    return tonumber(redis.call('HGET', KEYS[1], 'version'))
    """

    def __init__(self, url: str, expires_s: float = EXPIRES_S) -> None:
        import redis

        self.expires_s = expires_s
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        self._move = self._redis.register_script(self._MOVE)

    def open(self, view: View) -> tuple[str, str]:
        secret = secrets.token_urlsafe(24)
        fields = {"secret": _hash(secret), "view": view.checked().to_json(), "version": 1}
        while True:
            code = _new_code()
            if self._redis.hsetnx(f"room:{code}", "secret", fields["secret"]):  # the code is ours
                self._redis.hset(f"room:{code}", mapping=fields)
                self._redis.expire(f"room:{code}", int(self.expires_s))
                return code, secret

    def move(self, code: str, secret: str, view: View) -> int:
        return self._run(code, secret, view.checked().to_json())

    def read(self, code: str) -> Room | None:
        found = self._redis.hmget(f"room:{code}", "view", "version")
        if found[0] is None:
            return None
        return Room(code, View.from_json(found[0]), int(found[1]))

    def heartbeat(self, code: str, secret: str) -> None:
        self._run(code, secret, "")

    def close(self, code: str, secret: str) -> None:
        self._run(code, secret, "")
        self._redis.delete(f"room:{code}")

    def _run(self, code: str, secret: str, view: str) -> int:
        found = int(self._move(keys=[f"room:{code}"], args=[_hash(secret), view, int(self.expires_s)]))
        if found == -1:
            raise RoomError(f"there is no room {code} (an hour without its teacher closes it)")
        if found == -2:
            raise RoomError(f"only the teacher who opened room {code} can move it")
        return found


def rooms_from_environment() -> Rooms:
    """``EXPLORER_ROOMS=redis://...``: Redis; unset or ``memory``: this process."""
    where = os.environ.get("EXPLORER_ROOMS", "memory").strip()
    if where in ("", "memory"):
        return MemoryRooms()
    if where.startswith(("redis://", "rediss://", "unix://")):
        return RedisRooms(where)
    raise RoomError(f"EXPLORER_ROOMS is memory or a redis:// address, not {where[:60]!r}")
