"""The sensitive scan as it was before its prefilters and one-pass body reader (commit cc54ff6),
kept for tests only: the property tests check that ``Detector`` finds exactly what this finds.

Every built-in pattern runs over every text here (only the prefilters the scan always had stay:
"@" for e-mail, "PRIVATE KEY" before the PEM search, the AWS hints), and the body is read the
old way: a list of (top-level field, key, value) entries, then the texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from triage.access.sensitive import checks, patterns
from triage.access.sensitive.body import BLANK, REACH, BodyText
from triage.access.sensitive.normalise import Normaliser
from triage.access.sensitive.scan import AWS_REACH, OVERLAP, SLICE, Finding
from triage.config.routes import DETECTORS

Entry = tuple[str | None, str | None, object]
Scanner = Callable[[str], set[str]]
_STRUCTURAL = frozenset({"role", "type"})
_TOKEN_FIELDS = frozenset({"prompt", "input"})
_TOO_LONG = 10**40


def entries_of(body: Mapping[str, object], limit: int | None = None) -> list[Entry] | None:
    out: list[Entry] = []
    size = 0
    stack: list[Entry] = [(None, None, body)]
    while stack:
        entry = stack.pop()
        top, key, value = entry
        if isinstance(value, str):
            out.append(entry)
            size += len(value)
        elif isinstance(value, Mapping):
            names = [str(name) for name in value]
            out += [(top, None, name) for name in names]
            size += sum(map(len, names))
            fields = names if top is None else [top] * len(names)
            children = list(zip(fields, names, value.values(), strict=True))
            children.reverse()
            stack += children
        elif isinstance(value, list | tuple):
            stack += [(top, key, item) for item in reversed(value)]
        else:
            out.append(entry)
            size += 8
        if limit is not None and size > limit:
            return None
    return out


def read_body(body: Mapping[str, object], normalise: Callable[[str], str]) -> BodyText:
    texts: list[str] = []
    values: list[str] = []
    unreadable = False
    for top, key, value in entries_of(body) or []:
        if not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            if top in _TOKEN_FIELDS:
                unreadable = True
                continue
            if abs(value) >= _TOO_LONG:
                continue
            value = str(value)
        text = normalise(value)
        texts.append(text)
        if key is not None and key not in _STRUCTURAL:
            values.append(text)
    ends = [_ends(text) for text in values]
    junctions = BLANK.join(["", "".join(ends), " ".join(ends), ""]) if len(values) > 1 else ""
    return BLANK.join(["", *texts, ""]), junctions, unreadable


def _ends(text: str) -> str:
    if len(text) <= 2 * REACH + 8:
        return text
    head, tail = text[:REACH], text[-REACH:]
    cut = max(head.rfind(" "), head.rfind("\n"))
    if cut > REACH // 2:
        head = head[:cut]
    cut = next((at for at, char in enumerate(tail[: REACH // 2]) if char in " \n"), -1)
    return head + BLANK + tail[cut + 1 :]


class ReferenceDetector:
    def __init__(self, enabled: tuple[str, ...] = DETECTORS, custom: dict[str, str] | None = None):
        wanted = frozenset(enabled)
        named = dict(custom or {})
        self._order = [name for name in DETECTORS if name in wanted]
        self._order += [f"custom:{name}" for name in named]
        self._token_ids = "unreadable_token_ids" in wanted
        self._scanners = list(_builtin(wanted))
        self._scanners += [_custom(name, regex) for name, regex in named.items()]
        self._normalise = Normaliser()

    def scan_body(self, body: Mapping[str, Any]) -> list[Finding]:
        whole, junctions, unreadable = read_body(body, self._normalise)
        found = self._run(whole)
        if junctions:
            found |= self._run(junctions)
        if unreadable and self._token_ids:
            found.add("unreadable_token_ids")
        return [Finding(name) for name in self._order if name in found]

    def scan_text(self, text: str) -> list[Finding]:
        found = self._run(BLANK + self._normalise(text) + BLANK)
        return [Finding(name) for name in self._order if name in found]

    def _run(self, text: str) -> set[str]:
        found: set[str] = set()
        for scanner in self._scanners:
            found |= scanner(text)
        return found


def _slices(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    for start in range(0, len(text), SLICE):
        for match in pattern.finditer(text, start, start + SLICE + OVERLAP):
            if match.start() >= start + SLICE:
                break
            yield match


def _builtin(wanted: frozenset[str]) -> Iterator[Scanner]:
    rules: dict[str, tuple[str, Any]] = {
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
    rules = {group: rule for group, rule in rules.items() if rule[0] in wanted}
    scan = re.compile(patterns.SCAN, re.ASCII)
    yield lambda text: _rules(scan, rules, text)
    if "email" in wanted:
        email = re.compile(patterns.EMAIL, re.ASCII)
        yield lambda text: _hit("email", "@" in text and _emails(email, text))
    if "api_key" in wanted:
        secret, context = re.compile(patterns.AWS_SECRET), re.compile(patterns.AWS_CONTEXT)
        yield lambda text: _hit("api_key", _aws(secret, context, text))
    if "private_key" in wanted:
        block, body = re.compile(patterns.PRIVATE_KEY), re.compile(patterns.KEY_BODY)
        yield lambda text: _hit(
            "private_key",
            ("PRIVATE KEY" in text and block.search(text) is not None)
            or next(_slices(body, text), None) is not None,
        )


def _rules(pattern: re.Pattern[str], rules: dict[str, tuple[str, Any]], text: str) -> set[str]:
    found: set[str] = set()
    for match in _slices(pattern, text):
        detector, valid = rules.get(match.lastgroup or "", ("", None))
        if detector and (valid is None or valid(match)):
            found.add(detector)
    return found


def _emails(pattern: re.Pattern[str], text: str) -> bool:
    return any(checks.email_ok(text, match) for match in _slices(pattern, text))


def _aws(secret: re.Pattern[str], context: re.Pattern[str], text: str) -> bool:
    if not any(hint in text for hint in patterns.AWS_HINTS):
        return False
    return any(checks.aws_secret_ok(m, context, AWS_REACH) for m in _slices(secret, text))


def _custom(name: str, regex: str) -> Scanner:
    pattern = re.compile(regex)
    return lambda text: _hit(f"custom:{name}", next(_slices(pattern, text), None) is not None)


def _hit(name: str, fired: bool) -> set[str]:
    return {name} if fired else set()
