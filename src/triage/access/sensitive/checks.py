"""The checks a pattern match must pass before its detector fires: checksums, issuer and format
rules, and the shapes of prose and code that only look like data. Where precision and recall
conflict, precision wins: a false positive sends traffic to a weaker local model.
"""

from __future__ import annotations

import re
import string

_EMAIL_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-")
# Documentation domains (RFC 2606/6761) carry no one's data, "git@host" is an SSH remote,
# "aes256-gcm@openssh.com" an SSH algorithm and "icon@2x.png" a file.
_RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "openssh.com", "libssh.org")
# Mailboxes that belong to no person: automated senders (a commit trailer such as
# "Co-Authored-By: Claude <noreply@anthropic.com>" sits in coding agents' system prompts).
_ROLE_MAILBOXES = frozenset({"noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon"})
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
_RANDOM_RUN = r"[A-Za-z0-9]{16,}"
_AWS_DOC_SECRET_END = "EXAMPLEKEY"  # AWS's documentation secret ends so


def email_ok(text: str, match: re.Match[str]) -> bool:
    at = match.start()
    if at == 0 or text[at - 1] not in _EMAIL_LOCAL_CHARS or text[at - 1] == ".":
        return False
    if text.endswith("git", 0, at) and (at == 3 or text[at - 4] not in _EMAIL_LOCAL_CHARS):
        return False
    domain = match.group(1).lower()
    if f" {domain.rpartition('.')[2]} " in _NOT_EMAIL_TLDS or _role_mailbox(text, at, domain):
        return False
    return not any(domain == d or domain.endswith("." + d) for d in _RESERVED_EMAIL_DOMAINS)


def _role_mailbox(text: str, at: int, domain: str) -> bool:
    start = at
    while start > max(0, at - 64) and text[start - 1] in _EMAIL_LOCAL_CHARS:
        start -= 1
    local = text[start:at].lower()
    return local in _ROLE_MAILBOXES or domain == "users.noreply.github.com"


def international_phone_ok(match: re.Match[str]) -> bool:
    return _phone_ok(match.group(), shortest=9)


def national_phone_ok(match: re.Match[str]) -> bool:
    return _phone_ok(match.group(), shortest=10)  # 9 digits is "02110-1301", a ZIP+4 code


def _phone_ok(candidate: str, *, shortest: int) -> bool:
    digits = [char for char in candidate if char.isdigit()]
    if not shortest <= len(digits) <= 15:
        return False
    if candidate.count(".") == 1:  # "+3.14159265" is a number, not a phone
        return False
    return not set(digits) <= {"0", "1"}  # bit patterns such as "0101 1100 0011"


def card_ok(match: re.Match[str]) -> bool:
    if _inside_number_run(match):  # a table of numbers, not a card
        return False
    number = ""
    # A card may be followed by its CVV ("4111 1111 1111 1111 123"): try each prefix.
    for group in re.findall(r"\d+", match.group()):
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


def iban_ok(match: re.Match[str]) -> bool:
    """ISO 13616: registered country and length, and mod-97 of the rearranged number is 1."""
    start = match.start("iban") - 3  # the country code and first check digit precede the group
    iban = match.string[start : match.end()].upper().replace(" ", "").replace("-", "")
    if f"{iban[:2]}{len(iban)}" not in _IBAN_FORMATS:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def ssn_ok(match: re.Match[str]) -> bool:
    """A US SSN with dashes stands alone; with spaces or dots it must not sit in a number table."""
    return match.group("ssep") == "-" or not _inside_number_run(match)


def aws_secret_ok(match: re.Match[str], context: re.Pattern[str], reach: int) -> bool:
    """40 random base64 characters with an access key id or "secret access" within ``reach``."""
    secret = match.group("secret")
    if secret.endswith(_AWS_DOC_SECRET_END) or not any(c.isdigit() or c in "+/" for c in secret):
        return False
    if not (any(c.isupper() for c in secret) and any(c.islower() for c in secret)):
        return False
    start, end = match.start("secret"), match.end("secret")
    return context.search(match.string, max(0, start - reach), end + reach) is not None


def dni_ok(match: re.Match[str]) -> bool:
    """Spanish DNI ("12345678Z") or NIE ("X1234567L"): the letter is the number mod 23."""
    candidate = match.group()
    body, letter = candidate[:-1].rstrip("-"), candidate[-1]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    return _DNI_LETTERS[int(body) % 23] == letter


def random_token(match: re.Match[str]) -> bool:
    """A weakly prefixed token ("sk-", "Bearer") is a secret only if it looks random.

    Random means a run of 16+ letters and digits that has both, which keeps out hyphenated words
    ("sk-learn-compatible-estimators"), placeholders ("Bearer YOUR_ACCESS_TOKEN_2") and examples
    ("Bearer ya29.google-oauth-token").
    """
    for run in re.findall(_RANDOM_RUN, match.group(match.lastgroup or 0)):
        if not run.isdigit() and not run.isalpha():
            return True
    return False
