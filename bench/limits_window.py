"""Per-request cost of MemoryLimits.reserve + settle with a full 60 s window (issue 16), for the
working tree and for any git revision of src/triage/state/limits.py:

    .venv/bin/python bench/limits_window.py [--rev d16ad86~1] [--rates 100 1000]

The window holds one minute of traffic at each rate (a key with rpm, tpm and budgets), then
2,000 more reservations are timed. Before d16ad86 every reservation summed the whole window.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
MODULE = "src/triage/state/limits.py"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def _per_request_us(mod: ModuleType, rate: int, timed: int = 2000) -> float:
    store, now = mod.MemoryLimits(), 1_800_000_000.0
    budget = {"daily_usd": Decimal(10**6), "monthly_usd": Decimal(10**7)}
    ask = mod.Ask("k", 4200, Decimal("0.04"), rpm=10**9, tpm=10**12, **budget)
    for i in range(rate * 60 + timed):
        if i == rate * 60:
            started = time.perf_counter()
        at = now + i / rate
        held = await store.reserve(ask, at)
        await store.settle(held, 30, Decimal(0), at)
    return (time.perf_counter() - started) / timed * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="d16ad86~1", help="the revision to compare with")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    old_text = subprocess.run(
        ["git", "show", f"{args.rev}:{MODULE}"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tempfile.NamedTemporaryFile(suffix=".py") as old_file:
        old_file.write(old_text)
        old_file.flush()
        old, new = _load(Path(old_file.name), "limits_old"), _load(ROOT / MODULE, "limits_new")
        for rate in args.rates:
            before = asyncio.run(_per_request_us(old, rate))
            after = asyncio.run(_per_request_us(new, rate))
            print(
                f"{rate:>6} req/s: reserve + settle {before:9.1f} us at {args.rev}, "
                f"{after:7.1f} us now"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
