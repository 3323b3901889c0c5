"""Micro-benchmark of the per-request bookkeeping (issue 16): worst case, reserve + settle on
the in-memory limits, and the meter-and-record step with its ledger commit.

    LITELLM_LOCAL_MODEL_COST_MAP=True PYTHONPATH=. .venv/bin/python bench/accounting_cpu.py

The app is built from the bench's own config (bench/perf/servers.py: a key with rpm, tpm and
budgets, savings, the SQLite ledger); each part runs N times in one event loop and reports the
median over rounds of CPU µs per call (time.process_time).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf.servers import triage_config  # noqa: E402

from triage.access.reserve import prompt_chars, worst_case  # noqa: E402
from triage.accounting import Record  # noqa: E402
from triage.api import create_app  # noqa: E402
from triage.config.schema import Config  # noqa: E402
from triage.engine.base import AttemptRecord, Outcome  # noqa: E402
from triage.metering import Usage  # noqa: E402
from triage.policy import RoutePlan  # noqa: E402
from triage.protocol import ChatCompletionRequest  # noqa: E402

N, ROUNDS = 2000, 7


def _median(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.2f} µs (rounds: {min(samples):.2f}..{max(samples):.2f})"


async def _main() -> None:
    work = Path(tempfile.mkdtemp())
    os.environ["TRIAGE_BENCH_KEY"] = "tk-bench-0123456789"
    data = triage_config("http://127.0.0.1:9", work / "ledger.db", "native")
    data["auth"]["keys"][0]["key"] = "tk-bench-0123456789"
    app = create_app(Config.model_validate(data))
    service = app.state.triage.runtime.service
    accountant, guard, engine = service.accountant, service.guard, service.engine
    key = guard.settings.keys[0]
    request = ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "Summarise this text " * 20}]}
    )
    plan = RoutePlan(("local-small", "cloud-large"), 30.0, None, 60.0, 3)
    reserve_output = service.config.auth.reserve_output_tokens
    deployment = engine.groups["local-small"][0]

    def cost_on(d, usage):  # type: ignore[no-untyped-def]
        return accountant.cost_on(d, usage, 0.0)

    results: dict[str, list[float]] = {"worst_case": [], "reserve+settle": [], "record": []}
    for _ in range(ROUNDS):
        t = time.process_time()
        for _ in range(N):
            worst_case(request, prompt_chars(request), plan, engine.groups, cost_on, reserve_output)
        results["worst_case"].append((time.process_time() - t) / N * 1e6)

        t = time.process_time()
        for _ in range(N):
            tokens, cost = worst_case(
                request, prompt_chars(request), plan, engine.groups, cost_on, reserve_output
            )
            held = await guard.reserve(guard.ask(key, tokens, cost))
            await guard.settle(held, 120, cost / 3)
        results["reserve+settle"].append((time.process_time() - t) / N * 1e6)

        t = time.process_time()
        for i in range(N):
            now = time.monotonic()
            outcome = Outcome(
                "local-small",
                deployment,
                [AttemptRecord("local-small", deployment.id, True, seconds=0.002)],
                upstream_seconds=0.002,
            )
            record = Record(
                "chat",
                f"req-{i}",
                "summarization",
                "simple",
                "local-small",
                200,
                now - 0.003,
                now,
                outcome=outcome,
                usage=Usage(100, 20, "upstream"),
                key_id="bench",
            )
            future = accountant.record(record)
            if future is not None:
                await future
        results["record"].append((time.process_time() - t) / N * 1e6)
    for name, samples in results.items():
        print(f"{name:16s} {_median(samples)}")
    print("(reserve+settle includes worst_case; record includes one commit per row)")


if __name__ == "__main__":
    asyncio.run(_main())
