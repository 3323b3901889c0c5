"""`make bench` (bench/run.py): Triage's speed against baselines, in one invocation.

Side by side and interleaved, on the project's fake upstream: (a) the fake directly, (b) a bare
FastAPI pass-through (bench/passthrough.py), (c) Triage with every feature on over the native
lane (and with `--workers 2`), (d) Triage on the litellm lane, (e) LiteLLM's own proxy when
BENCH_LITELLM=1. BENCH_QUICK=1 is a one-minute smoke. See bench/perf/settings.py for the knobs;
results go to bench/results/latest.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf.main import main  # noqa: E402 - needs bench/ on sys.path first

if __name__ == "__main__":
    raise SystemExit(main())
