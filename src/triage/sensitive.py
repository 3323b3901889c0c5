"""Sensitive-data detection: does a chat request carry data that must stay on local deployments?

Owns ``Finding``, ``DETECTORS`` and ``Detector``. A detector scans every text a chat request carries
(all turns, list-of-parts content, tool results, tool-call arguments) for e-mail addresses, phone
numbers, payment cards (issuer prefix + Luhn), IBANs (ISO 13616 mod-97), national ids (US SSN, UK
NI number, Spanish DNI/NIE with check letter), API keys, private-key blocks and operator-defined
regexes. It runs on every request before routing, so it is built for speed: phone, card, IBAN,
national id and API-key rules share one pass of one pattern that the regex engine skips through in
C, e-mail and private keys sit behind a literal pre-filter, every built-in pattern is linear
(possessive or bounded repeats, no ambiguous nesting) and each text is scanned at most
``SCAN_WINDOW`` characters from each end. Where precision and recall conflict, precision wins: a
false positive sends traffic to a weaker local model. A ``Finding`` names the detector only, never
the matched text, because findings end up in metric labels and logs.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

DETECTORS: tuple[str, ...] = (
    "email",
    "phone",
    "card",
    "iban",
    "national_id",
    "api_key",
    "private_key",
)
SCAN_WINDOW = 64 * 1024
"""Characters scanned from each end of one text; the middle of a longer text is skipped."""

_JOIN = "\n\n"  # no built-in pattern crosses a newline, so texts cannot run into each other
_EMAIL_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-")
# Documentation domains (RFC 2606/6761) carry no one's data, "git@host" is an SSH remote,
# "aes256-gcm@openssh.com" an SSH algorithm and "icon@2x.png" a file.
_RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "openssh.com", "libssh.org")
_NOT_EMAIL_TLDS = (  # space-delimited, looked up as " tld "
    " example test invalid localhost png jpg jpeg gif svg webp ico css js json html yaml yml toml "
    "txt lock "
)
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
# Country code + total length, from the SWIFT IBAN registry. Entries are 4 characters apart from
# a space, so a 4-character membership test can only match a whole entry.
_IBAN_FORMATS = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 "
    "IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 "
    "MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 QA29 RO24 RS22 RU33 SA24 SC31 SD18 "
    "SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
# Issuer prefix ranges (inclusive, equal width) and the card lengths each issues.
_CARD_ISSUERS: tuple[tuple[str, str, range], ...] = (
    ("4", "4", range(13, 20, 3)),  # Visa: 13, 16, 19
    ("51", "55", range(16, 17)),  # Mastercard
    ("2221", "2720", range(16, 17)),  # Mastercard 2-series
    ("34", "34", range(15, 16)),  # American Express
    ("37", "37", range(15, 16)),
    ("300", "305", range(14, 20)),  # Diners Club
    ("36", "36", range(14, 20)),
    ("38", "39", range(16, 20)),
    ("3528", "3589", range(16, 20)),  # JCB
    ("6011", "6011", range(16, 20)),  # Discover
    ("644", "649", range(16, 20)),
    ("65", "65", range(16, 20)),
    ("62", "62", range(16, 20)),  # UnionPay
    ("2200", "2204", range(16, 20)),  # Mir
    ("50", "50", range(13, 20)),  # Maestro
    ("56", "58", range(13, 20)),
    ("63", "63", range(13, 20)),
    ("67", "67", range(13, 20)),
)
_PRIVATE_KEY = r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----"
_EMAIL = r"@((?:[A-Za-z0-9-]{1,63}+\.)+[A-Za-z]{2,24}+)(?![A-Za-z0-9-])"
# Everything but e-mail and private keys is found in one pass of one pattern, which opens with a
# bare character class: the regex engine skips, in C, every position that cannot start a match.
# A look-behind then sorts that first character into its family (digits, the most frequent, first)
# and checks what precedes it. Each rule opens with a plain character test, which lets the engine
# drop a failing alternative without entering it, and then a named group: ``lastgroup`` says which
# rule matched (for keys the group holds the secret part, checked by ``_random_token``). A number
# must not continue a word, a decimal, a sign or a dash-joined token.
_END = r"(?!\w|[./-]\d)"
_RANDOM_RUN = r"[A-Za-z0-9]{16,}"
_DIGIT_RULES = (  # after the first digit of a token of at least 8 digits and separators
    rf"[ .-](?<=1.)(?P<nanp1>(?:\([2-9]\d\d\) ?|[2-9]\d\d[-.])\d{{3}}[-.]\d{{4}}){_END}",
    rf"\d(?<=[2-9]\d)(?P<nanp>\d(?P<sep>[-.])\d{{3}}(?P=sep)\d{{4}}){_END}",
    rf"\d(?<=\([2-9]\d)(?<!\w\(\d\d)(?P<paren>\d\) ?\d{{3}}[-. ]\d{{4}}){_END}",
    rf"[1-9](?<=0.)(?P<trunk>\d{{0,3}}+(?:[ /-]\d{{3,8}}+){{1,4}}+){_END}",
    rf"\d(?<=[0-8]\d)(?P<ssn>\d(?<!000|666)-(?!00)\d\d-(?!0000)\d{{4}}){_END}",
    # Ungrouped runs only at the common lengths 15-16: 13/14/17-19-digit runs are mostly ids.
    rf"\d(?P<card>\d{{13,14}}+|\d\d(?P<gap>[ -])\d{{3,6}}+(?:(?P=gap)\d{{3,6}}+){{1,4}}+){_END}",
    r"\d(?P<dni>\d{6}-?[A-Z])(?![A-Za-z0-9])",
)
_UPPER_RULES = (  # after an upper-case letter that starts a word
    r"[A-Z](?P<iban>\d\d(?:[A-Z0-9]{11,30}+|(?: [A-Z0-9]{4}+){2,8}+(?: [A-Z0-9]{1,3}+)?))"
    r"(?![A-Za-z0-9])",
    r"[A-CEGHJ-NPR-TW-Z](?<=[A-CEGHJ-PR-TW-Z].)(?<!BG|GB|NK|KN|TN|NT|ZZ)"
    r"(?P<nino>(?: ?\d\d){3} ?[A-D])(?![\w-])",  # not a part number ("MC146818A-")
    r"\d(?<=[XYZ]\d)(?P<nie>\d{6}-?[A-Z])(?![A-Za-z0-9])",
    r"[KS](?<=A.)IA(?P<aws>[0-9A-Z]{16})(?<!EXAMPLE)(?![A-Za-z0-9])",  # not AWS's doc key
    r"I(?<=AI)(?<![\w-]AI)za(?P<google>[\w-]{35})(?![\w-])",
    r"e(?<=Be)arer[ \t]++(?P<bearer>[A-Za-z0-9._~+/=-]{20,}+)",
)
_UNDERSCORE_RULES = (  # after the "_" that ends a vendor prefix
    r"(?<=[sr]k_live_)(?<!\w.k_live_)(?P<stripe>[A-Za-z0-9]{16,}+)",
    r"(?<=gh[pousr]_)(?<!\wgh._)(?P<github>[A-Za-z0-9]{36,}+)",
    r"(?<=github_pat_)(?<!\wgithub_pat_)(?P<github_pat>\w{50,}+)",
    r"(?<=hf_)(?<!\whf_)(?P<huggingface>[A-Za-z0-9]{34})(?!\w)",
)
_DASH_RULES = (  # after the "-" that ends a vendor prefix
    r"(?<=sk-)(?<![\w-]sk-)(?P<openai>[\w-]{20,}+)",  # OpenAI, Anthropic ("sk-ant-"), DeepSeek
    r"(?<=xox[abprs]-)(?<![\w-]xox.-)(?P<slack>\d[A-Za-z0-9-]{15,}+)",
    r"(?<=glpat-)(?<![\w-]glpat-)(?P<gitlab>[\w-]{20,}+)",
)
_SCAN = (
    r"[0-9_A-Z+-](?:"
    rf"(?<=\d)(?<![\w./+-]\d)(?=[\d .()/-]{{7}})(?:{'|'.join(_DIGIT_RULES)})"
    r"|(?<=[_A-Z+-])(?:"
    rf"(?<=_)(?:{'|'.join(_UNDERSCORE_RULES)})"
    rf"|(?<=[A-Z])(?<![A-Za-z0-9][A-Z])(?:{'|'.join(_UPPER_RULES)})"
    r"|(?<=eyJ)(?<![\w-]eyJ)(?P<jwt>[\w-]{10,}+\.eyJ[\w-]{10,}+\.[\w-]*+)"
    rf"|(?<=-)(?:{'|'.join(_DASH_RULES)})"
    # A country code never starts with 0; "+1980-02-29" is a signed year.
    r"|(?<=\+)(?<![\w+)\].~-]\+)(?=[1-9](?:[ ().-]{0,2}+\d){8})(?!\d{4,6}-\d\d-\d)"
    r"(?P<intl>\d++(?:[ .-]?\(\d++\)[ .-]?\d++|[ .-]\d++)*+)(?![\w+])"
    r"))"
)

_PLAIN_RULES = (  # named groups of ``_SCAN`` that need no check beyond the pattern
    ("phone", "paren nanp1 nanp"),
    ("national_id", "ssn nino"),
    ("api_key", "aws google jwt gitlab stripe github github_pat huggingface slack"),
)

_Scanner = Callable[[str], AbstractSet[str]]
"""Names of the detectors that fire on a text."""
_Rule = tuple[str, Callable[[re.Match[str]], bool] | None]
"""What a named group of ``_SCAN`` means: the detector, and the check a match must pass."""
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Finding:
    """One detector fired. Deliberately holds no matched text: findings reach metrics and logs."""

    detector: str


class Detector:
    """Scans chat requests for sensitive data; built once, then shared (it holds no state)."""

    def __init__(
        self, *, enabled: Sequence[str] = DETECTORS, custom: Mapping[str, str] | None = None
    ) -> None:
        wanted = frozenset(enabled)
        unknown = sorted(wanted - set(DETECTORS))
        if unknown:
            raise ValueError(f"unknown sensitive-data detector(s): {', '.join(unknown)}")
        patterns = dict(custom or {})
        self._findings = tuple(Finding(name) for name in DETECTORS if name in wanted) + tuple(
            Finding(f"custom:{name}") for name in patterns
        )
        self._scanners = tuple(_builtin_scanners(wanted)) + tuple(
            _custom_scanner(name, regex) for name, regex in patterns.items()
        )

    def scan_text(self, text: str) -> list[Finding]:
        """Distinct findings in one text, in ``DETECTORS`` order, then custom in config order."""
        return self._scan(_window(text))

    def scan_messages(self, messages: Sequence[Mapping[str, Any]]) -> list[Finding]:
        """Distinct findings across every text of an OpenAI chat ``messages`` list."""
        return self._scan(_JOIN.join(_window(text) for text in _message_texts(messages)))

    def _scan(self, text: str) -> list[Finding]:
        if not text:
            return []
        found: set[str] = set()
        for scanner in self._scanners:
            found |= scanner(text)
        return [finding for finding in self._findings if finding.detector in found]


def _message_texts(messages: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Every text a chat request carries: content of all turns and tool-call arguments."""
    for message in messages:
        yield from _content_texts(message.get("content"))
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            yield from _arguments(call.get("function") if isinstance(call, Mapping) else None)
        yield from _arguments(message.get("function_call"))  # the deprecated single call


