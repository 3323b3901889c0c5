"""A fake LLM upstream on a real loopback HTTP server, standing in for OpenAI-compatible servers,
Ollama and Anthropic in tests, the demo and benchmarks.

Deterministic replies, recorded requests, request counters, pacing (latency, time to first
token, tokens per second) and injected faults (status codes, hangs, cut streams, resets, chaos).
"""

from triage.fakeupstream.cli import main
from triage.fakeupstream.running import FakeUpstreamThread, RunningFake, start_fake
from triage.fakeupstream.server import FakeUpstream
from triage.fakeupstream.settings import DEFAULT_MODELS, Chaos, FakeSettings, Fault
from triage.fakeupstream.state import FakeStats, RecordedRequest

__all__ = [
    "DEFAULT_MODELS",
    "Chaos",
    "FakeSettings",
    "FakeStats",
    "FakeUpstream",
    "FakeUpstreamThread",
    "Fault",
    "RecordedRequest",
    "RunningFake",
    "main",
    "start_fake",
]
