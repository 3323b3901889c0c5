"""The exact-match response cache, through the real app and the fake upstream: what may hit,
what must miss, replayed streams, expiry, and what a hit costs (nothing) and saves.

Prices make a request's cost exact: input is free and each output token costs $0.0001; the fake
answers with exactly OUT tokens.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import config_from, deployment, serve
from tests.redis_server import ValkeyServer
from triage.api import create_app
from triage.config.loader import ConfigError
from triage.fakeupstream import FakeUpstreamThread

KEYS = {"a": "tk-team-a-0123456789", "b": "tk-team-b-0123456789"}
ADMIN = "ak-admin-0123456789"
ENV = {"KEY_A": KEYS["a"], "KEY_B": KEYS["b"], "ADMIN_KEY": ADMIN}
PER_TOKEN = Decimal("0.0001")
OUT = 10
ONE = PER_TOKEN * OUT
MSG = [{"role": "user", "content": "Name three colours."}]
BASE: dict[str, Any] = {"model": "cloud", "messages": MSG, "max_tokens": OUT}


def _config(
    fake: FakeUpstreamThread,
    tmp_path: Path,
    cache: Mapping[str, Any] | None,
    state: Mapping[str, Any] | None = None,
    **key: Any,
) -> Any:
    priced = {"input_cost_per_token": "0", "output_cost_per_token": str(PER_TOKEN)}
    triage: dict[str, Any] = {"ledger": {"path": str(tmp_path / "ledger.db")}}
    if cache is not None:
        triage["cache"] = dict(cache)
    return config_from(
        {
            "model_list": [
                deployment("cloud", "openai/gpt-4o", fake.url + "/v1", params=priced),
                deployment("local", "hosted_vllm/small", fake.url + "/v1", local=True),
            ],
            "auth": {
                "admin_key": "os.environ/ADMIN_KEY",
                "keys": [
                    {"id": "a", "key": "os.environ/KEY_A", **key},
                    {"id": "b", "key": "os.environ/KEY_B"},
                ],
            },
            "triage": triage,
            **({"state": dict(state)} if state else {}),
        },
        ENV,
    )


def _post(url: str, body: Mapping[str, Any], key: str = "a") -> httpx.Response:
    headers = {"authorization": f"Bearer {KEYS[key]}"}
    return httpx.post(url + "/v1/chat/completions", json=dict(body), headers=headers, timeout=20)


def _upstream_calls(fake: FakeUpstreamThread) -> int:
    return sum(1 for r in fake.requests() if r.path.endswith("/chat/completions"))


def _events(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]", response.text[-300:]
    return [json.loads(line[6:]) for line in lines[:-1]]


def _ledger(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute(
            "SELECT key_id, route, deployment, status, cost_usd, counterfactual_usd FROM usage "
            "ORDER BY id"
        ).fetchall()
    return rows


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
def priced_fake(fake: FakeUpstreamThread) -> FakeUpstreamThread:
    fake.configure(completion_tokens=OUT)
    return fake


def test_the_cache_is_off_unless_configured(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with serve(create_app(_config(priced_fake, tmp_path, None))) as url:
        first, second = _post(url, BASE), _post(url, BASE)
    assert "x-triage-cache" not in first.headers and "x-triage-cache" not in second.headers
    assert _upstream_calls(priced_fake) == 2


def test_an_identical_request_is_answered_from_the_cache_for_free(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    config = _config(priced_fake, tmp_path, {"enabled": True})
    with serve(create_app(config)) as url:
        miss, hit = _post(url, BASE), _post(url, BASE)
        lookups = _metric(url, "triage_cache_lookups_total", result="hit")
        saved = _metric(url, "triage_cache_saved_usd_total", route="cloud")
        spent = _metric(url, "triage_cost_usd_total")
        keys = httpx.get(url + "/admin/keys", headers={"authorization": f"Bearer {ADMIN}"})
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert miss.headers["x-triage-cache"] == "miss" and hit.headers["x-triage-cache"] == "hit"
    assert hit.json() == miss.json()
    assert _upstream_calls(priced_fake) == 1
    assert Decimal(miss.headers["x-triage-cost-usd"]) == ONE
    assert Decimal(hit.headers["x-triage-cost-usd"]) == 0
    assert hit.headers["x-triage-route"] == "cloud"
    # The ledger: the hit is a $0 row from `cache`; its savings against the reference model are
    # the whole reference cost (the miss's counterfactual), and the miss's cost is counted saved.
    rows = _ledger(tmp_path)
    assert [r[:4] for r in rows] == [("a", "cloud", "cloud-1", 200), ("a", "cloud", "cache", 200)]
    assert Decimal(str(rows[0][4])) == ONE and Decimal(str(rows[1][4])) == 0
    assert Decimal(str(rows[1][5])) == Decimal(str(rows[0][5])) > 0
    assert (
        lookups == 1 and saved == pytest.approx(float(ONE)) and spent == pytest.approx(float(ONE))
    )
    # The budget is not charged by the hit.
    team = next(k for k in keys.json()["data"] if k["id"] == "a")
    assert Decimal(team["spend"]["today_usd"]) == ONE


def test_a_hit_logs_its_content_for_a_key_that_opted_in(
    priced_fake: FakeUpstreamThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triage.requests")
    config = _config(priced_fake, tmp_path, {"enabled": True}, log_content=True)
    with serve(create_app(config)) as url:
        miss, hit = _post(url, BASE), _post(url, BASE)
        _post(url, BASE, key="b")  # a key that did not opt in: its own miss, no content
    assert hit.headers["x-triage-cache"] == "hit"
    answer = miss.json()["choices"][0]["message"]["content"]
    expected = {"prompt": MSG[0]["content"], "completion": answer}
    logged = [
        (r.triage["key_id"], r.triage.get("content"))  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "triage.requests"
    ]
    assert logged == [("a", expected), ("a", expected), ("b", None)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("messages", [{"role": "user", "content": "Name three colours!"}]),
        ("temperature", 0.3),
        ("seed", 7),
        ("stop", ["\n"]),
        ("max_tokens", OUT - 1),
        ("top_p", 0.5),
        ("n", 2),
        ("logit_bias", {"50256": -100}),
        ("response_format", {"type": "json_object"}),
        ("tool_choice", "none"),
        (
            "tools",
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        ),
        ("model", "local"),
    ],
)
def test_a_field_that_changes_the_output_misses(
    priced_fake: FakeUpstreamThread, tmp_path: Path, field: str, value: Any
) -> None:
    base = {**BASE, "tools": [{"type": "function", "function": {"name": "g"}}]}
    if field == "tool_choice":
        base["tool_choice"] = "auto"
    with serve(create_app(_config(priced_fake, tmp_path, {"enabled": True}))) as url:
        first = _post(url, base)
        changed = _post(url, {**base, field: value})
        again = _post(url, base)
    assert first.headers["x-triage-cache"] == "miss"
    assert changed.headers["x-triage-cache"] == "miss", field
    assert again.headers["x-triage-cache"] == "hit"


def test_fields_that_cannot_change_the_output_still_hit(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with serve(create_app(_config(priced_fake, tmp_path, {"enabled": True}))) as url:
        _post(url, {**BASE, "user": "alice"})
        hit = _post(url, {**BASE, "user": "bob"})
    assert hit.headers["x-triage-cache"] == "hit"


def test_keys_never_share_an_entry_unless_configured(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with serve(create_app(_config(priced_fake, tmp_path, {"enabled": True}))) as url:
        a, b = _post(url, BASE, "a"), _post(url, BASE, "b")
    assert (a.headers["x-triage-cache"], b.headers["x-triage-cache"]) == ("miss", "miss")
    shared = {"enabled": True, "share_across_keys": True}
    (tmp_path / "s").mkdir()
    with serve(create_app(_config(priced_fake, tmp_path / "s", shared))) as url:
        a, b = _post(url, BASE, "a"), _post(url, BASE, "b")
    assert (a.headers["x-triage-cache"], b.headers["x-triage-cache"]) == ("miss", "hit")


def test_sensitive_requests_are_cached_per_key_even_when_entries_are_shared(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    secret = {
        **BASE,
        "model": "local",
        "messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}],
    }
    shared = {"enabled": True, "share_across_keys": True}
    with serve(create_app(_config(priced_fake, tmp_path, shared))) as url:
        a, b, a_again = _post(url, secret, "a"), _post(url, secret, "b"), _post(url, secret, "a")
    assert a.headers["x-triage-sensitive"] == "true"
    assert [r.headers["x-triage-cache"] for r in (a, b, a_again)] == ["miss", "miss", "hit"]


def test_per_key_and_per_route_switches(priced_fake: FakeUpstreamThread, tmp_path: Path) -> None:
    cache = {"enabled": False, "routes": {"cloud": True}, "keys": {"b": False}}
    with serve(create_app(_config(priced_fake, tmp_path, cache))) as url:
        on = [_post(url, BASE, "a").headers.get("x-triage-cache") for _ in range(2)]
        off_key = _post(url, BASE, "b").headers.get("x-triage-cache")
        off_route = _post(url, {**BASE, "model": "local"}, "a").headers.get("x-triage-cache")
    assert on == ["miss", "hit"]
    assert off_key is None and off_route is None


def test_a_failed_answer_is_not_kept(priced_fake: FakeUpstreamThread, tmp_path: Path) -> None:
    priced_fake.add_fault(kind="status", status=400, message="no")
    with serve(create_app(_config(priced_fake, tmp_path, {"enabled": True}))) as url:
        failed, fresh, hit = _post(url, BASE), _post(url, BASE), _post(url, BASE)
    assert failed.status_code == 400
    assert fresh.headers["x-triage-cache"] == "miss" and fresh.status_code == 200
    assert hit.headers["x-triage-cache"] == "hit"


def test_a_stream_is_replayed_as_a_well_formed_stream(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    stream = {**BASE, "stream": True}
    with_usage = {**stream, "stream_options": {"include_usage": True}}
    with serve(create_app(_config(priced_fake, tmp_path, {"enabled": True}))) as url:
        miss = _post(url, stream)
        plain, counted = _post(url, stream), _post(url, with_usage)
        whole = _post(url, BASE)  # a whole answer is not served from a stream's entry
    assert miss.headers["x-triage-cache"] == "miss"
    assert plain.headers["x-triage-cache"] == "hit" and counted.headers["x-triage-cache"] == "hit"
    assert whole.headers["x-triage-cache"] == "miss"
    assert plain.headers["content-type"].startswith("text/event-stream")
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in _events(miss) if c["choices"]
    )
    replayed = _events(plain)
    assert replayed == [c for c in _events(miss) if c.get("choices")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in replayed) == text
    assert replayed[-1]["choices"][0]["finish_reason"] is not None
    assert all("usage" not in c for c in replayed)
    last = _events(counted)[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == OUT
    assert _upstream_calls(priced_fake) == 2


def test_an_entry_expires_after_its_ttl(priced_fake: FakeUpstreamThread, tmp_path: Path) -> None:
    now = [1000.0]
    config = _config(priced_fake, tmp_path, {"enabled": True, "ttl": 60})
    with serve(create_app(config, clock=lambda: now[0])) as url:
        first, within = _post(url, BASE), _post(url, BASE)
        now[0] += 61
        expired, refreshed = _post(url, BASE), _post(url, BASE)
    assert [r.headers["x-triage-cache"] for r in (first, within, expired, refreshed)] == [
        "miss",
        "hit",
        "miss",
        "hit",
    ]


def test_cache_switches_must_name_routes_and_keys_that_exist(
    priced_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(priced_fake, tmp_path, {"routes": {"nowhere": True}, "keys": {"nobody": True}})
    problems = "\n".join(caught.value.problems)
    assert 'triage.cache.routes.nowhere: unknown route or model group "nowhere"' in problems
    assert 'triage.cache.keys.nobody: unknown key id "nobody"' in problems


def test_replicas_share_entries_on_the_redis_store(
    priced_fake: FakeUpstreamThread, tmp_path: Path, valkey: ValkeyServer
) -> None:
    state = {"backend": "redis", "url": valkey.url}
    cache = {"enabled": True, "backend": "redis", "ttl": 60}
    config = _config(priced_fake, tmp_path, cache, state)
    with serve(create_app(config)) as one, serve(create_app(config)) as two:
        miss = _post(one, BASE)
        hit = _post(two, BASE)
        stream_miss, stream_hit = (
            _post(two, {**BASE, "stream": True}),
            _post(one, {**BASE, "stream": True}),
        )
    assert (miss.headers["x-triage-cache"], hit.headers["x-triage-cache"]) == ("miss", "hit")
    assert hit.json() == miss.json()
    assert (stream_miss.headers["x-triage-cache"], stream_hit.headers["x-triage-cache"]) == (
        "miss",
        "hit",
    )
    assert _events(stream_hit) == [c for c in _events(stream_miss) if c.get("choices")]
    assert _upstream_calls(priced_fake) == 2
