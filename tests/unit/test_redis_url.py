"""The state store's URL is read as redis-py reads it (without importing redis-py on the hot
path's start-up): the same host, port, db, user, password and socket path, and the same
refusal of other schemes."""

from __future__ import annotations

from typing import Any

import pytest
from redis.connection import parse_url as redis_py_parse_url

from triage.state.redis_wire import parse_url

URLS = [
    "redis://127.0.0.1:6379/0",
    "redis://localhost",
    "redis://localhost/3",
    "redis://:s3cr%40t@cache.internal:6380/2",
    "redis://user:p%3Ass@cache.internal:6380",
    "redis://user@cache.internal",
    "rediss://default:pw@redis.example.com:6380/1",
    "redis://[::1]:6379/4",
    "redis://host:6379/?db=5",
    "redis://host:6379/2?db=7",
    "unix:///var/run/valkey.sock",
    "unix:///tmp/r.sock?db=3",
    "unix://user:pw@/tmp/r.sock?db=1",
]

FIELDS = ("host", "port", "db", "username", "password", "path")


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    return {name: options[name] for name in FIELDS if options.get(name) not in (None, "")}


@pytest.mark.parametrize("url", URLS)
def test_urls_read_as_redis_py_reads_them(url: str) -> None:
    ours = _fields(parse_url(url))
    theirs = _fields(redis_py_parse_url(url))  # type: ignore[no-untyped-call]
    if "port" in theirs:
        theirs["port"] = int(theirs["port"])
    if "db" in theirs:
        theirs["db"] = int(theirs["db"])
    assert ours == theirs


@pytest.mark.parametrize("url", ["http://host:6379", "host:6379", "valkey://host"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="scheme"):
        parse_url(url)
    with pytest.raises(ValueError):
        redis_py_parse_url(url)  # type: ignore[no-untyped-call]
