"""Do two versions of the classifier decide the same? (for speed work on src/triage/classify)

Extracts src/triage/classify as of `--old` (a git commit) into a temporary folder under another
package name, loads it beside the working tree's version with the same shipped weights, and
classifies every prompt of the shared measurement files (task-eval and task-train; read at run
time, never copied) both ways, in several shapes: the text alone, a single-message request with
and without tools / response_format, a turn with a previous assistant answer as context, short
follow-ups that inherit from it, tool results as the passage, the model without rules, and the
training feature ids. Every field of every Classification must match: task, tier, reason
exactly; confidence, difficulty and every probability within 1e-9. Prints the first few
differences and exits 1 when there is any.

    .venv/bin/python bench/classify_identity.py [--old COMMIT] [--limit N]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from triage.classify import Classification, Classifier
from triage.classify.classifier import example_ids
from triage.classify.prompt import from_text

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FILES = (
    "task-eval/dolly-train.jsonl",
    "task-eval/dolly-dev.jsonl",
    "task-eval/vicuna-dev.jsonl",
    "task-train/train.jsonl",
    "task-train/dev.jsonl",
)
# The project's own short follow-ups (not from the shared files): continuations, pointers, thanks.
FOLLOWUPS = (
    "now make it faster",
    "what about in Go?",
    "make it shorter",
    "thanks, that's great!",
    "also add error handling",
    "do the same for the second one",
    "why?",
    "what if the list is empty?",
    "translate it into French",
)
TOLERANCE = 1e-9


def old_package(commit: str, where: Path) -> str:
    """Write src/triage/classify at `commit` into `where` as package `classify_old`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src/triage/classify"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    package = where / "classify_old"
    (where / "src" / "triage" / "classify").rename(package)
    for source in package.glob("*.py"):
        text = source.read_text().replace("triage.classify", "classify_old")
        # The weights format name is data, not an import path.
        source.write_text(text.replace('"classify_old/', '"triage.classify/'))
    sys.path.insert(0, str(where))
    return "classify_old"


def prompts(limit: int) -> Iterator[str]:
    for name in FILES:
        with (SHARED / name).open(encoding="utf-8") as handle:
            for count, line in enumerate(handle):
                if limit and count >= limit:
                    break
                yield json.loads(line)["prompt"]


def shapes(index: int, text: str, previous: str) -> Iterator[tuple[str, dict[str, Any]]]:
    user = {"role": "user", "content": text}
    yield "single", {"messages": [user]}
    yield "flags", {"messages": [user], "has_tools": index % 2 == 0, "has_response_format": True}
    answer = {"role": "assistant", "content": previous[::-1][:400]}
    yield "context", {"messages": [{"role": "user", "content": previous}, answer, user]}
    follow = {"role": "user", "content": FOLLOWUPS[index % len(FOLLOWUPS)]}
    yield "followup", {"messages": [user, {"role": "assistant", "content": previous}, follow]}
    tool = {"role": "tool", "content": previous, "tool_call_id": "t"}
    yield "tool", {"messages": [user, {"role": "assistant", "content": None}, tool]}
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": "x"}}]
    yield "parts", {"messages": [{"role": "system", "content": "Be brief."}, {"content": parts}]}


def differences(new: Classification, old: Any) -> list[str]:
    found = [
        field for field in ("task", "tier", "reason") if getattr(new, field) != getattr(old, field)
    ]
    for field in ("confidence", "difficulty"):
        if abs(getattr(new, field) - getattr(old, field)) > TOLERANCE:
            found.append(field)
    probs: Mapping[str, float] = new.probabilities
    if list(probs) != list(old.probabilities) or any(
        abs(probs[task] - old.probabilities[task]) > TOLERANCE for task in probs
    ):
        found.append("probabilities")
    return found


def compare(new: Classifier, old: Any, old_ids: Any, old_prompt: Any, texts: Sequence[str]) -> int:
    """Number of differing calls; prints the first few."""
    bad = calls = 0
    previous = "Write a Python function that parses a CSV file and sums the second column."
    for index, text in enumerate(texts):
        checks: list[tuple[str, Any, Any]] = [
            ("text", new.classify_text(text), old.classify_text(text)),
            (
                "no-rules",
                new.classify_prompt(from_text(text), rules=False),
                old.classify_prompt(old_prompt.from_text(text), rules=False),
            ),
        ]
        for shape, kwargs in shapes(index, text, previous):
            checks.append((shape, new.classify(**kwargs), old.classify(**kwargs)))
        for shape, got, want in checks:
            calls += 1
            found = differences(got, want)
            if found:
                bad += 1
                if bad <= 5:
                    print(f"DIFF #{index} {shape} {found}: {got} != {want}\n  {text[:120]!r}")
        calls += 1
        if example_ids(text) != old_ids(text):
            bad += 1
            if bad <= 5:
                print(f"DIFF #{index} example_ids\n  {text[:120]!r}")
        previous = text
    print(f"{len(texts)} prompts, {calls} comparisons, {bad} differences")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="HEAD", help="git commit of the reference version")
    parser.add_argument("--limit", type=int, default=0, help="rows per file (0: all)")
    args = parser.parse_args()
    texts = list(prompts(args.limit))
    with tempfile.TemporaryDirectory() as where:
        name = old_package(args.old, Path(where))
        old_module = importlib.import_module(name)
        old_classifier = importlib.import_module(f"{name}.classifier")
        old_prompt = importlib.import_module(f"{name}.prompt")
        new, old = Classifier.load(), old_module.Classifier.load()
        bad = compare(new, old, old_classifier.example_ids, old_prompt, texts)
        examples = {"code": texts[:3], "chat": texts[3:6]}
        bad += compare(
            new.with_examples(examples),
            old.with_examples(examples),
            old_classifier.example_ids,
            old_prompt,
            texts[:2000],
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