def _content_texts(content: object) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            text = part.get("text") if isinstance(part, Mapping) else None
            if isinstance(text, str):
                yield text


def _arguments(function: object) -> Iterator[str]:
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    if isinstance(arguments, str):
        yield arguments


def _window(text: str) -> str:
    if len(text) <= 2 * SCAN_WINDOW:
        return text
    return text[:SCAN_WINDOW] + _JOIN + text[-SCAN_WINDOW:]


def _builtin_scanners(wanted: frozenset[str]) -> Iterator[_Scanner]:
    rules = {group: rule for group, rule in _scan_rules().items() if rule[0] in wanted}
    if rules:
        yield _rules_scanner(re.compile(_SCAN, re.ASCII), rules)
    if "email" in wanted:
        yield _email_scanner()
    if "private_key" in wanted:
        yield _literal_scanner("private_key", "PRIVATE KEY", re.compile(_PRIVATE_KEY))


def _scan_rules() -> dict[str, _Rule]:
    rules: dict[str, _Rule] = {
        "intl": ("phone", _international_phone_ok),
        "trunk": ("phone", _national_phone_ok),
        "card": ("card", _card_ok),
        "iban": ("iban", _iban_ok),
        "dni": ("national_id", _dni_ok),
        "nie": ("national_id", _dni_ok),
        "openai": ("api_key", _random_token),
        "bearer": ("api_key", _random_token),
    }
    for detector, groups in _PLAIN_RULES:
        rules.update(dict.fromkeys(groups.split(), (detector, None)))
    return rules


