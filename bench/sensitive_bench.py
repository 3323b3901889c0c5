"""Latency benchmark for the sensitive-data detector (every built-in detector enabled).

Times ``Detector.scan_messages`` N times per request shape with time.perf_counter_ns and prints
p50 / p99 / mean in microseconds, then the time for each adversarial 1 MB input once (windowed, as
in production: 64 KB from each end). The synthetic code file is digit-dense (numbers make up a
quarter of it); the stdlib file is what ordinary source looks like.

    .venv/bin/python bench/sensitive_bench.py [--n 2000]
"""

from __future__ import annotations

import argparse
import inspect
import random
import time
from typing import Any

from timing import report, time_calls  # bench/timing.py: this script's folder is on sys.path

from triage.access.sensitive import Detector

PROSE = (
    "the council approved a budget for the new harbour bridge after months of debate about "
    "traffic noise tolls and the cost of steel while residents asked whether ferries would keep "
    "running during construction and engineers promised quieter night work schedules in 2024 "
    "with 3 lanes and 12 pillars"
)

CODE_TEMPLATES = (
    "@dataclass(frozen=True)\nclass Order{n}:\n    order_id: int = {big}\n"
    "    created: str = '2024-0{d}-1{d}T10:3{d}:00Z'\n    version: str = '1.{d}.{n}'\n\n",
    "def price_{n}(qty: int, rate: float = 3.14159265) -> float:\n"
    "    # see https://docs.python.org/3/library/re.html#re.{n}\n"
    "    return round(qty * rate * 1.{big}, {d})\n\n",
    "    h = x @ self.proj_{n}.weight + 0x{hexa}\n    assert np.allclose(h, {big}e-9)\n",
    "TABLE_{n} = [{big}, {d}{d}{d}, -{n}, 0.{big}, {n}_{d}{d}{d}]  # commit {hexa}{hexa}{hexa}\n",
    "    log.info('request %s took %d ms', '{hexa}-{hexa}', {big})\n",
)


def passage(chars: int, seed: int = 7) -> str:
    """Deterministic English-looking prose of about `chars` characters, in paragraphs."""
    rng = random.Random(seed)
    words = PROSE.split()
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(8, 20)))
        sentence = sentence.capitalize() + ". "
        if rng.random() < 0.15:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def code_file(chars: int, seed: int = 11) -> str:
    """Deterministic Python-looking source full of numbers, dates, versions, hashes and '@'."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        chunk = rng.choice(CODE_TEMPLATES).format(
            n=rng.randint(1, 999),
            d=rng.randint(1, 9),
            big=rng.randint(10**8, 10**12),
            hexa=f"{rng.getrandbits(32):08x}",
        )
        out.append(chunk)
        size += len(chunk)
    return "".join(out)[:chars]


def requests() -> dict[str, list[dict[str, Any]]]:
    system = {"role": "system", "content": "You are a careful assistant."}
    question = "Summarise the report below and list the open questions.\n\n"
    email = "\n\nSend the summary to jane.doe@acme-corp.com."
    review = "Review this module for bugs:\n```python\n"
    return {
        "4KB clean prose": [system, user(question + passage(4096 - len(question)))],
        "4KB prose + email at end": [
            system,
            user(question + passage(4096 - len(question) - len(email)) + email),
        ],
        "64KB code file (synthetic)": [
            system,
            user(review + code_file(65536 - len(review)) + "```"),
        ],
        "64KB code file (argparse.py)": [
            system,
            user(review + inspect.getsource(argparse)[: 65536 - len(review)] + "```"),
        ],
    }


def adversarial() -> dict[str, str]:
    return {
        "'a' * 1_000_000": "a" * 1_000_000,
        "'1 ' * 500_000": "1 " * 500_000,
        "'@' * 100_000": "@" * 100_000,
        "'4111 ' * 200_000": "4111 " * 200_000,
        "'+1 ' * 333_333": "+1 " * 333_333,
        "'sk-' * 333_333": "sk-" * 333_333,
    }


def user(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def main() -> None:
    parser = argparse.ArgumentParser(description="sensitive-data detector latency benchmark")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    detector = Detector()
    print(f"build Detector: {(time.perf_counter() - started) * 1000:.2f}ms")
    for name, messages in requests().items():

        def call(messages: list[dict[str, Any]] = messages) -> object:
            return detector.scan_messages(messages)

        found = [finding.detector for finding in detector.scan_messages(messages)]
        print(report(name, time_calls(call, args.n), width=28), f"-> {found}")
    for name, text in adversarial().items():
        started = time.perf_counter()
        found = [finding.detector for finding in detector.scan_text(text)]
        elapsed = (time.perf_counter() - started) * 1000
        print(f"adversarial {name:<20} {elapsed:8.2f}ms -> {found}")


if __name__ == "__main__":
    main()
