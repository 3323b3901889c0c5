"""The inline scan (small bodies, on the event loop, read once) finds exactly what the full scan
finds, wherever the secret sits; a body over the inline limit in many small strings still goes to
the worker thread and is still read in full."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.sensitive_cases import PER_DETECTOR, PLACES, TOKEN_ID_BODIES, Body
from triage.access.sensitive import Detector
from triage.access.sensitive.body import BLANK, read_body
from triage.access.sensitive.normalise import Normaliser
from triage.access.sensitive.scan import INLINE_LIMIT


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


@pytest.mark.parametrize(("endpoint", "place", "build"), PLACES, ids=[p[1] for p in PLACES])
@pytest.mark.parametrize("kind", PER_DETECTOR)
def test_the_inline_scan_reads_every_field(
    detector: Detector, kind: str, endpoint: str, place: str, build: Any
) -> None:
    body: Body = build(PER_DETECTOR[kind])
    inline = asyncio.run(detector.scan_body_async(body))
    assert inline == detector.scan_body(body)
    assert kind in [finding.detector for finding in inline]


@pytest.mark.parametrize(("endpoint", "body"), TOKEN_ID_BODIES)
def test_the_inline_scan_reports_unreadable_token_ids(
    detector: Detector, endpoint: str, body: Body
) -> None:
    assert asyncio.run(detector.scan_body_async(body)) == detector.scan_body(body)


def test_keys_and_values_come_in_document_order() -> None:
    body = {"b": [{"y": "1", "x": ["2", {"z": 3}]}, "4"], "a": {"k": None}, "c": {"role": "5"}}
    whole, junctions, unreadable = read_body(body, Normaliser())
    # A dict's keys, then its values, depth first; only values (not keys, not roles) are glued.
    assert whole == BLANK.join(
        ["", *["b", "a", "c", "y", "x", "1", "2", "z", "3", "4", "k", "role", "5"], ""]
    )
    assert junctions == BLANK.join(["", "1234", "1 2 3 4", ""])
    assert not unreadable


def test_many_small_strings_over_the_limit_go_to_the_worker_and_are_read_in_full() -> None:
    detector = Detector()
    items = ["x" * 100] * (INLINE_LIMIT // 100 + 10) + ["card 4111 1111 1111 1111"]
    body = {"input": items}
    assert read_body(body, Normaliser(), INLINE_LIMIT) is None

    def workers() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("triage-scan"))

    before = workers()
    found = asyncio.run(detector.scan_body_async(body))
    assert [finding.detector for finding in found] == ["card"]
    assert workers() == before + 1


def test_a_secret_split_across_items_after_a_nested_object_is_found(detector: Detector) -> None:
    # The items of a list keep the list's own key: an object before them (whose `role` was the
    # last key read) once made them look structural, and their junction went unread.
    body = {"metadata": {"notes": [{"role": "a"}, "4111 1111", "1111 1111"]}}
    assert [finding.detector for finding in detector.scan_body(body)] == ["card"]
