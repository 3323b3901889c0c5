"""CPU µs of a streamed answer's relay in-process, no sockets: the upstream's bytes through the
SSE decoder, the batch, the relay (relay.convert), and the client frames (api.sse.frames), for
the bench's 20-chunk stream from the fake upstream, in one read (the unpaced bench cell) and one
chunk per read (the paced cell). The part of a stream's CPU that the relay owns.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/stream_relay_cpu.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.helpers

from tests.helpers import config_from, deployment  # noqa: E402
from timing import report, time_calls  # noqa: E402

from triage.api.sse import frames  # noqa: E402
from triage.engine.base import Batch, Relayed  # noqa: E402
from triage.engine.sse import SSEDecoder, plain_chunks  # noqa: E402
from triage.normalize import StreamNormalizer  # noqa: E402
from triage.relay import Tally, convert  # noqa: E402
from triage.wire import loads  # noqa: E402

DEPLOYMENT = config_from(
    {"model_list": [deployment("g", "hosted_vllm/fake-model", "http://127.0.0.1:9/v1")]}
).model_list[0]
HEAD = b'{"id":"chatcmpl-fake1","object":"chat.completion.chunk","created":1796311303,'
HEAD += b'"model":"fake-model","system_fingerprint":"fp_fake","choices":[{"index":0,"delta":'
TAIL = b',"logprobs":null,"finish_reason":null}],"usage":null}'
WORDS = [b"reply", b"from", b"fake-model:", b"Is", b"this", b"review", b"positive", b"or"]


def upstream_bytes(chunks: int = 20) -> bytes:
    """What the fake upstream sends for a 20-token stream with usage asked for."""
    events = [HEAD + b'{"role":"assistant","content":""}' + TAIL]
    for i in range(chunks - 1):
        events.append(HEAD + b'{"content":" ' + WORDS[i % len(WORDS)] + b'"}' + TAIL)
    last = HEAD.replace(b'"delta":', b'"delta":{}') + b',"logprobs":null,"finish_reason":"stop"}],'
    events.append(last + b'"usage":null}')
    usage = b'{"id":"chatcmpl-fake1","object":"chat.completion.chunk","created":1796311303,'
    usage += b'"model":"fake-model","choices":[],"usage":{"prompt_tokens":19,'
    usage += b'"completion_tokens":20,"total_tokens":39}}'
    events.append(usage)
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def decode(data: bytes) -> dict[str, object]:
    return loads(data)  # type: ignore[no-any-return]


def batches(reads: list[bytes]) -> list[Batch]:
    decoder, out = SSEDecoder(), []
    for read in reads:
        events = decoder.feed(read)
        plain = plain_chunks(events)
        assert plain is not None
        out.append(Batch([None] * len(plain), plain, last=len(plain) < len(events), decode=decode))
    return out


async def relayed(reads: list[bytes], keep_usage: bool) -> AsyncIterator[Relayed]:
    normalizer, tally = StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage), Tally()
    for batch in batches(reads):
        out, failure = convert(normalizer, batch, tally)
        assert failure is None
        out.last = batch.last
        yield out


def one_stream(reads: list[bytes], keep_usage: bool) -> int:
    async def run() -> int:
        return sum([len(frame) async for frame in frames(relayed(reads, keep_usage))])

    coroutine = run()
    try:
        coroutine.send(None)
    except StopIteration as done:
        return int(done.value)
    raise AssertionError("the relay awaited something real")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    whole = upstream_bytes()
    split = [event + b"\n\n" for event in whole.split(b"\n\n") if event]
    split[-2:] = [split[-2] + split[-1]]  # [DONE] comes with the last chunk
    for name, reads in (("one read", [whole]), ("a read per chunk", split)):
        for keep in (False, True):
            call = functools.partial(one_stream, reads, keep)
            timings = time_calls(call, args.calls, time.thread_time_ns)
            print(report(f"{name}, usage {'kept' if keep else 'cut'}", timings, 28))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
