"""High-precision rules that decide the task before the model is consulted.

Owns only patterns that are nearly always right when they fire (measured against the light-only
dolly files and the task-train corpus, where a wrong hit is a routing error). Everything ambiguous
is left to the linear model; the code markers, right most of the time but not nearly always
(documentation with code in it gets summarised too), are hints the model weighs as features.
Also owns the follow-up test used for multi-turn inheritance. Each rule is cheap: a pre-check on
counts or tokens already computed by feature extraction gates every regex.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from triage.classify.features import DENSE, FAILURE_MARKERS, Analysis

# How often a firing rule is right, used to report honest probabilities for rule hits.
RULE_PRECISION = 0.95
SCAN_CHARS = 4000
# Math questions are short; a long text with numbers in it is a passage, not a problem.
ARITHMETIC_MAX = 600
WORD_PROBLEM_MAX = 1000
# A body longer than this after the first line is reference material, not the problem itself.
SMALL_PASSAGE = 300
FOLLOWUP_MAX = 300

# Unmistakable source code, one line at a time. Each pattern runs only on the lines holding one
# of its anchor words: a single regex over the whole scan cost milliseconds on a pasted log.
_TAGS = ("div", "span", "html", "body", "script", "table")
_CODE_LINES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (anchors, re.compile(pattern, re.MULTILINE))
    for anchors, pattern in (
        (("def", "class"), r"^[ \t]*(?:def|class)[ \t]+\w+[ \t]*[(:]"),
        (("import",), r"^[ \t]*(?:import[ \t]+[\w.]+[ \t]*$|from[ \t]+[\w.]+[ \t]+import[ \t])"),
        (("#include",), r"#include[ \t]*[<\"]"),
        (
            ("public", "private", "protected"),
            r"\b(?:public|private|protected)[ \t]+(?:static[ \t]+)?"
            r"(?:void|int|class|String|bool)\b",
        ),
        (("function",), r"\bfunction[ \t]*\w*[ \t]*\([^)\n]*\)[ \t]*\{"),
        (("const", "let", "var"), r"\b(?:const|let|var)[ \t]+\w+[ \t]*=[^;\n]*;[ \t]*$"),
        (("SELECT",), r"\bSELECT[ \t]+[\w*,. \t()]+?[ \t]+FROM[ \t]+\w"),
        (("Traceback (",), r"Traceback \(most recent call last\)"),
        (("fn", "func"), r"^[ \t]*(?:fn|func)[ \t]+\w+[ \t]*\("),
        (
            ("console.log(", "System.out.print", "std::", 'printf("'),
            r"\bconsole\.log\(|\bSystem\.out\.print|\bstd::\w|\bprintf\(\"",
        ),
        (("=>",), r"=>[ \t]*\{"),
        (
            tuple(f"<{tag}" for tag in _TAGS) + tuple(f"</{tag}" for tag in _TAGS),
            r"</?(?:div|span|html|body|script|table)\b[^>]*>",
        ),
    )
)
# Lines tried per anchor word: prose can say "class" often, code says it early.
ANCHOR_TRIES = 4
# Code in a paste shows itself early; scanning further costs more than it finds.
CODE_SCAN = 2000


# Characters each _CODE_LINES pattern cannot match without (all of them): a text lacking one
# skips that pattern's anchor scans. Single-character searches are the cheapest there are.
_CODE_NEEDS = ("", "", "", "", "({", "=;", "", "", "(", "", "{", "<>")
_GATE_CHARS = frozenset("".join(_CODE_NEEDS))


def _code_line(text: str) -> bool:
    absent = {char for char in _GATE_CHARS if char not in text}
    for (anchors, pattern), needs in zip(_CODE_LINES, _CODE_NEEDS, strict=True):
        if absent and needs and not absent.isdisjoint(needs):
            continue
        for anchor in anchors:
            at = text.find(anchor)
            for _ in range(ANCHOR_TRIES):
                if at < 0:
                    break
                line_end = text.find("\n", at)
                line_end = len(text) if line_end < 0 else line_end
                if pattern.search(text, text.rfind("\n", 0, at) + 1, line_end):
                    return True
                at = text.find(anchor, line_end)
    return False


_ARITHMETIC = re.compile(
    r"\d(?:\.\d+)?[ \t]*(?:[+*×÷^]|[ \t]/[ \t])[ \t]*\(?-?\d"
    r"|\bsolve\b[^.?!\n]{0,40}\bfor [a-z]\b"
    r"|\b\d*[a-z][ \t]*[-+][ \t]*\d+(?:[a-z])?[ \t]*=[ \t]*-?\d"
    r"|\b[fgh]\([a-z0-9]\)[ \t]*=",
    re.IGNORECASE,
)
_QUANT_QUESTION = re.compile(
    r"\b(?:how (?:many|much|long|far|old|fast)|what (?:percentage|fraction|is the probability)"
    r"|at what (?:time|speed|rate)|what is the (?:total|average|sum|difference|ratio))\b",
    re.IGNORECASE,
)
# Plain quantities: not years (1000-2099), which history questions are full of.
_QUANTITY = re.compile(r"(?<![\d.,])(?!(?:1\d|20)\d\d\b)\d+(?:[.,]\d+)?(?![\d])")
_SUMMARIZE = re.compile(
    r"\b(?:summari[sz]e|tl;?dr|sum (?:it |this |that )?up|condense|resumir|resúme\w*|résume[rz]?"
    r"|zusammenfassen)\b"
    r"|\b(?:give|write|provide|make|create|produce|need)\b[^.?!\n]{0,30}\b(?:summary|r[ée]sum[ée]n?|"
    r"zusammenfassung)\b",
    re.IGNORECASE,
)
_REFERENCE = re.compile(
    r"\b(?:given|based on|according to|paragraph|passage|text|reference|article)\b", re.IGNORECASE
)
# A quoted span: supplied text (a sign, a label, an ad) the question is about.
_QUOTED = re.compile(r"['\"“‘«„][^'\"”’»“]{24,}['\"”’»“]")
_TRANSLATE = re.compile(
    r"^\W*(?:please[ ,]+|can you[ ,]+|could you[ ,]+)?"
    r"(?:translate|traduce|traduis|traduz|traduci|übersetze)\b(.*)",
    re.IGNORECASE | re.DOTALL,
)
_TRANSLATE_TARGET = re.compile(
    r"\b(?:into|to|en|in|auf|ins|para|al|nach)\s+[A-Za-zÀ-ÿ]+", re.IGNORECASE
)
_PROGRAMMING = re.compile(
    r"\b(?:python|javascript|typescript|java|rust|golang|c\+\+|c#|sql|code|script|function|"
    r"regex|bash|kotlin|swift|php|ruby)\b",
    re.IGNORECASE,
)


# A follow-up to a code answer starts with an edit verb or a question word; thanks and
# small talk ("great, thanks!") are not code requests.
_FOLLOWUP_WORDS = frozenset(
    b"make change add fix rewrite convert optimise optimize refactor use now also update modify "
    b"remove rename port write handle implement extend improve can could why how what does "
    b"should explain test run".split()
)
_THANKS_WORDS = frozenset(b"thanks thank thx cheers great cool awesome perfect bye lol".split())
# Asking to get past a failure; prose editing ("fix the grammar") is not debugging.
_DEBUG_WORDS = frozenset(
    b"fix debug resolve solve workaround troubleshoot wrong crash crashes failing fails panic "
    b"panics broken bug".split()
)
_EDITING_WORDS = frozenset(b"grammar spelling punctuation typo typos proofread wording".split())
FOLLOWUP_CHARS = 120
_CONTINUE_WORDS = frozenset(b"now also and then again instead".split())
_CONTINUE_PAIRS = frozenset((b"what about", b"how about", b"what if", b"same for"))
# Their first words: a turn starting otherwise skips joining its first two words.
_PAIR_FIRSTS = frozenset(pair.split()[0] for pair in _CONTINUE_PAIRS)
# Words that point back at the previous answer: "make it shorter", "do the same for Go".
_ANAPHORA = frozenset(b"it them again same instead shorter longer faster simpler another".split())
# Chinese, Japanese and Korean have no spaces, so their keywords are matched as substrings,
# only when the text is mostly non-ASCII.
CJK_SHARE = 0.3
_CJK_SUMMARY = ("总结", "概括", "摘要", "總結", "要約", "まとめ", "요약")
_CJK_TRANSLATE = ("翻译", "翻譯", "翻訳", "번역")
# Cheap token gates: the regexes only run when one of these words is in the instruction.
_TRANSLATE_WORDS = frozenset("translate traduce traduis traduz traduci übersetze".encode().split())
_SUMMARY_WORDS = frozenset(
    "summarize summarise summary summarizing summarising tl tldr sum condense resumir résume "
    "résumer résumez resumen resúmelo resúmeme zusammenfassen zusammenfassung".encode().split()
)


@dataclass(frozen=True, slots=True)
class RuleHit:
    """The rule that fired (reported as "rule:<name>") and the task it decides."""

    name: str
    task: str

    @property
    def reason(self) -> str:
        return f"rule:{self.name}"


def code_fence(analysis: Analysis) -> bool:
    """A fenced block that contains code punctuation."""
    if not analysis.signals.fence:
        return False
    text = analysis.prompt.text
    start = text.find("```")
    end = text.find("```", start + 3)
    block = text[start + 3 : end if end > 0 else start + SCAN_CHARS]
    return sum(map(block.count, "(){}[];=<>")) >= 4


def code_syntax(analysis: Analysis) -> bool:
    """Unmistakable source code (a def, an #include, a SELECT ... FROM, a traceback ...)."""
    # SQL needs no punctuation, everything else does: skip the regex on plain prose.
    if analysis.signals.code_chars < 2 and "SELECT" not in analysis.prompt.text:
        return False
    return _code_line(analysis.prompt.text[:CODE_SCAN])


def code_followup(analysis: Analysis) -> bool:
    """A short edit or question about code in the previous turn ("now make it faster")."""
    words = analysis.words
    if not analysis.signals.context_code or analysis.signals.length > FOLLOWUP_MAX or not words:
        return False
    return words[0] in _FOLLOWUP_WORDS and _THANKS_WORDS.isdisjoint(words)


def debug_paste(analysis: Analysis) -> bool:
    """A pasted log, stack trace or compiler error, and an ask to fix or explain the failure."""
    if _DEBUG_WORDS.isdisjoint(analysis.words) or not _EDITING_WORDS.isdisjoint(analysis.words):
        return False
    body = analysis.prompt.body[:SCAN_CHARS]
    return any(map(body.__contains__, FAILURE_MARKERS))


def translate(analysis: Analysis) -> bool:
    """An instruction that starts with "translate" and names a target language."""
    instruction = analysis.prompt.instruction
    if analysis.signals.non_ascii > CJK_SHARE and any(
        map(instruction.__contains__, _CJK_TRANSLATE)
    ):
        return True
    if _TRANSLATE_WORDS.isdisjoint(analysis.words[:4]):
        return False
    match = _TRANSLATE.match(instruction)
    if match is None or _PROGRAMMING.search(instruction):
        return False
    return _TRANSLATE_TARGET.search(match.group(1)) is not None


def summarize(analysis: Analysis) -> bool:
    """ "Summarize / tl;dr" in the instruction with a real passage attached."""
    if analysis.signals.passage < 200:
        return False
    instruction = analysis.prompt.instruction
    if analysis.signals.non_ascii > CJK_SHARE and any(map(instruction.__contains__, _CJK_SUMMARY)):
        return True
    if _SUMMARY_WORDS.isdisjoint(analysis.words):
        return False
    return _SUMMARIZE.search(instruction) is not None


def arithmetic(analysis: Analysis) -> bool:
    """An explicit expression or equation to evaluate or solve, in a short prompt."""
    sig = analysis.signals
    if sig.length > ARITHMETIC_MAX or sig.passage > SMALL_PASSAGE or not sig.text_digits:
        return False
    return _ARITHMETIC.search(analysis.prompt.text) is not None


def word_problem(analysis: Analysis) -> bool:
    """A quantitative question over at least two stated quantities (years do not count)."""
    sig, prompt = analysis.signals, analysis.prompt
    if sig.length > WORD_PROBLEM_MAX or sig.passage > SMALL_PASSAGE or sig.text_digits < 2:
        return False
    if _REFERENCE.search(prompt.instruction) or _QUOTED.search(prompt.text):
        return False
    # With a body, the quantities must sit in the question itself, not in the attached text.
    scope = prompt.instruction if sig.passage else prompt.text
    if _QUANT_QUESTION.search(scope) is None:
        return False
    return len(_QUANTITY.findall(scope)) >= 2


def follows_up(analysis: Analysis) -> str | None:
    """How a short turn continues the previous request: "opener" when it starts like a
    continuation ("now ...", "what if ...", "also ..."), "pointer" when it only points back at
    the last answer ("make it shorter"), None for anything else (thanks, a new request)."""
    words = analysis.words
    if not words or analysis.signals.length > FOLLOWUP_CHARS or analysis.signals.passage:
        return None
    if not _THANKS_WORDS.isdisjoint(words):
        return None
    first = words[0]
    if first in _CONTINUE_WORDS or (
        first in _PAIR_FIRSTS and b" ".join(words[:2]) in _CONTINUE_PAIRS
    ):
        return "opener"
    return None if _ANAPHORA.isdisjoint(words) else "pointer"


# Code markers are evidence, not a verdict: "summarise this README" pastes code too. They reach
# the model as features (HINT_BASE + index) and it learns how far to trust them.
HINT_BASE = DENSE + 96
HINTS: tuple[tuple[str, Callable[[Analysis], bool]], ...] = (
    ("code_fence", code_fence),
    ("code_syntax", code_syntax),
)


def hint_ids(analysis: Analysis) -> list[int]:
    """Feature ids of the hints that fire."""
    sig = analysis.signals
    # Both hints' own first gates at once: a turn with no fence, hardly any code punctuation and
    # no SELECT (most prose) fires neither, without a call to either.
    if not sig.fence and sig.code_chars < 2 and "SELECT" not in analysis.prompt.text:
        return []
    return [HINT_BASE + index for index, (_, hint) in enumerate(HINTS) if hint(analysis)]


RULES: tuple[tuple[str, str, Callable[[Analysis], bool]], ...] = (
    ("code_followup", "code", code_followup),
    ("debug_paste", "code", debug_paste),
    ("translate", "rewrite", translate),
    ("summarize", "summarization", summarize),
    ("arithmetic", "reasoning", arithmetic),
    ("word_problem", "reasoning", word_problem),
)


# Each rule with its (immutable) hit, built once rather than on every request it decides.
_HITS = tuple((rule, RuleHit(name=name, task=task)) for name, task, rule in RULES)


def apply_rules(analysis: Analysis) -> RuleHit | None:
    """The first rule that fires, or None."""
    sig = analysis.signals
    # Every rule's own first gate failing at once (no digits, no passage, no code before, not
    # mostly CJK, no debug or translate word: most short prose) fires none, without six calls.
    if (
        not sig.text_digits
        and sig.passage < 200
        and not sig.context_code
        and sig.non_ascii <= CJK_SHARE
        and _DEBUG_WORDS.isdisjoint(analysis.words)
        and _TRANSLATE_WORDS.isdisjoint(analysis.words[:4])
    ):
        return None
    for rule, hit in _HITS:
        if rule(analysis):
            return hit
    return None