def _custom_scanner(name: str, regex: str) -> _Scanner:
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"custom sensitive pattern {name!r}: invalid regex: {exc}") from exc
    if pattern.search("") is not None:
        raise ValueError(f"custom sensitive pattern {name!r}: matches the empty string")
    hit = frozenset({f"custom:{name}"})
    return lambda text: hit if pattern.search(text) is not None else _NOTHING


def _rules_scanner(pattern: re.Pattern[str], rules: Mapping[str, _Rule]) -> _Scanner:
    targets = {detector for detector, _ in rules.values()}

    def scan(text: str) -> AbstractSet[str]:
        found: set[str] = set()
        for match in pattern.finditer(text):
            detector, valid = rules.get(match.lastgroup or "", ("", None))
            if detector and (valid is None or valid(match)):
                found.add(detector)
                if found == targets:
                    break
        return found

    return scan


def _literal_scanner(name: str, literal: str, pattern: re.Pattern[str]) -> _Scanner:
    hit = frozenset({name})
    return lambda text: hit if literal in text and pattern.search(text) is not None else _NOTHING


def _email_scanner() -> _Scanner:
    pattern = re.compile(_EMAIL, re.ASCII)
    hit = frozenset({"email"})

    def scan(text: str) -> AbstractSet[str]:
        if "@" in text and any(_email_ok(text, match) for match in pattern.finditer(text)):
            return hit
        return _NOTHING

    return scan


