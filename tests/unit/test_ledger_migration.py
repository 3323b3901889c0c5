"""A ledger file written before the `error` column existed opens, keeps its rows and gains the
column; several processes opening it at once migrate it once."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from triage.ledger import SCHEMA_VERSION, Ledger, LedgerRow

# The version-1 schema exactly as it shipped.
V1 = """
CREATE TABLE usage (id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT NOT NULL,
  key_id TEXT, task TEXT NOT NULL, tier TEXT NOT NULL, route TEXT NOT NULL,
  deployment TEXT NOT NULL, status INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL, usage_source TEXT NOT NULL, cost_usd TEXT NOT NULL,
  counterfactual_usd TEXT NOT NULL, latency_s REAL NOT NULL, ttft_s REAL,
  stream INTEGER NOT NULL, attempts INTEGER NOT NULL, fallbacks INTEGER NOT NULL);
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_key_ts ON usage (key_id, ts);
INSERT INTO usage VALUES (1, 10.0, 'old', 'k', 'chat', 'local', 'r', 'd', 200, 1, 2,
  'upstream', '0.5', '0', 0.1, NULL, 0, 1, 0);
PRAGMA user_version = 1;
"""


def _v1_file(path: Path) -> Path:
    raw = sqlite3.connect(path)
    raw.executescript(V1)
    raw.close()
    return path


def _row(**changes: object) -> LedgerRow:
    values: dict[str, object] = {
        "ts": 20.0,
        "request_id": "new",
        "key_id": "k",
        "task": "chat",
        "tier": "local",
        "route": "r",
        "deployment": "d",
        "status": 502,
        "prompt_tokens": 1,
        "completion_tokens": 0,
        "usage_source": "estimated",
        "cost_usd": Decimal(0),
        "counterfactual_usd": Decimal(0),
        "latency_s": 0.2,
        "ttft_s": None,
        "stream": False,
        "attempts": 3,
        "fallbacks": 1,
        "error": "upstream_timeout",
        **changes,
    }
    return LedgerRow(**values)  # type: ignore[arg-type]


def test_a_version_1_file_gains_the_error_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = _v1_file(tmp_path / "old.db")
    with Ledger(path) as ledger:
        ledger.append(_row())
        old, new = ledger.rows()
    assert (old.request_id, old.error, old.cost_usd) == ("old", "", Decimal("0.5"))
    assert (new.request_id, new.error, new.attempts) == ("new", "upstream_timeout", 3)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()
    with Ledger(path) as again:  # opening a migrated file changes nothing
        assert [r.request_id for r in again.rows()] == ["old", "new"]


def test_workers_opening_an_old_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = _v1_file(tmp_path / "old.db")
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def open_and_write(index: int) -> None:
        try:
            start.wait(timeout=10)
            with Ledger(path, timeout=20) as ledger:
                ledger.append(_row(request_id=f"w{index}"))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    with Ledger(path) as ledger:
        assert len(ledger.rows()) == 7


def test_a_newer_version_is_still_refused(tmp_path: Path) -> None:
    path = _v1_file(tmp_path / "old.db")
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(RuntimeError, match="not supported"):
        Ledger(path)
