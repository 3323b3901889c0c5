"""Command line entry point: `python -m triage.fakeupstream` (and `triage fake-upstream`).

Serves until SIGINT/SIGTERM. The "listening on" line is flushed as soon as the socket is bound
so scripts and benchmarks can wait for it instead of polling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from triage.fakeupstream.running import start_fake
from triage.fakeupstream.settings import FakeSettings

# (flag, FakeSettings field, type, help)
_TUNING: tuple[tuple[str, str, type, str], ...] = (
    ("--latency-ms", "latency_ms", float, "delay before the response headers"),
    ("--ttft-ms", "ttft_ms", float, "delay before the first stream chunk"),
    ("--tokens-per-second", "tokens_per_second", float, "stream pacing; 0 = unpaced"),
    ("--completion-tokens", "completion_tokens", int, "default reply length in words"),
    ("--chunk-tokens", "chunk_tokens", int, "tokens per stream chunk"),
    ("--embedding-dimensions", "embedding_dimensions", int, "default embedding size"),
    ("--max-recorded", "max_recorded", int, "recorded requests kept in memory"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage fake-upstream",
        description="Fake OpenAI/Ollama/Anthropic upstream for tests, demos and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    for flag, dest, kind, text in _TUNING:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    parser.add_argument("--models", help="comma-separated model names for /v1/models")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="JSON", help="queue a fault (repeatable)"
    )
    parser.add_argument("--chaos", metavar="JSON", help='e.g. {"seed": 1, "status_500": 0.1}')
    parser.add_argument("--no-record", action="store_true", help="do not record requests")
    parser.add_argument(
        "--no-usage-in-stream", action="store_true", help="ignore stream_options.include_usage"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    return parser


def settings_from_args(args: argparse.Namespace) -> FakeSettings:
    values: dict[str, Any] = {
        dest: getattr(args, dest) for _, dest, _, _ in _TUNING if getattr(args, dest) is not None
    }
    if args.models:
        values["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        values["faults"] = [json.loads(f) for f in args.fault]
        if args.chaos:
            values["chaos"] = json.loads(args.chaos)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    values["record_requests"] = not args.no_record
    values["count_usage_in_stream"] = not args.no_usage_in_stream
    return FakeSettings(**values)


async def serve(host: str, port: int, settings: FakeSettings) -> None:
    running = await start_fake(host, port, settings)
    sys.stdout.write(f"fake upstream listening on {running.url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await running.stop()


def _loop_factory(allow_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not allow_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    with asyncio.Runner(loop_factory=_loop_factory(not args.no_uvloop)) as runner:
        try:
            runner.run(serve(args.host, args.port, settings))
        except OSError as exc:  # typically the port is taken
            sys.stderr.write(f"fake upstream: cannot listen on {args.host}:{args.port}: {exc}\n")
            return 1
    return 0
