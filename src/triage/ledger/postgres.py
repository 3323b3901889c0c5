"""The PostgreSQL ledger: one table shared by every replica of a fleet, the same rows as SQLite.

The table (``triage_usage``) is created at start-up, or brought up to this version: columns
added since an older version are added in place (``ADD COLUMN IF NOT EXISTS``), under an
advisory lock so that replicas starting together do not race. Its version is kept in the
table's comment; a newer table than this code knows is refused.

Money is NUMERIC (exact, summed exactly by SQL); ``stream`` is BOOLEAN. Writes go through one
connection and reads through another, each behind its own lock, so the seeding of a budget or a
report never waits behind a batch of inserts. A connection that broke is reopened for the next
call; the call that found it broken fails (its rows may or may not have been committed, so they
are not written twice).

The DSN (and the password, when given apart) are never logged or shown: errors name only the
host, port and database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from triage.ledger.rows import (
    ADDED,
    COLUMNS,
    FIELDS,
    SCHEMA_VERSION,
    LedgerRow,
    LedgerUnavailable,
    values_of,
)

if TYPE_CHECKING:
    from triage.report import Dimension, Report

TABLE = "triage_usage"
_TYPES = {"REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT", "TEXT": "TEXT"}
_SPECIAL = {"cost_usd": "NUMERIC", "counterfactual_usd": "NUMERIC", "stream": "BOOLEAN"}
_LOCK_ID = 0x7472696167  # pg_advisory_xact_lock key for schema changes ("triag")
_NAMES = ", ".join(FIELDS)
_INSERT = f"INSERT INTO {TABLE} ({_NAMES}) VALUES ({', '.join(['%s'] * len(FIELDS))})"
_SELECT = f"SELECT {_NAMES} FROM {TABLE} WHERE ts >= %s ORDER BY ts, id"
_SPEND = (
    f"SELECT COALESCE(SUM(cost_usd), 0) FROM {TABLE} "
    "WHERE key_id IS NOT DISTINCT FROM %s AND ts >= %s"
)
T = TypeVar("T")


def _column(name: str, kind: str) -> str:
    """A column's definition in PostgreSQL's types (`kind` is its SQLite definition)."""
    base, _, rest = kind.partition(" ")
    return f"{name} {_SPECIAL.get(name, _TYPES[base])} {rest}".rstrip()


def _schema() -> tuple[str, ...]:
    columns = ", ".join(_column(name, kind) for name, kind in COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} "
        f"(id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {columns})",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_key_ts ON {TABLE} (key_id, ts)",
    )


def where(dsn: str) -> str:
    """host:port/database of `dsn`, for messages (never the user or password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable dsn)"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


class PostgresLedger:
    """The usage ledger in a PostgreSQL table; `append_many` commits before it returns."""

    # A commit is a network round trip: group commit runs it in a worker thread.
    inline_commits = False

    def __init__(
        self, dsn: str, *, password: str | None = None, connect_timeout: float = 5.0
    ) -> None:
        self._dsn = dsn
        self._extra: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        if password is not None:
            self._extra["password"] = password
        self.where = where(dsn)
        self._locks = {"write": threading.Lock(), "read": threading.Lock()}
        self._conns: dict[str, psycopg.Connection[Any] | None] = {"write": None, "read": None}
        self._use("write", self._migrate)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._dsn, autocommit=True, **self._extra)
        except psycopg.Error as exc:
            raise LedgerUnavailable(self._failure("cannot connect to", exc)) from None

    def _failure(self, what: str, exc: psycopg.Error) -> str:
        # sqlstate and the class name only: libpq's own message may quote the DSN.
        state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        return f"{what} the PostgreSQL ledger at {self.where}: {type(exc).__name__}{state}"

    def _use(self, which: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._locks[which]:
            conn = self._conns[which]
            if conn is None or conn.closed or conn.broken:
                conn = self._conns[which] = self._connect()
            try:
                return work(conn)
            except psycopg.Error as exc:
                raise LedgerUnavailable(self._failure("failed on", exc)) from None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            (comment,) = conn.execute(
                "SELECT obj_description(to_regclass(%s))", (TABLE,)
            ).fetchone() or (None,)
            version = _version(comment)
            if version > SCHEMA_VERSION:
                raise LedgerUnavailable(
                    f"ledger table {TABLE} at {self.where} has schema version {version}; "
                    f"this Triage knows up to {SCHEMA_VERSION}"
                )
            for statement in _schema():
                conn.execute(statement.encode())
            for name, kind in ADDED:
                conn.execute(
                    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {_column(name, kind)}".encode()
                )
            conn.execute(f"COMMENT ON TABLE {TABLE} IS 'triage ledger v{SCHEMA_VERSION}'".encode())

    def append(self, row: LedgerRow) -> None:
        """Record one request; committed when this returns."""
        self.append_many([row])

    def append_many(self, rows: list[LedgerRow]) -> None:
        """Record several requests in one transaction: all committed when this returns, or none."""
        values = [values_of(row) for row in rows]

        def insert(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT, values)

        self._use("write", insert)

    def rows(self, since: float | None = None) -> list[LedgerRow]:
        """Every row with ``ts >= since`` (all rows when None), oldest first."""
        start = float("-inf") if since is None else since
        records = self._use("read", lambda c: c.execute(_SELECT, (start,)).fetchall())
        return [LedgerRow(**dict(zip(FIELDS, record, strict=True))) for record in records]

    def spend(self, key_id: str | None, since: float | None = None) -> Decimal:
        """Exact sum of ``cost_usd`` for one key (None: keyless requests) with ``ts >= since``."""
        start = float("-inf") if since is None else since
        found = self._use("read", lambda c: c.execute(_SPEND, (key_id, start)).fetchone())
        return Decimal(found[0]) if found else Decimal(0)

    def report(self, *, by: Dimension, since: float | None, key_id: str | None) -> Report:
        """The usage report, aggregated by PostgreSQL on a connection of its own."""
        from triage.usage_db import postgres_usage_report  # imports triage.report, which imports us

        with self._connect() as conn:
            try:
                return postgres_usage_report(conn, by=by, since=since, key_id=key_id)
            except psycopg.Error as exc:
                raise LedgerUnavailable(self._failure("failed on", exc)) from None

    def close(self) -> None:
        """Close both connections (idempotent); an insert in flight finishes first."""
        for which, lock in self._locks.items():
            with lock:
                conn, self._conns[which] = self._conns[which], None
                if conn is not None:
                    conn.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _version(comment: str | None) -> int:
    if comment is None:
        return 0
    prefix = "triage ledger v"
    tail = comment[len(prefix) :] if comment.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else 0
