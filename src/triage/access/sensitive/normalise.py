"""Unicode normalisation before the sensitive scan: one spelling for every look-alike.

NFKC folds full-width and compatibility forms (``４１１１``, ``＠``, non-breaking and other spaces,
superscripts, circled digits); then invisible format characters (zero-width spaces and joiners,
bidi controls, soft hyphens, variation selectors, tag characters) are removed, dash and slash
look-alikes become ``-`` and ``/``, and every other decimal digit (Arabic-Indic, Devanagari...)
becomes its ASCII digit. The scan only needs to know *whether* a detector fires, never where, so
no offsets are kept. ASCII text, the common case, is returned as is. Long texts are normalised in
slices so that no single C call holds the GIL for long (see ``scan.py``).
"""

from __future__ import annotations

import re
import unicodedata

SLICE = 64 * 1024
"""Characters normalised per call; a cut may split a base letter from its combining mark, which
changes nothing the detectors look for (digits, ASCII letters and punctuation)."""

# Inclusive ranges of characters that render as nothing (Unicode ``Default_Ignorable`` format
# characters): removed, so that "4111\u200b1111..." reads as the number it shows.
_INVISIBLE = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),  # Mongolian selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # byte-order mark / zero-width no-break space
    (0xFFA0, 0xFFA0),
    (0x1BCA0, 0x1BCA3),
    (0xE0000, 0xE0FFF),  # tags and variation selectors supplement
)
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe58\u30fc"
_SLASHES = "\u2044\u2215\u29f8"
_SPACES = "\u1680\u2028\u2029\u0085"
_OTHER_DIGIT = re.compile(r"(?:(?![0-9])\d)")  # a Unicode decimal digit that is not ASCII


class Normaliser:
    """Folds a text to the spelling the detectors expect; built once per ``Detector``."""

    def __init__(self) -> None:
        table: dict[int, int | None] = {}
        for low, high in _INVISIBLE:
            table.update(dict.fromkeys(range(low, high + 1)))
        table.update(dict.fromkeys(map(ord, _DASHES), ord("-")))
        table.update(dict.fromkeys(map(ord, _SLASHES), ord("/")))
        table.update(dict.fromkeys(map(ord, _SPACES), ord(" ")))
        self._table = table

    def __call__(self, text: str) -> str:
        if text.isascii():
            return text
        if len(text) <= SLICE:
            return self._fold(text)
        pieces = range(0, len(text), SLICE)
        return "".join(self._fold(text[start : start + SLICE]) for start in pieces)

    def _fold(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text).translate(self._table)
        if text.isascii():
            return text
        digits = set(_OTHER_DIGIT.findall(text))
        if not digits:
            return text
        return text.translate({ord(d): ord("0") + unicodedata.decimal(d) for d in digits})
