"""Feature extraction: a Prompt becomes hashed feature ids plus a few dense signals.

Owns the feature space. Words (unigrams and bigrams), character 4-grams of the instruction's
start, its opening word and word pair, and words of a sample of the body are hashed with CRC-32
(stable across processes, unlike `hash()`) into BUCKETS buckets. Dense indicators (passage
size, code and math density, length, non-ASCII share, programming and math vocabulary ...) get
reserved slots just above the hashed range. Everything runs on bytes
with C-level helpers (re.findall, bytes.translate, zlib.crc32, map) because the whole
classification budget is ~100 microseconds.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from itertools import repeat
from struct import Struct
from typing import NamedTuple
from zlib import crc32

from triage.classify.charclass import class_counts
from triage.classify.memo import MEMO_CAP, GramMemo, Memos
from triage.classify.prompt import Prompt, filled

# Bump when anything here changes what ids a prompt produces: saved weights record it.
FEATURE_VERSION = "f9"
BUCKET_BITS = 20
BUCKETS = 1 << BUCKET_BITS
MASK = BUCKETS - 1
# Dense feature g with value v lives in slot DENSE + 8 * g + v.
DENSE = BUCKETS

# Seeds keep the namespaces (instruction words, bigrams, char grams, body words) apart.
SEED_BIGRAM = 0x9E3779B1
SEED_CHAR = 0x85EBCA77
SEED_BODY = 0xC2B2AE3D
SEED_LEAD = 0x165667B1
SEED_TAIL = 0x27D4EB2F
_LEAD_LOW = SEED_LEAD & MASK

CHAR_WINDOW = 32
SIGNAL_SCAN = 1024
BODY_SAMPLE = 120
# The last line of a long turn often holds the ask ("...\n\nWhat is wrong with this code?").
TAIL_LINE = 220

# Tokens are runs of [0-9a-z_\x80-\xff] (digits folded to 0) and single ? ! : characters;
# words_of maps every other byte to a space. _TOKEN says the same as a regex (for reference).
_TOKEN = re.compile(rb"[0-9a-z_\x80-\xff]+|[?!:]")
_TOKEN_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyz_?!:") | frozenset(range(0x80, 0x100))
_TOKEN_BYTES = bytes(
    byte if byte in _TOKEN_KEEP else 0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256)
)
# The bytes words_of makes tokens of their own, as ints (an int membership test is a memchr).
_QUESTION, _BANG, _COLON = b"?!:"


CODE_LEXICON = frozenset(
    b"python javascript js typescript ts java kotlin swift php ruby perl scala haskell rust "
    b"golang csharp cpp sql mysql postgres postgresql sqlite mongodb redis bash shell zsh "
    b"powershell regex regexp html css json yaml xml api apis endpoint http https function "
    b"functions method methods class classes variable variables array arrays string strings "
    b"integer boolean loop loops recursion recursive algorithm compile compiler runtime debug "
    b"debugging traceback exception syntax script scripts code coding program programming git "
    b"github commit repo repository docker dockerfile kubernetes npm pip conda node nodejs react "
    b"vue angular django flask fastapi linux unix terminal cli query queries database schema "
    b"pandas numpy dataframe async await thread threads backend frontend null undefined "
    b"stacktrace segfault implement refactor unittest pytest jest cron nginx bug bugs".split()
)
MATH_LEXICON = frozenset(
    b"solve equation equations calculate compute probability percent percentage squared cubed "
    b"sqrt derivative integral integrate sum product average mean median ratio divisible prime "
    b"factorial multiply multiplied divide divided plus minus times equals remainder fraction "
    b"fractions odds estimate expected digits proof prove logarithm log modulo".split()
)
# Difficulty cues (see difficulty.py): words of a multi-step task, and of explicit constraints.
STEP_WORDS = frozenset(
    b"step steps then prove proof derive justify explain why optimise optimize tradeoff "
    b"tradeoffs edge complexity first second third finally multiple compare analyse analyze "
    b"calculate estimate reasoning algorithm solve".split()
)
CONSTRAINT_WORDS = frozenset(
    b"must should least most exactly without only not never ensure avoid within limit "
    b"maximum minimum require required requirements".split()
)
# Asks for a worked chain of reasoning ("explain step by step", "show your work").
_REASONING_CUES = (
    "step-by-step",
    "step by step",
    "your reasoning",
    "show your work",
    "explain your answer",
    "estimate",
)
_YOUR_CUES = tuple(cue for cue in _REASONING_CUES if "your" in cue)
# Something only code has: an error class name, snake_case, camelCase, a call or a method call.
_IDENTIFIER = re.compile(
    r"[a-z](?:Error|Exception)\b|\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+[A-Z][a-z]\w*|\w\.\w+\(|\w\(\)"
)
# Markers that the previous turn holds code (a prose "function" or "class" does not count).
_CONTEXT_CODE = (
    "```",
    "def ",
    "#include",
    "SELECT ",
    "();",
    "=> ",
    "console.",
)


# A pasted log or stack trace: the payload is a failure, the ask is usually to debug it.
FAILURE_MARKERS = (
    "Error",
    "ERROR",
    "Exception",
    "Traceback",
    "FATAL",
    "panic:",
    "failed",
    "errno",
)
# The markers grouped under a character each of them holds, rarer than their first letter: a
# one-character search (memchr) rules out a group before any substring search.
_MARKER_GATES = (
    ("E", ("Error", "ERROR", "Exception")),
    ("T", ("Traceback",)),
    ("F", ("FATAL",)),
    (":", ("panic:",)),
    ("", ("failed", "errno")),
)


def has_failure_marker(text: str) -> bool:
    """Whether any of FAILURE_MARKERS occurs in `text`."""
    return any(
        gate in text and any(map(text.__contains__, markers)) for gate, markers in _MARKER_GATES
    )


class Signals(NamedTuple):
    """Cheap counts over the prompt, shared by the dense features, the rules and difficulty."""

    length: int  # characters in the classified turn (after capping)
    passage: int  # body characters plus tool-result characters
    digits: int  # digits in the instruction
    math_chars: int  # digits plus twice the operators, in the instruction
    code_chars: int  # code punctuation in the turn, extrapolated from the first SIGNAL_SCAN
    text_digits: int  # digits in the first SIGNAL_SCAN characters of the turn
    fence: bool  # a ``` fence anywhere in the turn
    non_ascii: float  # extra UTF-8 bytes per character: a coarse language signal
    questions: int  # question marks in the instruction
    commas: int  # commas in the instruction (item lists)
    context_code: bool  # the previous turn contains code markers


def signals(prompt: Prompt) -> Signals:
    text = prompt.text
    # Densities come from the first SIGNAL_SCAN characters: a fair sample of a long paste, and
    # the cost stays flat however long the prompt is.
    sample = text[:SIGNAL_SCAN]
    instruction = prompt.instruction.encode()
    length = len(text)
    scale = length / len(sample) if sample else 0.0
    digits, equals, operators, punct = class_counts(instruction)
    # A short turn that is all instruction (the usual case) is its own sample: encode and count
    # its classes once.
    same = sample is prompt.instruction
    raw = instruction if same else sample.encode()
    if same:
        text_digits = digits
        code = punct + equals
    else:
        text_digits, sample_equals, _, sample_punct = class_counts(raw)
        code = sample_punct + sample_equals
    return filled(
        Signals,
        length,
        len(prompt.body) + prompt.tool_chars,  # prompt.passage_chars, without a property call
        digits,
        # Digits plus operators, operators counted twice: "2 + 2 = ?" is denser than "in 2023".
        2 * (digits + equals + operators) - digits,
        round(code * scale),
        text_digits,
        # A one-character search (memchr) first: a three-character one over a 14 KB paste
        # costs ~10 us.
        "`" in text and "```" in text,
        (len(raw) - len(sample)) / len(sample) if sample else 0.0,
        prompt.instruction.count("?"),
        prompt.instruction.count(","),
        bool(prompt.context) and any(map(prompt.context.__contains__, _CONTEXT_CODE)),
    )


def dense_ids(
    prompt: Prompt, sig: Signals, code_words: int, math_words: int, body_scan: str
) -> list[int]:
    """Dense indicators as reserved slots, so the linear model weighs them like words.

    The two lexicon counts let a few hundred examples generalise: the model learns one weight
    for "mentions programming vocabulary" instead of one per language or tool name.
    `body_scan` is the first SIGNAL_SCAN characters of the body.
    """
    instruction = prompt.instruction
    length = sig.length
    ids = [
        DENSE + bisect_right(_LENGTH_STEPS, length),
        DENSE + 8 + bisect_right(_PASSAGE_STEPS, sig.passage),
        DENSE + 16 + bisect_right(_CODE_STEPS, sig.code_chars / (length or 1)),
        DENSE + 24 + bisect_right(_MATH_STEPS, 100 * sig.math_chars / (len(instruction) or 1)),
        DENSE + 32 + bisect_right(_NON_ASCII_STEPS, sig.non_ascii),
        DENSE + 40 + (sig.questions if sig.questions < 2 else 2),
        DENSE + 48 + bisect_right(_COMMA_STEPS, sig.commas),
        DENSE + 64 + (code_words if code_words < 3 else 3),
        DENSE + 72 + (math_words if math_words < 3 else 3),
        DENSE + 80 + _cues(prompt.text[:SIGNAL_SCAN].lower()),
        # No body: density -1, below every step.
        DENSE + 88 + (bisect_right(_DENSITY_STEPS, _density(body_scan)) if body_scan else 0),
    ]
    if body_scan and has_failure_marker(body_scan):
        ids.append(DENSE + 60)
    # The identifier regex only runs when there is something code-like to find.
    if (sig.code_chars or "Error" in instruction or "Exception" in instruction) and (
        _IDENTIFIER.search(instruction)
    ):
        ids.append(DENSE + 59)
    if sig.fence:
        ids.append(DENSE + 56)
    if prompt.tool_chars:
        ids.append(DENSE + 57)
    if sig.context_code:
        ids.append(DENSE + 58)
    return ids


_LENGTH_STEPS = (24, 64, 160, 400, 1500)
_PASSAGE_STEPS = (1, 80, 300, 1200)
_CODE_STEPS = (0.01, 0.03, 0.06, 0.1)
_MATH_STEPS = (1, 5, 15)
_NON_ASCII_STEPS = (0.02, 0.15, 0.6)
_COMMA_STEPS = (1, 3, 6)
_DENSITY_STEPS = (0.02, 0.06, 0.12)


def _cues(lowered: str) -> int:
    """How many distinct reasoning cues `lowered` holds, at most 2 (one search per family
    first: most prompts have neither "step" nor "your")."""
    count = 0
    if "step" in lowered:
        count = ("step-by-step" in lowered) + ("step by step" in lowered)
    if "your" in lowered:
        count += sum(map(lowered.__contains__, _YOUR_CUES))
    count += "estimate" in lowered
    return count if count < 2 else 2


def _density(text: str) -> float:
    """Code punctuation per character of the pasted material: a log or code block, or prose."""
    if not text:
        return -1.0
    raw = text.encode()
    _, equals, _, punct = class_counts(raw)
    return (equals + punct) / len(raw)


def _tail_line(prompt: Prompt) -> list[bytes]:
    body = prompt.body
    if len(body) < 2 * TAIL_LINE:
        return []
    cut = body.rfind("\n", len(body) - TAIL_LINE)
    return words_of(body[cut + 1 :]) if cut > 0 else []


class Analysis(NamedTuple):
    """Everything derived from a Prompt once per request: signals, words and feature ids."""

    prompt: Prompt
    signals: Signals
    words: list[bytes]
    body_words: list[bytes]
    code_words: int
    math_words: int
    cues: int  # the instruction's difficulty cues, packed: see word_cues
    ids: set[int]
    context_ids: set[int]


def words_of(text: str) -> list[bytes]:
    """Lower-cased word tokens (digits folded to 0) plus ? ! : as tokens.

    The same list as `_TOKEN.findall` over the lower-cased, digit-folded UTF-8, built with C
    passes instead of the regex engine: one translate turns every byte that cannot be in a
    token into a space, spaces around ? ! : make each its own token, and split() cuts.
    """
    raw = text.lower().encode().translate(_TOKEN_BYTES)
    # `byte in raw` with an int is one memchr; with a one-byte bytes it first fails (and
    # formats) an int conversion, about 1.6k instructions a test.
    if _QUESTION in raw:
        raw = raw.replace(b"?", b" ? ")
    if _BANG in raw:
        raw = raw.replace(b"!", b" ! ")
    if _COLON in raw:
        raw = raw.replace(b":", b" : ")
    return raw.split()


# The 4-byte windows of a squeezed instruction start (at most CHAR_WINDOW + 2 bytes long),
# taken four strides at a time: windows at offsets 0, 4, 8 ... are one struct unpack, those at
# 1, 5, 9 ... the next. One C call per stride instead of a slice per window (half the cost);
# the order differs, which the id set does not see.
# Each window is read as a little-endian uint32 (the memo's key; it hashes the 4 bytes).
_GRAM_STRIDES = tuple(Struct("<" + "I" * count) for count in range((CHAR_WINDOW + 2) // 4 + 1))


def _char_grams(text: str, memo: GramMemo) -> Iterator[int]:
    """Masked ids of the 4-byte windows of the squeezed instruction start."""
    squeezed = b" " + b" ".join(text[: CHAR_WINDOW * 2].lower().encode().split())[:CHAR_WINDOW]
    squeezed += b" "
    size = len(squeezed)
    if size < 4:
        return iter(())
    strides = _GRAM_STRIDES
    grams = (
        strides[size >> 2].unpack_from(squeezed)
        + strides[(size - 1) >> 2].unpack_from(squeezed, 1)
        + strides[(size - 2) >> 2].unpack_from(squeezed, 2)
        + strides[(size - 3) >> 2].unpack_from(squeezed, 3)
    )
    return map(memo.__getitem__, grams)


# Each word's memberships of the four vocabularies (code, math, step, constraint), packed in
# 16-bit counters (a turn has far fewer words): one dict lookup per word counts all four, for
# the dense features and for difficulty.
LEXICON_BITS = 16
LEXICON_LOW = (1 << LEXICON_BITS) - 1
_LEXICON: dict[bytes, int] = {}
for _shift, _words in enumerate((CODE_LEXICON, MATH_LEXICON, STEP_WORDS, CONSTRAINT_WORDS)):
    for _word in _words:
        _LEXICON[_word] = _LEXICON.get(_word, 0) + (1 << (LEXICON_BITS * _shift))
del _shift, _words, _word
# A view of the lexicon's words: a turn with none of them (about two in three over the shared
# corpora) is told by one isdisjoint pass, without a lookup and an add per word.
_LEXICON_WORDS = _LEXICON.keys()


def word_cues(words: list[bytes]) -> int:
    """The difficulty cues of `words`: step words in the low LEXICON_BITS, constraint words
    above."""
    if _LEXICON_WORDS.isdisjoint(words):
        return 0
    return sum(map(_LEXICON.get, words, repeat(0))) >> (2 * LEXICON_BITS)


def new_memos(cap: int = MEMO_CAP) -> Memos:
    """Memos of this feature space's hashed ids (cap 0: hash every token afresh)."""
    return Memos(
        mask=MASK, char=SEED_CHAR, body=SEED_BODY, tail=SEED_TAIL, pair=SEED_BIGRAM, cap=cap
    )


