"""Profile Triage (c) under load with py-spy: shares of CPU by file:function and by package.

Needs py-spy, which is not a project dependency: `.venv/bin/pip install py-spy`. Then
`.venv/bin/python bench/profile_triage.py [--stream] [--concurrency 16] [--seconds 10]`;
`--target litellm` profiles (d) instead, `--target passthrough` profiles (b).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf.hotspots import main  # noqa: E402 - needs bench/ on sys.path first

if __name__ == "__main__":
    raise SystemExit(main())