def _email_ok(text: str, match: re.Match[str]) -> bool:
    at = match.start()
    if at == 0 or text[at - 1] not in _EMAIL_LOCAL_CHARS or text[at - 1] == ".":
        return False
    if text.endswith("git", 0, at) and (at == 3 or text[at - 4] not in _EMAIL_LOCAL_CHARS):
        return False
    domain = match.group(1).lower()
    if f" {domain.rpartition('.')[2]} " in _NOT_EMAIL_TLDS:
        return False
    return not any(domain == d or domain.endswith("." + d) for d in _RESERVED_EMAIL_DOMAINS)


def _international_phone_ok(match: re.Match[str]) -> bool:
    return _phone_ok(match.group(), shortest=9)


def _national_phone_ok(match: re.Match[str]) -> bool:
    return _phone_ok(match.group(), shortest=10)  # 9 digits is "02110-1301", a ZIP+4 code


def _phone_ok(candidate: str, *, shortest: int) -> bool:
    digits = [char for char in candidate if char.isdigit()]
    if not shortest <= len(digits) <= 15:
        return False
    if candidate.count(".") == 1:  # "+3.14159265" is a number, not a phone
        return False
    return not set(digits) <= {"0", "1"}  # bit patterns such as "0101 1100 0011"


def _card_ok(match: re.Match[str]) -> bool:
    if _inside_number_run(match):  # a table of numbers, not a card
        return False
    number = ""
    # A card may be followed by its CVV ("4111 1111 1111 1111 123"): try each prefix.
    for group in match.group().replace("-", " ").split(" "):
        number += group
        if 13 <= len(number) <= 19 and _issued_card(number) and _luhn_ok(number):
            return True
    return False


def _inside_number_run(match: re.Match[str]) -> bool:
    """Whether a group of 3+ digits sits right before or after the match, as in a table."""
    text, start, end = match.string, match.start(), match.end()
    before, after = text[max(0, start - 4) : start], text[end : end + 4]
    return (len(before) == 4 and before[3] in " -" and before[:3].isdigit()) or (
        len(after) == 4 and after[0] in " -" and after[1:].isdigit()
    )


def _issued_card(number: str) -> bool:
    return any(
        low <= number[: len(low)] <= high and len(number) in lengths
        for low, high, lengths in _CARD_ISSUERS
    )


def _luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _iban_ok(match: re.Match[str]) -> bool:
    iban = match.group().replace(" ", "")
    if f"{iban[:2]}{len(iban)}" not in _IBAN_FORMATS:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _dni_ok(match: re.Match[str]) -> bool:
    """Spanish DNI ("12345678Z") or NIE ("X1234567L"): the letter is the number mod 23."""
    candidate = match.group()
    body, letter = candidate[:-1].rstrip("-"), candidate[-1]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    return _DNI_LETTERS[int(body) % 23] == letter


def _random_token(match: re.Match[str]) -> bool:
    """A weakly prefixed token ("sk-", "Bearer") is a secret only if it looks random.

    Random means a run of 16+ letters and digits that has both, which keeps out hyphenated words
    ("sk-learn-compatible-estimators"), placeholders ("Bearer YOUR_ACCESS_TOKEN_2") and examples
    ("Bearer ya29.google-oauth-token").
    """
    for run in re.findall(_RANDOM_RUN, match.group(match.lastgroup or 0)):
        if not run.isdigit() and not run.isalpha():
            return True
    return False
