"""Latency benchmark for the task-type classifier (shipped weights).

Times N calls per prompt shape with time.perf_counter_ns and prints p50 / p99 / mean in
microseconds. The budget is p50 <= 100us for everyday prompts, p99 <= 1ms for prompts up to
16 KB, and loading the shipped weights (median of several loads) <= 300ms.

    .venv/bin/python bench/classify_bench.py [--n 5000] [--cpu]

`--against COMMIT` instead compares this tree's classifier with the one at COMMIT (extracted by
classify_identity.py), interleaved on this thread's CPU clock: median microseconds per call of
each over 9 rounds, and the ratio. On a shared machine only the ratio of back-to-back runs means
anything.

    .venv/bin/python bench/classify_bench.py --against 04f190e --n 500
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from timing import report, time_calls  # bench/timing.py: this script's folder is on sys.path

from triage.classify import Classifier

PROSE = (
    "the council approved a budget for the new harbour bridge after months of debate about "
    "traffic noise tolls and the cost of steel while residents asked whether ferries would keep "
    "running during construction and engineers promised quieter night work schedules"
)
WORDS = PROSE.split()


def passage(chars: int, seed: int = 7) -> str:
    """Deterministic English-looking prose of about `chars` characters, in paragraphs."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        sentence = sentence.capitalize() + ". "
        if rng.random() < 0.15:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def prompts() -> dict[str, list[dict[str, Any]]]:
    question = "Based on the report below, which measures did the council adopt and why?\n\n"
    long_text = question + passage(4096 - len(question))
    huge_text = question + passage(16384 - len(question))
    # Past the classifier's 14 KB cap (prompt.TEXT_HEAD + TEXT_TAIL): what a 20 KB paste costs.
    paste_text = question + passage(20480 - len(question))
    log = "\n".join(
        f"2024-05-0{i % 9 + 1} ERROR worker[{i}]: timeout after {i * 7}ms" for i in range(300)
    )
    log_ask = log[:16200] + "\n\nWhy do these workers time out, and how do I fix the retry code?"
    code = (
        "Why does this raise KeyError?\n```python\ndef total(orders):\n"
        "    return sum(o['price'] * o['qty'] for o in orders)\n```"
    )
    mid_text = question + passage(2000 - len(question))
    bench_prompt = "Is this review positive or negative? 'The battery died after two days.'"
    return {
        "make bench prompt": [{"role": "user", "content": bench_prompt}],
        "2KB passage question": [{"role": "user", "content": mid_text}],
        "4KB passage question": [{"role": "user", "content": long_text}],
        "16KB passage question": [{"role": "user", "content": huge_text}],
        "20KB passage question": [{"role": "user", "content": paste_text}],
        "16KB log + ask": [{"role": "user", "content": log_ask}],
        "short question": [{"role": "user", "content": "What causes the northern lights?"}],
        "hi": [{"role": "user", "content": "hi"}],
        "code with fence": [{"role": "user", "content": code}],
        "multi-turn": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "hey, how's it going?"},
            {"role": "assistant", "content": "Doing well! What can I help you with today?"},
            {"role": "user", "content": "Write a haiku about a lighthouse in winter fog."},
        ],
        "follow-up": [
            {"role": "user", "content": code},
            {"role": "assistant", "content": "The dict has no 'qty' key in some orders."},
            {"role": "user", "content": "now make it faster"},
        ],
    }


def cpu_calls(call: Callable[[], object], n: int) -> list[int]:
    """Like timing.time_calls, but on the calling thread's CPU clock."""
    return time_calls(call, n, time.thread_time_ns)


def round_us(call: Callable[[], object], n: int) -> float:
    clock = time.thread_time_ns
    start = clock()
    for _ in range(n):
        call()
    return (clock() - start) / n / 1000


def against(commit: str, n: int) -> None:
    """Median CPU microseconds per classify() of this tree and of `commit`, interleaved."""
    import importlib
    import tempfile
    from pathlib import Path

    from classify_identity import old_package

    with tempfile.TemporaryDirectory() as where:
        old = importlib.import_module(old_package(commit, Path(where))).Classifier.load()
        new = Classifier.load()
        for name, messages in prompts().items():
            calls = [partial(c.classify, messages) for c in (old, new)]
            rounds: list[list[float]] = [[], []]
            for call in calls:
                cpu_calls(call, 200)
            gc.disable()
            try:
                for _ in range(9):
                    for index, call in enumerate(calls):
                        rounds[index].append(round_us(call, n))
            finally:
                gc.enable()
            before, after = map(statistics.median, rounds)
            ratio = before / after
            print(f"{name:<24} {commit[:8]} {before:8.1f}us  now {after:8.1f}us  x{ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="classifier latency benchmark")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time with this thread's CPU clock: on a shared machine, wall-clock p99 measures "
        "the scheduler, not the classifier",
    )
    parser.add_argument("--against", metavar="COMMIT", help="compare with the classifier at COMMIT")
    args = parser.parse_args()
    if args.against:
        against(args.against, args.n)
        return
    loads = []
    for _ in range(5):
        started = time.perf_counter()
        classifier = Classifier.load()
        loads.append((time.perf_counter() - started) * 1000)
    print(f"load shipped weights: median {statistics.median(loads):.1f}ms of 5")
    for name, messages in prompts().items():
        chars = len(messages[-1]["content"])

        def call(messages: Sequence[Mapping[str, Any]] = messages) -> object:
            return classifier.classify(messages)

        result = classifier.classify(messages)
        timings = cpu_calls(call, args.n) if args.cpu else time_calls(call, args.n)
        print(report(f"{name} ({chars}B)", timings), f"-> {result.task}")


if __name__ == "__main__":
    main()
