"""The engine seam: what a lane (transport) must do, and what the runner hands back.

A *transport* sends one call to one deployment and maps its failures onto `triage.errors`.
The *runner* (`engine.runner.Engine`) owns everything above a single call: choosing deployments,
retries, cooldowns, fallbacks, deadlines. Lanes therefore share one set of reliability semantics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from triage.config.schema import Deployment

CallKind = Literal["chat", "completion", "embedding"]
Chunk = dict[str, Any]


class Batch:
    """The chunks one upstream read delivered: relayed together, as one write to the client.

    `raw`, when the lane has it, holds each chunk's JSON exactly as the upstream sent it, so a
    chunk that is already in the shape the spec wants can be relayed without re-encoding. A
    lane that gives `raw` may leave chunks undecoded (None) with a `decode` for them: a chunk
    whose bytes show it needs no look inside is then never decoded at all. `chunk(i)` decodes
    on demand and raises what the lane's decoder raises (a malformed chunk, an in-band error).
    `last` says the upstream ended the stream in the same read, so nothing follows.
    """

    __slots__ = ("_chunks", "_decode", "last", "native", "raw")

    def __init__(
        self,
        chunks: list[Chunk | None],
        raw: list[bytes] | None = None,
        *,
        last: bool = False,
        decode: Callable[[bytes], Chunk] | None = None,
        native: list[bytes] | None = None,
    ) -> None:
        self._chunks = chunks
        self.raw = raw
        self.last = last
        self._decode = decode
        # A native lane's frames, exactly as the client's wire format wants them: relayed
        # instead of the chunks, which then serve only for accounting.
        self.native = native

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self) -> Iterator[Chunk]:
        return (self.chunk(index) for index in range(len(self._chunks)))

    def chunk(self, index: int) -> Chunk:
        chunk = self._chunks[index]
        if chunk is None:
            assert self._decode is not None and self.raw is not None  # undecoded needs both
            chunk = self._chunks[index] = self._decode(self.raw[index])
        return chunk

    def decode_all(self) -> None:
        """Decode every chunk now, so that what a decoder raises is raised here."""
        for index in range(len(self._chunks)):
            self.chunk(index)


@dataclass(frozen=True)
class Native:
    """The client's own body in a wire format some deployments speak natively, for a lane that
    sends it as it is where the chat form would lose features (Anthropic's prompt caching and
    thinking signatures); `headers` are that format's allow-listed request headers."""

    format: Literal["anthropic"]
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One request as it will be sent upstream (allow-listed fields only, no `model`)."""

    kind: CallKind
    body: dict[str, Any]
    stream: bool = False
    prompt_chars: int = 0
    native: Native | None = None


@dataclass(frozen=True)
class Timeouts:
    connect: float
    first_token: float | None
    total: float


@dataclass
class Reply:
    """A whole (non-stream) upstream answer, already in OpenAI shape; `native`, from a lane
    that sent the call natively, is the answer in the client's own wire format."""

    body: dict[str, Any]
    compute_seconds: float | None = None
    native: dict[str, Any] | None = None


class Relayed(list[Chunk | bytes]):
    """A batch on its way to the client: chunks to encode, or JSON bytes to send as they are.
    `last`: the stream ends with it (and it is accounted for), so `[DONE]` can share its write.
    """

    __slots__ = ("last",)

    def __init__(self, items: Iterable[Chunk | bytes] = (), *, last: bool = False) -> None:
        super().__init__(items)
        self.last = last


class UpstreamStream(Protocol):
    """A started upstream stream of OpenAI chunk dicts, in non-empty batches; `aclose`
    releases the connection."""

    def __aiter__(self) -> AsyncIterator[Batch]: ...
    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def send(self, deployment: Deployment, call: Call, timeouts: Timeouts) -> Reply: ...
    async def open_stream(
        self, deployment: Deployment, call: Call, timeouts: Timeouts
    ) -> UpstreamStream: ...
    async def probe(self, deployment: Deployment, timeout: float) -> bool: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class AttemptRecord:
    group: str
    deployment: str
    ok: bool
    error: str = ""
    status: int = 200
    kind: str = ""
    seconds: float = 0.0


def fallbacks_of(attempts: Iterable[AttemptRecord]) -> int:
    """How many times the attempts moved on to another model group."""
    groups: list[str] = []
    for attempt in attempts:
        if not groups or groups[-1] != attempt.group:
            groups.append(attempt.group)
    return max(0, len(groups) - 1)


@dataclass
class Outcome:
    """Where a request ended up and how it got there."""

    group: str
    deployment: Deployment
    attempts: list[AttemptRecord] = field(default_factory=list)
    upstream_seconds: float = 0.0
    ttft: float | None = None

    @property
    def fallbacks(self) -> int:
        return fallbacks_of(self.attempts)

    @property
    def retries(self) -> int:
        return len(self.attempts) - 1 - self.fallbacks
