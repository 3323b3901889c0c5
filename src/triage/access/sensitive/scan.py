"""The sensitive-data detector: does a body about to leave carry data that must stay local?

Owns ``Finding``, ``DETECTORS`` and ``Detector``. ``Detector.scan_body`` reads every string of
the upstream body (``body.py``), normalised (``normalise.py``), in full, with the patterns of
``patterns.py`` and the checks of ``checks.py``: e-mail addresses, phone numbers, payment cards
(issuer + Luhn), IBANs (mod-97), national ids (US SSN, UK NI, ES DNI/NIE), API keys (and AWS
secret keys next to an access key id), private keys (PEM blocks, headerless key bodies, PuTTY
files), token-id inputs that cannot be read, and operator-defined regexes.

Every pattern runs over a text in slices of ``SLICE`` characters (``pos``/``endpos``, no copies),
each overlapping the next by ``OVERLAP``: Python's regex engine holds the GIL for one whole search,
and a slice bounds that to a few milliseconds even on hostile text; between slices the scan
yields the GIL, so a scan in a worker thread (``scan_body_async``) leaves the event loop its turn.
A ``Finding`` names the detector only, never the matched text: findings reach metrics and logs.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from triage.access.sensitive import checks, patterns
from triage.access.sensitive.body import BLANK, BodyText, read_body
from triage.access.sensitive.normalise import Normaliser
from triage.config.routes import DETECTORS

SLICE = 16 * 1024
"""Characters one regex search may cover: bounds how long it holds the GIL (~3 ms worst case)."""
OVERLAP = 1024
"""Characters each slice reads past its end: longer than any bounded built-in match."""
INLINE_LIMIT = 32 * 1024
"""Bodies with more characters than this are scanned on the worker thread, not the event loop."""
AWS_REACH = 256
"""How near an AWS secret key its access key id or "secret access" wording must be."""

_Scanner = Callable[[str, set[str]], None]
"""Adds to the set the names of the detectors that fire on a text."""
_Rule = tuple[str, Callable[[re.Match[str]], bool] | None]
"""What a named group of ``patterns.SCAN`` means: the detector, and the check a match must pass."""


@dataclass(frozen=True)
class Finding:
    """One detector fired. Deliberately holds no matched text: findings reach metrics and logs."""

    detector: str


class Detector:
    """Scans upstream bodies for sensitive data; built once, then shared (no per-request state)."""

    def __init__(
        self, *, enabled: Sequence[str] = DETECTORS, custom: Mapping[str, str] | None = None
    ) -> None:
        wanted = frozenset(enabled)
        unknown = sorted(wanted - set(DETECTORS))
        if unknown:
            raise ValueError(f"unknown sensitive-data detector(s): {', '.join(unknown)}")
        named = dict(custom or {})
        self._findings = tuple(Finding(name) for name in DETECTORS if name in wanted) + tuple(
            Finding(f"custom:{name}") for name in named
        )
        self._token_ids = "unreadable_token_ids" in wanted
        self._scanners = tuple(_builtin_scanners(wanted)) + tuple(
            _custom_scanner(name, regex) for name, regex in named.items()
        )
        self._normalise = Normaliser()
        # One worker: large bodies queue behind each other instead of all taking the GIL from
        # the event loop at once. Its thread starts on the first large body.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-scan")

    def scan_body(self, body: Mapping[str, Any]) -> list[Finding]:
        """Distinct findings in every string of ``body`` (the JSON object sent upstream), in
        ``DETECTORS`` order, then custom patterns in config order."""
        return self._scan(read_body(body, self._normalise))

    async def scan_body_async(self, body: Mapping[str, Any]) -> list[Finding]:
        """``scan_body``, on the worker thread when the body holds more than ``INLINE_LIMIT``
        characters, so that a flood of huge bodies cannot stall other requests."""
        text = read_body(body, self._normalise, INLINE_LIMIT)  # a small body is read here
        if text is not None:
            return self._scan(text)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, partial(self.scan_body, body))

    def _scan(self, text: BodyText) -> list[Finding]:
        whole, junctions, unreadable = text
        found: set[str] = set()
        for scanner in self._scanners:
            scanner(whole, found)
            if junctions:
                scanner(junctions, found)
        if unreadable and self._token_ids:
            found.add("unreadable_token_ids")
        return self._ordered(found) if found else []

    def scan_text(self, text: str) -> list[Finding]:
        """Distinct findings in one text, scanned in full after normalisation."""
        return self._ordered(self._run(BLANK + self._normalise(text) + BLANK))

    def scan_messages(self, messages: Sequence[Mapping[str, Any]]) -> list[Finding]:
        """Distinct findings in an OpenAI chat ``messages`` list (every field of every message)."""
        return self.scan_body({"messages": list(messages)})

    def _run(self, text: str) -> set[str]:
        found: set[str] = set()
        for scanner in self._scanners:
            scanner(text, found)
        return found

    def _ordered(self, found: AbstractSet[str]) -> list[Finding]:
        return [finding for finding in self._findings if finding.detector in found]


def _slices(pattern: re.Pattern[str], text: str, overlap: int = OVERLAP) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` one slice at a time; a match is reported by the slice in
    which it starts. ``pos`` keeps look-behinds seeing the text before the slice."""
    if len(text) <= SLICE:  # one slice (most texts): the plain search is the same search
        return pattern.finditer(text)
    return _sliced(pattern, text, overlap)


