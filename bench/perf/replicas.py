"""N `triage serve` replicas as children of one process, each on its port with its config (its
own ledger file: the bench box has no PostgreSQL; the limits, budgets and breaker state are the
shared store's), as a load balancer's pool would be: the bench reads their CPU and memory as
one server's (descendants) and stops them together (SIGTERM is passed on). Issue 15's
"4 replicas on one store" row.

    python bench/perf/replicas.py PORT:CONFIG[,PORT:CONFIG...] -- triage serve
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    pairs, argv = [item.split(":", 1) for item in args[0].split(",")], args[2:]
    children = [
        subprocess.Popen([*argv, "--config", config, "--port", port]) for port, config in pairs
    ]

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [child.wait() for child in children]
    return max(codes, default=0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
