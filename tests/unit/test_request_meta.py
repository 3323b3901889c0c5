"""deps.meta reads the request's headers into a Meta, and Meta builds itself as one dict (not
through a frozen dataclass's __init__): it must hold exactly its declared fields, in order, with
their defaults, and stay frozen and replaceable (it breaks loudly if Meta gains a field its
__init__ does not set)."""

from __future__ import annotations

import dataclasses

import pytest
from starlette.requests import Request

from triage.api.deps import meta
from triage.service import Meta

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

CASES: list[tuple[list[tuple[bytes, bytes]], dict[str, object]]] = [
    ([], {}),
    (
        [(b"x-request-id", RID.encode()), (b"authorization", b"Bearer tk-1")],
        {"request_id": RID, "authorization": "Bearer tk-1"},
    ),
    # the first of a repeated header counts; a task is stripped; blank task means none
    (
        [
            (b"x-request-id", b"first"),
            (b"x-request-id", b"second"),
            (b"x-triage-task", b"  coding \t"),
            (b"x-triage-task", b"math"),
        ],
        {"request_id": "first", "forced_task": "coding"},
    ),
    ([(b"x-triage-task", b"   ")], {"forced_task": ""}),
    ([(b"x-triage-task", b"")], {}),
    ([(b"traceparent", PARENT.encode())], {"trace": (PARENT, None)}),
    (
        [(b"tracestate", b"a=1"), (b"traceparent", PARENT.encode())],
        {"trace": (PARENT, "a=1")},
    ),
    ([(b"tracestate", b"a=1")], {}),  # no traceparent: no trace
    ([(b"authorization", b"Bearer \xe9t\xe9")], {"authorization": "Bearer \xe9t\xe9"}),
]


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


@pytest.mark.parametrize(("headers", "expected"), CASES)
def test_meta_is_the_constructed_meta(
    headers: list[tuple[bytes, bytes]], expected: dict[str, object]
) -> None:
    made = meta(_request(headers))
    rid = expected.get("request_id", made.request_id)
    built = Meta(**{"request_id": rid, **expected})  # type: ignore[arg-type]
    assert made == built
    assert hash(made) == hash(built)
    assert vars(made) == vars(built)
    assert list(vars(made)) == [field.name for field in dataclasses.fields(Meta)]
    assert type(made) is Meta


@pytest.mark.parametrize(
    "rid", [None, b"", b"has space", b"x" * 129, b"<script>", b"caf\xc3\xa9", b"a\nb"]
)
def test_an_unusable_request_id_is_replaced_by_a_fresh_one(rid: bytes | None) -> None:
    headers = [] if rid is None else [(b"x-request-id", rid)]
    seen = {meta(_request(headers)).request_id for _ in range(50)}
    assert len(seen) == 50
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in seen)


def test_meta_takes_its_fields_in_order_with_their_defaults() -> None:
    positional = Meta("r", "coding", "Bearer k", "dep-1", ("tp", None))
    assert vars(positional) == {
        "request_id": "r",
        "forced_task": "coding",
        "authorization": "Bearer k",
        "prefer": "dep-1",
        "trace": ("tp", None),
    }
    bare = Meta("r")
    assert vars(bare) == {field.name: field.default for field in dataclasses.fields(Meta)} | {
        "request_id": "r"
    }


def test_meta_stays_frozen_and_replaceable() -> None:
    made = meta(_request([(b"x-triage-task", b"coding")]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.forced_task = None  # type: ignore[misc]
    cleared = dataclasses.replace(made, forced_task=None, prefer="local-small")
    assert cleared == Meta(request_id=made.request_id, prefer="local-small")
    assert made.forced_task == "coding"
