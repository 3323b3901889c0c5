"""The scan reads exactly what leaves: every field of the upstream body, every everyday spelling,
normalised, and token ids it cannot read. The planted suite is in ``tests/sensitive_cases.py``."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tests.sensitive_cases import (
    NEAR_MISSES,
    PER_DETECTOR,
    PLACES,
    SPELLINGS,
    TOKEN_ID_BODIES,
    Body,
)
from triage.access.sensitive import Detector, Finding


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def names(findings: list[Finding]) -> list[str]:
    return [finding.detector for finding in findings]


@pytest.mark.parametrize(("expected", "text"), SPELLINGS, ids=[s[:24] for _, s in SPELLINGS])
def test_everyday_spellings_are_caught(detector: Detector, expected: str, text: str) -> None:
    assert expected in names(detector.scan_text(f"For the record: {text} (keep it safe)"))


@pytest.mark.parametrize("text", NEAR_MISSES, ids=[s[:24] for s in NEAR_MISSES])
def test_look_alikes_of_the_new_spellings_stay_clean(detector: Detector, text: str) -> None:
    assert detector.scan_text(text) == []


@pytest.mark.parametrize(("endpoint", "place", "build"), PLACES, ids=[p[1] for p in PLACES])
@pytest.mark.parametrize("kind", PER_DETECTOR)
def test_every_field_of_the_body_is_scanned(
    detector: Detector, kind: str, endpoint: str, place: str, build: Any
) -> None:
    body: Body = build(PER_DETECTOR[kind])
    assert kind in names(detector.scan_body(body))
    assert detector.scan_body(build("nothing to see")) == []


@pytest.mark.parametrize(("endpoint", "body"), TOKEN_ID_BODIES)
def test_token_id_inputs_cannot_be_read_and_say_so(
    detector: Detector, endpoint: str, body: Body
) -> None:
    assert names(detector.scan_body(body)) == ["unreadable_token_ids"]


def test_token_ids_can_be_let_through_by_config() -> None:
    others = Detector(enabled=["card", "email"])
    assert others.scan_body({"prompt": [1, 2, 3]}) == []


def test_integers_elsewhere_are_read_as_numbers(detector: Detector) -> None:
    body = {"messages": [{"role": "user", "content": "hi", "account": 4111111111111111}]}
    assert names(detector.scan_body(body)) == ["card"]
    assert detector.scan_body({"prompt": "hi", "max_tokens": 4096, "seed": 42, "n": 1}) == []


@pytest.mark.parametrize(
    "items",
    [
        ["4111 1111", "1111 1111"],
        ["4111", "1111", "1111", "1111"],
        ["411111", "1111111111"],
        ["jane.doe@", "acme-corp.com"],
    ],
)
def test_a_secret_split_across_array_items_is_found(detector: Detector, items: list[str]) -> None:
    assert detector.scan_body({"input": items}) != []
    assert detector.scan_body({"input": [items[0], "and then", items[-1]]}) == []


def test_a_secret_split_across_long_parts_is_found(detector: Detector) -> None:
    filler = "lorem ipsum dolor sit amet " * 2000
    parts = [filler + " card 4111 1111", "1111 1111 " + filler]
    assert names(detector.scan_body({"input": parts})) == ["card"]


def test_deeply_nested_bodies_are_walked_without_recursion(detector: Detector) -> None:
    body: Any = "4111 1111 1111 1111"
    for _ in range(50_000):
        body = {"x": [body]}
    assert names(detector.scan_body({"metadata": body})) == ["card"]


def test_only_large_bodies_go_to_the_worker_thread() -> None:
    detector = Detector()
    big = {"messages": [{"role": "user", "content": "A" * 1_000_000 + " 4111 1111 1111 1111"}]}
    small = {"messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]}

    def workers() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("triage-scan"))

    before = workers()
    assert names(asyncio.run(detector.scan_body_async(small))) == ["card"]
    assert workers() == before
    assert names(asyncio.run(detector.scan_body_async(big))) == ["card"]
    assert workers() == before + 1


def test_the_event_loop_keeps_ticking_during_a_huge_scan(detector: Detector) -> None:
    body = {"messages": [{"role": "user", "content": "ABCD EFGH " * 400_000}]}

    async def main() -> float:
        scan = asyncio.ensure_future(detector.scan_body_async(body))
        worst, last = 0.0, time.perf_counter()
        while not scan.done():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now
        assert await scan == []
        return worst

    worst = asyncio.run(main())
    assert worst < 0.25  # a single regex search over 4 MB would hold the GIL for ~0.7 s
