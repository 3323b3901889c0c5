"""The scan's prefilters and one-pass body reader change nothing it finds: ``Detector`` is
compared with the scan as it was (``tests/sensitive_reference.py``) over the planted suite and
over random and hostile texts and bodies: digits and separators, the literals the prefilters look
for, Unicode look-alikes, zero-width characters, secrets cut into pieces and split across fields.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import sensitive_cases as cases
from tests.sensitive_reference import ReferenceDetector
from tests.unit.test_sensitive import SECRETS, TRUE_NEGATIVES, TRUE_POSITIVES
from triage.access.sensitive import DETECTORS, Detector, patterns


def _encrypted_pkcs8() -> str:
    algorithm = cases._der(0x30, bytes.fromhex("06092a864886f70d01050d") + bytes(20))
    return cases.pem_body(cases._der(0x30, algorithm + cases._der(0x04, bytes(range(200)) * 2)))


# Each fires through one prefilter literal alone: no digit, no underscore, or one key-body hint.
ONE_HINT = {
    "nines": "+99 999 999 999",  # 9 is the only digit
    "jwt": "eyJ" + "abcdefghijKLMN" + ".eyJ" + "abcdefghijklmnop" + ".sig",
    "gitlab": "glpat" + "-AbCdEfGhIjKlMnOpQrSt",
    "aws key id": "AKIA" + "ABCDEFGHIJKLMNOP",
    "aws session key id": "ASIA" + "ABCDEFGHIJKLMNOP",
    "google": "AIza" + "SyAbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfG",
    "key body AgE": cases.pem_body(
        cases._der(0x30, cases._integer(0) + random.Random(0).randbytes(150))
    ),
    "key body PKCS#5": _encrypted_pkcs8(),
    "key body IBA": cases.pem_body(cases.rsa_pkcs1(1024)),
    "putty private lines": "Private-" + "Lines: 1\nAAAA",
    "putty file": "PuTTY-User-Key-File-" + "2: ssh-rsa",
}
PLANTED = [
    *ONE_HINT.values(),
    *(text for _, text in TRUE_POSITIVES),
    *TRUE_NEGATIVES,
    *SECRETS.values(),
    *(text for _, text in cases.SPELLINGS),
    *cases.NEAR_MISSES,
    *cases.PER_DETECTOR.values(),
    cases.AWS_KEY_ID,
    cases.AWS_SECRET,
    cases.AWS_DOC_SECRET,
    cases.pem_body(cases.ec_sec1()),
]
HINTS = [
    *patterns.SCAN_HINTS,
    *patterns.KEY_BODY_HINTS,
    *patterns.AWS_HINTS,
    "PRIVATE KEY",
    "-----BEGIN ",
    "MII",
    "MC4CAQAwBQYDK2VwBCIEI",
    "@",
    "\uff20",
    "_live_",
    "ghp_",
    "hf_",
    "github_pat_",
    "xoxb-",
    "Bearer ",
    "aws secret",
    "secret access",
    "eyJhbGciOiJIUzI1NiJ9.eyJ",
]
LOOK_ALIKES = (
    "\uff10\uff11\uff14\uff19\u0660\u0661\u0664\u0669\u0966\u0967\u00b9\u2460"  # digits
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\ufe0f\U000e0041"  # invisible
    "\u2010\u2011\u2013\u2212\u30fc\u2044\u2215\u00a0\u3000\u2028\u1680"  # dashes, slashes, spaces
    "\uff21\uff3f\uff0b\uff0d\u0410\u0415\u041a"  # full-width and Cyrillic letters
)
PIECES = "0123456789 .-/()+_@:=\n\tABCDEFGHIKMSTWXZabeiklorstxyz"

_piece_of_a_secret = st.builds(
    lambda text, a, b: text[min(a, b) : max(a, b)],
    st.sampled_from(PLANTED),
    st.integers(0, 120),
    st.integers(0, 120),
)
_fragment = st.one_of(
    st.sampled_from(PLANTED),
    _piece_of_a_secret,
    st.sampled_from(HINTS),
    st.text(alphabet=PIECES + LOOK_ALIKES, max_size=12),
    st.text(max_size=6),
)
texts = st.lists(_fragment, max_size=8).map("".join)
_FIELDS = ["messages", "prompt", "input", "content", "role", "type", "text", "tools", "metadata"]
_keys = st.one_of(st.sampled_from(_FIELDS), texts)
_scalars = st.one_of(
    texts,
    st.integers(),
    st.integers(10**15, 10**19),
    st.sampled_from([4111111111111111, 10**40, -(10**41), 5555555555554444]),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=16,
)
bodies = st.dictionaries(_keys, _json, max_size=4)


def _split_across_parts(secret: str, cut: int, kind: str) -> dict[str, Any]:
    cut = cut % (len(secret) + 1)
    parts: list[Any] = [secret[:cut], secret[cut:]]
    if kind == "parts":
        parts = [{"type": "text", "text": part} for part in parts]
        return {"messages": [{"role": "user", "content": parts}]}
    if kind == "turns":
        return {"messages": [{"role": "user", "content": part} for part in parts]}
    return {kind: parts}


split_bodies = st.builds(
    _split_across_parts,
    st.one_of(st.sampled_from(PLANTED), texts),
    st.integers(0, 200),
    st.sampled_from(["parts", "turns", "input", "stop", "metadata"]),
)
detector_sets = st.lists(st.sampled_from(DETECTORS), unique=True).map(tuple)
CUSTOM = {"ticket": r"PROJ-\d+", "codename": r"(?i)bluebird"}
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
FULL = Detector()
REFERENCE = ReferenceDetector()


def _same(body: dict[str, Any], new: Detector, old: ReferenceDetector) -> list[Any]:
    found = new.scan_body(body)
    assert found == old.scan_body(body)
    assert asyncio.run(new.scan_body_async(body)) == found
    return found


@pytest.mark.parametrize("text", PLANTED)
def test_every_planted_text_finds_the_same_in_every_place(text: str) -> None:
    assert FULL.scan_text(text) == REFERENCE.scan_text(text)
    for _, _, build in cases.PLACES:
        _same(build(text), FULL, REFERENCE)


def test_the_planted_suite_is_not_all_clean() -> None:
    # The comparison means something only if the reference fires on it, detector by detector.
    fired = {f.detector for text in PLANTED for f in REFERENCE.scan_text(text)}
    assert fired == set(DETECTORS) - {"unreadable_token_ids"}


@pytest.mark.parametrize("text", ONE_HINT.values(), ids=ONE_HINT.keys())
def test_a_secret_behind_one_prefilter_literal_is_found(text: str) -> None:
    assert FULL.scan_text(text) == REFERENCE.scan_text(text) != []
    assert FULL.scan_text(f"x {text} y") == REFERENCE.scan_text(f"x {text} y") != []


@SETTINGS
@given(text=texts)
def test_random_texts_find_the_same(text: str) -> None:
    assert FULL.scan_text(text) == REFERENCE.scan_text(text)


@SETTINGS
@given(body=bodies)
def test_random_bodies_find_the_same(body: dict[str, Any]) -> None:
    _same(body, FULL, REFERENCE)


@SETTINGS
@given(body=split_bodies)
def test_secrets_split_across_fields_find_the_same(body: dict[str, Any]) -> None:
    _same(body, FULL, REFERENCE)


@SETTINGS
@given(enabled=detector_sets, body=st.one_of(bodies, split_bodies))
def test_any_subset_of_detectors_finds_the_same(
    enabled: tuple[str, ...], body: dict[str, Any]
) -> None:
    _same(body, Detector(enabled=enabled, custom=CUSTOM), ReferenceDetector(enabled, CUSTOM))


@SETTINGS
@given(text=texts, repeat=st.integers(1, 3000))
def test_long_texts_across_slices_find_the_same(text: str, repeat: int) -> None:
    long = (text or "x") * (20_000 // max(1, len(text)) + 1)
    body = {"messages": [{"role": "user", "content": long[: 17_000 + repeat * 10]}]}
    _same(body, FULL, REFERENCE)


def test_token_id_bodies_find_the_same() -> None:
    for _, body in cases.TOKEN_ID_BODIES:
        assert _same(body, FULL, REFERENCE)
        assert _same({**body, "x": json.dumps(body)}, FULL, REFERENCE)
