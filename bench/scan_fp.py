"""False positives of the sensitive-data detector on ordinary prompts, per detector.

Reads the prompts of ``../shared/data/task-train/{train,dev}.jsonl`` at run time (they are never
copied into the project): code, maths, prose and chat from public datasets, which should carry no
one's personal data. Each prompt is scanned as one user turn and, with ``--parts N``, also split
into content parts of N characters (which exercises the junction scan across adjacent strings).
Prints, per detector, how many prompts fired and the rate, then the ids of the prompts that fired
(to inspect by hand), and the total scan time.

    .venv/bin/python bench/scan_fp.py [--data ../shared/data/task-train] [--parts 200]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from triage.access.sensitive import DETECTORS, Detector


def prompts(folder: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name in ("train.jsonl", "dev.jsonl"):
        with (folder / name).open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                rows.append((str(row["id"]), str(row["prompt"])))
    return rows


def as_body(prompt: str, parts: int) -> dict[str, Any]:
    if parts <= 0:
        return {"messages": [{"role": "user", "content": prompt}]}
    pieces = [prompt[at : at + parts] for at in range(0, len(prompt), parts)]
    content = [{"type": "text", "text": piece} for piece in pieces]
    return {"messages": [{"role": "user", "content": content}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "task-train"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--parts", type=int, default=0, help="also split prompts into parts")
    parser.add_argument("--show", type=int, default=10, help="ids to list per detector")
    args = parser.parse_args()
    rows = prompts(args.data)
    detector = Detector()
    for parts in sorted({0, args.parts}):
        fired: Counter[str] = Counter()
        examples: dict[str, list[str]] = {}
        started = time.perf_counter()
        for row_id, prompt in rows:
            for finding in detector.scan_body(as_body(prompt, parts)):
                fired[finding.detector] += 1
                examples.setdefault(finding.detector, []).append(row_id)
        seconds = time.perf_counter() - started
        label = f"split into parts of {parts} chars" if parts else "one text per prompt"
        chars = sum(len(prompt) for _, prompt in rows)
        print(f"{len(rows)} prompts ({chars / 1e6:.1f} M chars), {label}: {seconds:.2f} s")
        for name in DETECTORS:
            rate = fired[name] / len(rows)
            ids = " ".join(examples.get(name, [])[: args.show])
            print(f"  {name:22} {fired[name]:5d}  {rate:8.4%}  {ids}")
        anything = sum(1 for _ in fired.elements())
        print(f"  {'any (sum)':22} {anything:5d}  {anything / len(rows):8.4%}")


if __name__ == "__main__":
    main()
