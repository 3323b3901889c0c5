"""A 0..1 estimate of how hard a prompt is, from surface cues.

Owns the difficulty heuristic: prompt length (log scale), math density, multi-step cues,
code, explicit constraints, and tools / structured output. It is deliberately simple and
monotone so operators can reason about thresholds (the gateway escalates above a threshold such
as 0.8, so that region must be reserved for prompts with several strong cues). Cues are counted
on the word tokens the feature extractor already produced (instruction plus a sample of the
body), so it costs a few set lookups rather than another regex pass over the text.
"""

from __future__ import annotations

import math
from typing import Final

from triage.classify.features import LEXICON_BITS, LEXICON_LOW, Analysis, word_cues

_LOG_LONG: Final = math.log1p(8000)
_BULLETS: Final = ("\n- ", "\n* ", "\n1.", "\n2.")
BULLET_SCAN: Final = 1500

# Each cue alone can push difficulty up to its weight; together they combine like independent
# chances (1 - product of (1 - weight * strength)), so several moderate cues add up to a hard
# prompt while no single weak one does.
W_LENGTH: Final = 0.35
W_MATH: Final = 0.45
W_STEPS: Final = 0.55
W_CODE: Final = 0.45
W_CONSTRAINTS: Final = 0.45
W_EXTRAS: Final = 0.1


def difficulty(analysis: Analysis, task: str) -> float:
    """Difficulty in [0, 1]: "hi" is near 0, everyday questions sit around 0.1-0.3, and only
    prompts with several strong cues (long, mathematical, multi-step, constrained code) pass 0.8."""
    prompt, sig = analysis.prompt, analysis.signals
    # Cues in the instruction and the start of the body; deep inside a pasted document they
    # belong to the document, not to the request.
    # (The instruction's were counted with the lexicon, in features.analyse.)
    cues = analysis.cues + word_cues(analysis.body_words) if analysis.body_words else analysis.cues
    step_cues, constraint_cues = cues & LEXICON_LOW, cues >> LEXICON_BITS
    length = sig.length
    # Bulleted requirements count as constraints; in a long paste bullets are the document's.
    if length <= BULLET_SCAN and "\n" in prompt.text:
        constraint_cues += sum(map(prompt.text.count, _BULLETS))
    instruction_len = len(prompt.instruction) or 1
    # Each factor is 1 - weight * min(1, strength), multiplied in a fixed order.
    strength = math.log1p(length) / _LOG_LONG
    easy = 1.0 - W_LENGTH * (strength if strength < 1.0 else 1.0)
    strength = 4.0 * (sig.math_chars + 2 * analysis.math_words) / instruction_len
    easy *= 1.0 - W_MATH * (strength if strength < 1.0 else 1.0)
    strength = step_cues / 3 + (0.5 if task == "reasoning" else 0.0)
    easy *= 1.0 - W_STEPS * (strength if strength < 1.0 else 1.0)
    strength = 1.0 if sig.fence or task == "code" else sig.code_chars / (length or 1) * 15
    easy *= 1.0 - W_CODE * (strength if strength < 1.0 else 1.0)
    strength = constraint_cues / 4
    easy *= 1.0 - W_CONSTRAINTS * (strength if strength < 1.0 else 1.0)
    strength = 0.5 * (prompt.has_tools + prompt.has_response_format)
    easy *= 1.0 - W_EXTRAS * (strength if strength < 1.0 else 1.0)
    # max(0.0, min(1.0, hard)) without two builtin calls (hard is never NaN nor -0.0).
    hard = 1.0 - easy
    return 0.0 if hard < 0.0 else 1.0 if hard > 1.0 else hard