def analyse(prompt: Prompt, memos: Memos | None = None) -> Analysis:
    """Signals, tokens and deduplicated feature ids of the prompt and of its context turn.

    `memos` (a Classifier's) only saves hashing known tokens; the ids are the same without.
    """
    if memos is None:
        memos = new_memos(0)
    sig = signals(prompt)
    words = words_of(prompt.instruction)
    # A tool result is the passage when the turn itself has no body (see prompt.py).
    body = prompt.body or prompt.tool_text
    body_words = words_of(body[:BODY_SAMPLE]) if body else []
    # Unigram ids (crc32 & MASK) and each word's bigram seed (crc32 ^ SEED_BIGRAM) are one memo
    # hit per known word; a bigram is crc32(second, seed of first) & MASK.
    ids = set(map(memos.word.__getitem__, words))
    if len(words) > 1:
        bigrams = [crc & MASK for crc in map(crc32, words[1:], map(memos.pair.__getitem__, words))]
        ids.update(bigrams)
        # The opening word and word pair, by position: "write ..." and "write a ..." lead
        # requests. (crc ^ SEED_LEAD) & MASK, from the masked crc: the mask distributes over xor.
        ids.add(memos.word[words[0]] ^ _LEAD_LOW)
        ids.add(bigrams[0] ^ _LEAD_LOW)
    ids.update(_char_grams(prompt.instruction, memos.char))
    if body_words:
        ids.update(map(memos.body.__getitem__, body_words))
    if len(prompt.body) >= 2 * TAIL_LINE:
        ids.update(map(memos.tail.__getitem__, _tail_line(prompt)))
    lexicon = 0 if _LEXICON_WORDS.isdisjoint(words) else sum(map(_LEXICON.get, words, repeat(0)))
    code_words, math_words = lexicon & LEXICON_LOW, (lexicon >> LEXICON_BITS) & LEXICON_LOW
    cues = lexicon >> (2 * LEXICON_BITS)
    ids.update(dense_ids(prompt, sig, code_words, math_words, prompt.body[:SIGNAL_SCAN]))
    context: set[int] = set()
    if prompt.context:
        context = set(map(memos.word.__getitem__, words_of(prompt.context)))
    return filled(
        Analysis, prompt, sig, words, body_words, code_words, math_words, cues, ids, context
    )
