"""The regular expressions of the built-in detectors, as source text (compiled by ``scan.py``).

Every pattern is linear: possessive or bounded repeats, no ambiguous nesting, and each opens with
a plain character test so that the regex engine skips, in C, every position that cannot start a
match. Texts reach these patterns normalised (``normalise.py``) and start with a blank line, so a
look-behind always has a character to look at.

Phone, card, IBAN, national id and API-key rules share one pass of ``SCAN``, which opens with a
bare character class; a look-behind then sorts that first character into its family (digits, the
most frequent, first) and checks what precedes it. Each rule is a named group: ``lastgroup`` says
which rule matched. A number must not continue a word, a decimal, a sign or a dash-joined token.
"""

from __future__ import annotations

PRIVATE_KEY = r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----"
EMAIL = r"@((?:[A-Za-z0-9-]{1,63}+\.)+[A-Za-z]{2,24}+)(?![A-Za-z0-9-])"

_B64 = "[A-Za-z0-9+/]"
# Between lines of a key body: one line break (raw or JSON-escaped, maybe indented) or a space.
_LINE = r"(?:\r?\n[ \t]{0,8}+|(?:\\r)?\\n|[ \t])?"
# A private key body without its BEGIN line, recognised by how its DER encoding starts: a
# SEQUENCE then the version INTEGER 0 or 1 (PKCS#1 RSA and DSA, PKCS#8, SEC1 EC), a PKCS#5
# encrypted key, or OpenSSH's magic. Certificates and public keys start differently and are not
# secret. Then at least 100 base64 characters in all, on lines of any length.
KEY_BODY = (
    rf"[MbP](?<![A-Za-z0-9+/].)(?:"
    rf"(?:II{_B64}{{2}}[AQgw]IBA|I[E-H]{_B64}AgE[AB]|[A-H]{_B64}CAQ[AE]"
    rf"|II{_B64}{{5}}BgkqhkiG9w0BBQ|3BlbnNzaC1rZXktdjE)(?:{_LINE}{_B64}){{90}}"
    rf"|C4CAQAwBQYDK2V[uw]BCIEI{_B64}{{40}}"  # Ed25519 / X25519 PKCS#8: short, fixed prefix
    r"|uTTY-User-Key-File-\d++:|rivate-Lines: *+\d"  # PuTTY's .ppk format
    r")"
)
# An AWS secret access key: 40 base64 characters on their own, checked for randomness and for an
# access key id or the words "secret access key" nearby (``AWS_CONTEXT``).
AWS_SECRET = r"[^A-Za-z0-9+/](?P<secret>[A-Za-z0-9+/]{40})(?![A-Za-z0-9+/=])"
AWS_CONTEXT = r"A[KS]IA[0-9A-Z]{16}|(?i:aws[ _.-]?+secret|secret[ _.-]?+access)"
AWS_HINTS = ("AKIA", "ASIA", "ecret", "ECRET")
"""Literals one of which must be present before the AWS pass runs at all."""
KEY_BODY_HINTS = (
    "CAQ",
    "IBA",
    "AgE",
    "BgkqhkiG9w0BBQ",
    "3BlbnNzaC1rZXktdjE",
    "uTTY-User-Key-File-",
    "rivate-Lines:",
)
"""Literals one of which every ``KEY_BODY`` match holds (one per alternative): without them the
pattern cannot match and is not run."""

_END = r"(?!\w|[./-]\d)"
_SEP = r"[ ./-]{1,2}+"  # between the digit groups of a card: any one or two of these
_DIGIT_RULES = (  # after the first digit of a token of at least 8 digits and separators
    rf"[ .-](?<=1.)(?P<nanp1>(?:\([2-9]\d\d\) ?|[2-9]\d\d[-.])\d{{3}}[-.]\d{{4}}){_END}",
    rf"\d(?<=[2-9]\d)(?P<nanp>\d(?P<sep>[-.])\d{{3}}(?P=sep)\d{{4}}){_END}",
    rf"\d(?<=\([2-9]\d)(?<!\w\(\d\d)(?P<paren>\d\) ?\d{{3}}[-. ]\d{{4}}){_END}",
    rf"[1-9](?<=0.)(?P<trunk>\d{{0,3}}+(?:[ /-]\d{{3,8}}+){{1,4}}+){_END}",
    rf"\d(?<=[0-8]\d)(?P<ssn>\d(?<!000|666)(?P<ssep>[- .])(?!00)\d\d(?P=ssep)(?!0000)\d{{4}})"
    rf"{_END}",
    # Ungrouped runs only at the common lengths 15-16: 13/14/17-19-digit runs are mostly ids.
    rf"\d(?P<card>\d{{13,14}}+|\d\d{_SEP}\d{{3,6}}+(?:{_SEP}\d{{3,6}}+){{1,4}}+){_END}",
    r"\d(?P<dni>\d{6}-?[A-Z])(?![A-Za-z0-9])",
)
# An IBAN in any case, ungrouped or in groups of four split by spaces or dashes: found from its
# first check digit, with the two letters of the country code behind it.
_IBAN = (
    r"(?<=[^A-Za-z0-9][A-Za-z]{2}\d)"
    r"(?P<iban>\d(?:[A-Za-z0-9]{11,30}+|(?:[ -][A-Za-z0-9]{4}+){2,8}+(?:[ -][A-Za-z0-9]{1,3}+)?))"
    r"(?![A-Za-z0-9])"
)
_UPPER_RULES = (  # after an upper-case letter that starts a word
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
SCAN = (
    r"[0-9_A-Z+-](?:"
    r"(?<=\d)(?:"
    rf"(?<![\w./+-]\d)(?=[\d .()/-]{{7}})(?:{'|'.join(_DIGIT_RULES)})"
    rf"|{_IBAN})"
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
SCAN_STARTS = b"0123456789_"
SCAN_HINTS = ("AKIA", "ASIA", "AIza", "eyJ", "glpat-")
"""Every ``SCAN`` match that can fire starts at a digit or an underscore (``SCAN_STARTS``) or
holds one of these literals (the rules after a letter or a dash that need no digit; "sk-",
"Bearer" and Slack's "xox.-" need one: their pattern or ``checks.random_token``): a text with
none of them cannot fire, and the pattern is not run over it."""
PLAIN_RULES = (  # named groups of ``SCAN`` that need no check beyond the pattern
    ("phone", "paren nanp1 nanp"),
    ("national_id", "nino"),
    ("api_key", "aws google jwt gitlab stripe github github_pat huggingface slack"),
)
