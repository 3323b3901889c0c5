"""LedgerRow builds its fields in one go (not one object.__setattr__ a field) and still
behaves as the frozen dataclass it was: same fields in order, equality, hashing, replace,
immutability, and money that must be a finite Decimal."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal

import pytest

from tests.unit.test_ledger import make_row
from triage.ledger import LedgerRow
from triage.ledger.rows import FIELDS


def test_positional_and_keyword_rows_are_the_same_row() -> None:
    row = make_row(ttft_s=None, key_id=None)
    values = [getattr(row, name) for name in FIELDS]
    again = LedgerRow(*values)
    assert again == row and hash(again) == hash(row)
    assert tuple(f.name for f in dataclasses.fields(LedgerRow)) == FIELDS
    assert vars(row) == dict(zip(FIELDS, values, strict=True))
    assert LedgerRow(*values[:-1]).error == ""  # the default


def test_a_row_is_immutable_and_replace_checks_money_again() -> None:
    row = make_row()
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = 500  # type: ignore[misc]
    changed = dataclasses.replace(row, status=500, error="upstream_error")
    assert (changed.status, changed.error, row.status) == (500, "upstream_error", 200)
    assert pickle.loads(pickle.dumps(changed)) == changed
    with pytest.raises(TypeError, match="counterfactual_usd"):
        dataclasses.replace(row, counterfactual_usd=Decimal("Infinity"))
    with pytest.raises(TypeError, match="cost_usd"):
        dataclasses.replace(row, cost_usd=0.5)  # type: ignore[arg-type]
