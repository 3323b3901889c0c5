"""Stored Responses API responses: what `previous_response_id` continues and
`GET /v1/responses/{id}` returns.

Each stored response belongs to the key that made it (`owner`): every read and delete names the
owner, and another owner's response is as absent as one that never existed. Rows older than the
TTL are never returned and are purged on the next write. The store interface is small so a
shared backend can implement it later; `SqliteResponses` is the default, a file beside the
ledger, opened on first use (a server that never stores a response creates no file).
Stored content is the client's explicit request: kept, never logged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, created REAL NOT NULL, previous TEXT,
  response TEXT NOT NULL, input_items TEXT NOT NULL, route TEXT);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
"""


@dataclass(frozen=True)
class StoredResponse:
    id: str
    owner: str
    previous: str | None
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    route: str | None = None  # the model group that answered: later turns stick to it


class ResponseStore(Protocol):
    """Async so that the shared store (Redis, state/redis_responses.py) awaits its round trip;
    the SQLite calls are short local statements and never suspend."""

    async def put(self, stored: StoredResponse) -> None: ...
    async def get(self, response_id: str, owner: str) -> StoredResponse | None: ...
    async def delete(self, response_id: str, owner: str) -> bool: ...
    def close(self) -> None: ...


class SqliteResponses:
    """Responses in a SQLite file; short statements on the caller's thread, under a lock."""

    def __init__(
        self, path: str | Path, ttl: float, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.path = str(path)
        self.ttl = ttl
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def put(self, stored: StoredResponse) -> None:
        now = self.wall_clock()
        row = (
            stored.id,
            stored.owner,
            now,
            stored.previous,
            json.dumps(stored.response),
            json.dumps(stored.input_items),
            stored.route,
        )
        with self._lock:
            db = self._conn()
            db.execute("DELETE FROM responses WHERE created < ?", (now - self.ttl,))
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def _exists(self) -> bool:
        """Whether anything was ever stored: reads never create the file."""
        return self._db is not None or Path(self.path).exists()

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        if not self._exists():
            return None
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT previous, response, input_items, route FROM responses "
                    "WHERE id = ? AND owner = ? AND created >= ?",
                    (response_id, owner, self.wall_clock() - self.ttl),
                )
                .fetchone()
            )
        if row is None:
            return None
        response, items = json.loads(row[1]), json.loads(row[2])
        return StoredResponse(response_id, owner, row[0], response, items, row[3])

    async def delete(self, response_id: str, owner: str) -> bool:
        if not self._exists():
            return False
        with self._lock:
            cursor = self._conn().execute(
                "DELETE FROM responses WHERE id = ? AND owner = ? AND created >= ?",
                (response_id, owner, self.wall_clock() - self.ttl),
            )
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


async def history(
    store: ResponseStore, response_id: str, owner: str, limit: int
) -> tuple[list[Any], str | None] | None:
    """The conversation up to and including `response_id` (each turn's input items, then its
    output), oldest first, and the model group that answered its last turn; None when it is not
    stored for `owner`. Follows at most `limit` links (a longer chain is cut at its oldest end)."""
    turns: list[list[Any]] = []
    route: str | None = None
    current: str | None = response_id
    while current is not None and len(turns) < limit:
        stored = await store.get(current, owner)
        if stored is None:
            if not turns:
                return None
            break  # an expired ancestor: the conversation starts where the store does
        route = route if turns else stored.route
        turns.append([*stored.input_items, *stored.response.get("output", [])])
        current = stored.previous
    return [item for turn in reversed(turns) for item in turn], route