def _sliced(pattern: re.Pattern[str], text: str, overlap: int) -> Iterator[re.Match[str]]:
    for start in range(0, len(text), SLICE):
        if start:
            time.sleep(0)  # hands the GIL to a waiting thread (the event loop) between slices
        stop = start + SLICE
        for match in pattern.finditer(text, start, stop + overlap):
            if match.start() >= stop:
                break
            yield match


def _builtin_scanners(wanted: frozenset[str]) -> Iterator[_Scanner]:
    rules = {group: rule for group, rule in _scan_rules().items() if rule[0] in wanted}
    if rules:
        yield _rules_scanner(re.compile(patterns.SCAN, re.ASCII), rules)
    if "email" in wanted:
        yield _email_scanner()
    if "api_key" in wanted:
        yield _aws_secret_scanner()
    if "private_key" in wanted:
        yield _private_key_scanner()


def _scan_rules() -> dict[str, _Rule]:
    rules: dict[str, _Rule] = {
        "intl": ("phone", checks.international_phone_ok),
        "trunk": ("phone", checks.national_phone_ok),
        "card": ("card", checks.card_ok),
        "iban": ("iban", checks.iban_ok),
        "ssn": ("national_id", checks.ssn_ok),
        "dni": ("national_id", checks.dni_ok),
        "nie": ("national_id", checks.dni_ok),
        "openai": ("api_key", checks.random_token),
        "bearer": ("api_key", checks.random_token),
    }
    for detector, groups in patterns.PLAIN_RULES:
        rules.update(dict.fromkeys(groups.split(), (detector, None)))
    return rules


def _custom_scanner(name: str, regex: str) -> _Scanner:
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"custom sensitive pattern {name!r}: invalid regex: {exc}") from exc
    if pattern.search("") is not None:
        raise ValueError(f"custom sensitive pattern {name!r}: matches the empty string")
    hit = f"custom:{name}"

    def scan(text: str, found: set[str]) -> None:
        if next(_slices(pattern, text), None) is not None:
            found.add(hit)

    return scan


def _rules_scanner(pattern: re.Pattern[str], rules: Mapping[str, _Rule]) -> _Scanner:
    targets = {detector for detector, _ in rules.values()}
    others = bytes(set(range(256)) - set(patterns.SCAN_STARTS))

    def scan(text: str, found: set[str]) -> None:
        # Without a digit, an underscore or a hint the pattern cannot fire: its search (about
        # 60 instructions a character) is skipped. Deleting every other byte costs about 10.
        starts = text.encode("ascii", "ignore").translate(None, others)
        if not starts and not _holds(text, patterns.SCAN_HINTS):
            return
        for match in _slices(pattern, text):
            detector, valid = rules.get(match.lastgroup or "", ("", None))
            if detector and detector not in found and (valid is None or valid(match)):
                found.add(detector)
                if targets <= found:
                    break

    return scan


def _holds(text: str, hints: tuple[str, ...]) -> bool:
    """Whether `text` holds one of `hints` (a plain loop: any() and a generator cost more)."""
    for hint in hints:
        if hint in text:
            break
    else:
        return False
    return True


def _private_key_scanner() -> _Scanner:
    block = re.compile(patterns.PRIVATE_KEY)
    body = re.compile(patterns.KEY_BODY)

    def scan(text: str, found: set[str]) -> None:
        if ("PRIVATE KEY" in text and block.search(text) is not None) or (
            _holds(text, patterns.KEY_BODY_HINTS) and next(_slices(body, text), None) is not None
        ):
            found.add("private_key")

    return scan


def _aws_secret_scanner() -> _Scanner:
    secret = re.compile(patterns.AWS_SECRET)
    context = re.compile(patterns.AWS_CONTEXT)

    def scan(text: str, found: set[str]) -> None:
        if "api_key" in found or not _holds(text, patterns.AWS_HINTS):
            return
        matches = _slices(secret, text)
        if any(checks.aws_secret_ok(match, context, AWS_REACH) for match in matches):
            found.add("api_key")

    return scan


def _email_scanner() -> _Scanner:
    pattern = re.compile(patterns.EMAIL, re.ASCII)

    def scan(text: str, found: set[str]) -> None:
        if "@" in text and any(checks.email_ok(text, match) for match in _slices(pattern, text)):
            found.add("email")

    return scan
