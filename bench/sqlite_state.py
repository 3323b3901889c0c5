"""Cost and multi-process scaling of the SQLite limit store (issue 16), for the working tree and
for any git revision of src/triage/state/sqlite.py:

    .venv/bin/python bench/sqlite_state.py [--rev a9be804~1 | --old FILE] [--procs 1 2 4]
        [--seconds 4] [--prefill 60000] [--concurrency 8] [--rounds 3] [--work-us 0]
        [--only old|new]

N worker processes open one file and each runs `concurrency` tasks that loop reserve -> (an
event-loop turn, standing in for the upstream call) -> settle on one key with limits big enough
never to refuse (rpm, tpm, daily and monthly budgets all set, so every limit is checked). Before
they start the window is pre-filled with `prefill` reservations spread over the last minute, as
at 1,000 req/s. Printed per configuration: reservations per second (all processes together),
the CPU (user + sys of the workers) per reserve + settle, and the 99th percentile and the worst
time a reserve took (the slowest process's). Each figure is the median of `rounds` runs, old and
new alternating. `--work-us` burns that much CPU per request between reserve and settle (the rest
of a gateway request, ~900 us), so that N processes show whether the store limits their scaling;
with 0 they measure the store alone (its transactions are serial: N processes cannot beat one).
The default old revision is the layout before running totals (a9be804~1).

On the 16-core device machine (--old: that revision's file; --rounds 3 --seconds 3, 60k rows):
                    procs  reserve+settle/s  CPU us each  p99 ms
    --work-us 0     old 1/2/4        60 / 53 / 123     16672 / 21139 / 18332   23 / 76 / 5064
                    new 1/2/4   12733 / 12680 / 15131     75 / 84 / 92          0.6 / 9 / 22
    --work-us 800   old 1/2/4        50 / 59 / 106     19164 / 16154 / 15716   27 / 28 / 5662
                    new 1/2/4     1112 / 2197 / 4317      96 / 97 / 106         0.5 / 1.7 / 2.8
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULE = "src/triage/state/sqlite.py"
KEY = "tk-bench"
BIG = {"rpm": 10**9, "tpm": 10**12, "daily_usd": Decimal(10**6), "monthly_usd": Decimal(10**7)}


def _load(path: Path) -> ModuleType:
    sys.path.insert(0, str(ROOT / "src"))
    spec = importlib.util.spec_from_file_location("sqlite_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _ask() -> Any:
    from triage.state.limits import Ask

    return Ask(KEY, 4200, Decimal("0.0021"), **BIG)  # type: ignore[arg-type]


def _prefill(mod: ModuleType, db: Path, rows: int, start: float) -> None:
    """`rows` reservations over the minute before `start`, settled. The old schema (one row per
    request, counted on every reserve) is filled with SQL: through its API that takes minutes."""
    store = mod.SqliteLimits(db)
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "requests" in tables:
        at = [start - 59.0 + 59.0 * i / rows for i in range(rows)]
        store._db.executemany("INSERT INTO requests VALUES (?, ?)", [(KEY, t) for t in at])
        store._db.executemany(
            "INSERT INTO tokens VALUES (?, ?, ?, ?)",
            [(f"p{i}", KEY, t, 30) for i, t in enumerate(at)],
        )
    else:

        async def one(at: float) -> None:
            held = await store.reserve(ask, at)
            await store.settle(held, 30, Decimal("0.0003"), at)

        async def fill() -> None:  # 100 at a time: they share transactions
            for first in range(0, rows, 100):
                times = [start - 59.0 + 59.0 * i / rows for i in range(first, first + 100)]
                await asyncio.gather(*(one(at) for at in times[: rows - first]))

        ask = _ask()

        asyncio.run(fill())
    store.close()


async def _work(
    mod: ModuleType, db: Path, seconds: float, concurrency: int, work: float
) -> dict[str, float]:
    store, until = mod.SqliteLimits(db), time.time() + seconds
    ask, done, waits = _ask(), 0, []

    async def loop() -> None:
        nonlocal done
        while time.time() < until:
            began = time.perf_counter()
            held = await store.reserve(ask, time.time())
            waits.append(time.perf_counter() - began)
            assert not hasattr(held, "limit"), held
            await asyncio.sleep(0)
            spin = time.process_time() + work  # the rest of a request's work, on the CPU
            while time.process_time() < spin:
                pass
            await store.settle(held, 30, Decimal("0.0003"), time.time())
            done += 1

    cpu = time.process_time()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    cpu = time.process_time() - cpu
    store.close()
    waits.sort()
    p99, worst = (waits[int(len(waits) * 0.99)], waits[-1]) if waits else (seconds, seconds)
    return {"done": done, "cpu": cpu, "p99": p99, "worst": worst}


def _child(
    module: str, db: str, begin: float, seconds: float, concurrency: int, work: float
) -> None:
    mod = _load(Path(module))
    time.sleep(max(0.0, begin - time.time()))
    result = asyncio.run(_work(mod, Path(db), seconds, concurrency, work))
    print(json.dumps(result))


def _round(module: Path, procs: int, args: argparse.Namespace) -> tuple[float, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "state.db"
        begin = time.time() + 1.0
        _prefill(_load(module), db, args.prefill, begin)
        begin = time.time() + 0.5
        command = [sys.executable, __file__, "--child", str(module), str(db), str(begin)]
        command += [str(args.seconds), str(args.concurrency), str(args.work_us / 1e6)]
        children = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(procs)]
        results = [json.loads(c.communicate(timeout=args.seconds + 120)[0]) for c in children]
    done = sum(r["done"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    p99 = max(r["p99"] for r in results) * 1e3
    return (
        done / args.seconds,
        cpu / max(done, 1) * 1e6 - args.work_us,  # the store's part
        p99,
        max(r["worst"] for r in results) * 1e3,
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, module, db, begin, seconds, concurrency, work = sys.argv
        _child(module, db, float(begin), float(seconds), int(concurrency), float(work))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="a9be804~1", help="the revision to compare with")
    parser.add_argument("--old", help="the old module's file, instead of --rev")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--prefill", type=int, default=60_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-us", type=float, default=0.0, help="CPU burnt per request")
    parser.add_argument("--only", choices=["old", "new"])
    args = parser.parse_args()
    if args.old:  # where there is no git history (a copy of the tree on another machine)
        old_text = Path(args.old).read_bytes()
    else:
        old_text = subprocess.run(
            ["git", "show", f"{args.rev}:{MODULE}"], cwd=ROOT, check=True, capture_output=True
        ).stdout
    with tempfile.NamedTemporaryFile(suffix=".py") as old_file:
        old_file.write(old_text)
        old_file.flush()
        variants = {"old": Path(old_file.name), "new": ROOT / MODULE}
        if args.only:
            variants = {args.only: variants[args.only]}
        print(
            f"prefill {args.prefill} rows, {args.concurrency} tasks a process, {args.seconds} s, "
            f"{args.work_us:g} us of other work a request\n{'':18}{'procs':>5} "
            f"{'reserve+settle/s':>17} {'CPU us each':>12} {'p99 ms':>7} {'worst ms':>9}"
        )
        for procs in args.procs:
            runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, path in variants.items():
                    runs[name].append(_round(path, procs, args))
            for name in variants:
                rate, cpu, p99, worst = (
                    statistics.median(x) for x in zip(*runs[name], strict=True)
                )
                label = (
                    f"old ({'--old' if args.old else args.rev})" if name == "old" else "new (tree)"
                )
                print(f"{label:18}{procs:>5} {rate:>17.0f} {cpu:>12.1f} {p99:>7.1f} {worst:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
