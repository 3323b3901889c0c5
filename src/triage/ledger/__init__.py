"""The usage ledger: one row per request, committed before the request is acknowledged.

Two backends keep the same rows: `Ledger` (SQLite, a local file: one server or the workers of
one machine) and `PostgresLedger` (one table for a fleet of replicas). `open_ledger` builds the
one a config asks for; `GroupCommit` batches the rows of requests that finish together.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from triage.ledger.commit import GroupCommit
from triage.ledger.rows import SCHEMA_VERSION, LedgerBusy, LedgerRow, LedgerUnavailable
from triage.ledger.sqlite import Ledger

if TYPE_CHECKING:
    from triage.config.routes import LedgerSettings
    from triage.report import Dimension, Report

__all__ = [
    "SCHEMA_VERSION",
    "GroupCommit",
    "Ledger",
    "LedgerBusy",
    "LedgerRow",
    "LedgerStore",
    "LedgerUnavailable",
    "open_ledger",
]


class LedgerStore(Protocol):
    """What the server, the budgets and the report need from a ledger backend."""

    inline_commits: bool

    def append(self, row: LedgerRow) -> None: ...

    def append_many(self, rows: list[LedgerRow]) -> None: ...

    def rows(self, since: float | None = None) -> list[LedgerRow]: ...

    def spend(self, key_id: str | None, since: float | None = None) -> Decimal: ...

    def report(self, *, by: Dimension, since: float | None, key_id: str | None) -> Report: ...

    def close(self) -> None: ...


def open_ledger(settings: LedgerSettings) -> LedgerStore:
    """The ledger `settings` name (the caller checks `settings.enabled`). A SQLite ledger
    commits on the event loop, also when the processes of `serve --workers N` share its file:
    one that another worker holds locked is retried on later loop turns
    (`triage.ledger.commit`)."""
    if settings.backend == "postgres":
        from triage.ledger.postgres import PostgresLedger  # psycopg only where it is used

        assert settings.dsn is not None  # LedgerSettings requires it for postgres
        password = settings.password.get_secret_value() if settings.password else None
        return PostgresLedger(
            settings.dsn.get_secret_value(),
            password=password,
            connect_timeout=settings.connect_timeout,
        )
    return Ledger(settings.path)
