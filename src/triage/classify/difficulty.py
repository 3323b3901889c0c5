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

from triage.classify.features import Analysis

_LOG_LONG: Final = math.log1p(8000)
_STEP_WORDS: Final = frozenset(
    b"step steps then prove proof derive justify explain why optimise optimize tradeoff "
    b"tradeoffs edge complexity first second third finally multiple compare analyse analyze "
    b"calculate estimate reasoning algorithm solve".split()
)
_CONSTRAINT_WORDS: Final = frozenset(
    b"must should least most exactly without only not never ensure avoid within limit "
    b"maximum minimum require required requirements".split()
)
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
    words, body_words = analysis.words, analysis.body_words
    step_cues = sum(map(_STEP_WORDS.__contains__, words))
    step_cues += sum(map(_STEP_WORDS.__contains__, body_words))
    constraint_cues = sum(map(_CONSTRAINT_WORDS.__contains__, words))
    constraint_cues += sum(map(_CONSTRAINT_WORDS.__contains__, body_words))
    # Bulleted requirements count as constraints; in a long paste bullets are the document's.
    if sig.length <= BULLET_SCAN:
        constraint_cues += sum(map(prompt.text.count, _BULLETS))
    instruction_len = max(len(prompt.instruction), 1)
    code_share = sig.code_chars / max(sig.length, 1)
    strengths = (
        (W_LENGTH, math.log1p(sig.length) / _LOG_LONG),
        (W_MATH, 4.0 * (sig.math_chars + 2 * analysis.math_words) / instruction_len),
        (W_STEPS, step_cues / 3 + (0.5 if task == "reasoning" else 0.0)),
        (W_CODE, 1.0 if sig.fence or task == "code" else code_share * 15),
        (W_CONSTRAINTS, constraint_cues / 4),
        (W_EXTRAS, 0.5 * (prompt.has_tools + prompt.has_response_format)),
    )
    easy = 1.0
    for weight, strength in strengths:
        easy *= 1.0 - weight * min(1.0, strength)
    return max(0.0, min(1.0, 1.0 - easy))
