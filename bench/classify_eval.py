"""Accuracy figures for the task-type classifier on the shared measurement files.

Prints three evaluations: the shipped weights on dolly-dev and on vicuna-dev, and a model trained
from scratch on dolly-train (exercising `train()`) evaluated on dolly-dev. The shared files are
for measurement only; nothing here feeds them back into the shipped model.

    .venv/bin/python bench/classify_eval.py [--data /work/shared/data/task-eval] [--verbose]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from triage.classify import Classifier, EvalReport, evaluate, read_jsonl, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "task-eval"


def headline(name: str, report: EvalReport) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"{name:<34} n={report.n:<5} acc={report.accuracy:.3f} macroF1={report.macro_f1:.3f} "
        f"heavy_recall={fmt(report.heavy_recall)} light->heavy={fmt(report.light_to_heavy)} "
        f"p50={report.p50_us:.1f}us p99={report.p99_us:.1f}us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="classifier accuracy on the shared eval files")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--verbose", action="store_true", help="print full tables")
    args = parser.parse_args()
    shipped = Classifier.load()
    dolly_dev = read_jsonl(args.data / "dolly-dev.jsonl")
    vicuna_dev = read_jsonl(args.data / "vicuna-dev.jsonl")
    results = [
        ("shipped weights / dolly-dev", evaluate(shipped, dolly_dev)),
        ("shipped weights / vicuna-dev", evaluate(shipped, vicuna_dev)),
    ]
    started = time.perf_counter()
    trained = train(read_jsonl(args.data / "dolly-train.jsonl"))
    seconds = time.perf_counter() - started
    results.append(("dolly-train -> dolly-dev", evaluate(trained, dolly_dev)))
    for name, report in results:
        print(headline(name, report))
        if args.verbose:
            print(report.render(), end="\n\n")
    print(f"(training on dolly-train took {seconds:.1f}s)")


if __name__ == "__main__":
    main()
