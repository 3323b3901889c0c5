"""Support for the bounds tests: `triage serve` as a real process (so its memory can be read
from /proc), and an upstream that answers far too much.

`HostileUpstream` is a raw asyncio HTTP/1.1 server on loopback. The model name in the request
picks what it sends, `<mode>-<bytes>`:
- `huge-N`: a 200 JSON answer of N bytes, chunked (no length declared);
- `declared-N`: the same with `content-length: N` declared up front;
- `line-N`: an SSE stream whose first line is N bytes long and never ends;
- `late-N`: three ordinary SSE chunks, then a line of N bytes;
- `lines-N`: an SSE event of N bytes in short `data:` lines (the event never ends);
- `valid-N`: a well-formed answer whose text is N bytes long;
- anything else: a small ordinary answer (or stream).
It counts the bytes it managed to send, so a test can tell a dropped connection from a drained
one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import free_port

PIECE = 64 * 1024
_MODE = re.compile(r"^(huge|declared|line|late|lines|valid)-(\d+)$")
# 64 KiB of short `data:` lines with no blank line between them: one endless event.
DATA_LINES = b"data: " + b"a" * 1017 + b"\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _ordinary(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-ok",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _delta(text: str) -> bytes:
    chunk = {
        "id": "chatcmpl-ok",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class HostileUpstream:
    """The hostile upstream, served from its own thread and loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sent: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> HostileUpstream:
        self._thread.start()
        assert self._ready.wait(10), "hostile upstream did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                body = json.loads(await reader.readexactly(int(length[1]) if length else 0))
                await self._answer(writer, str(body.get("model")), bool(body.get("stream")))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, model: str, stream: bool) -> None:
        match = _MODE.match(model)
        if match is None:
            await self._small(writer, model, stream, "hello")
            return
        mode, size = match[1], int(match[2])
        if mode == "valid":
            await self._small(writer, model, stream, "a" * size)
            return
        kind = b"text/event-stream" if mode in ("line", "late", "lines") else b"application/json"
        framing = (
            b"content-length: %d" % size if mode == "declared" else b"transfer-encoding: chunked"
        )
        self.sent[model] = 0  # before the first byte: the test may look as soon as it is out
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\n" + framing + b"\r\n\r\n")
        start = b'{"id":"x","choices":[{"message":{"content":"'
        if mode == "late":
            start = b"".join(_delta(f"part {i} ") for i in range(3)) + b"data: " + start
        elif mode == "line":
            start = b"data: " + start
        fill = DATA_LINES * (PIECE // len(DATA_LINES)) if mode == "lines" else b"a" * PIECE
        await self._pour(writer, model, start, size, fill, chunked=mode != "declared")

    async def _pour(
        self,
        writer: asyncio.StreamWriter,
        model: str,
        start: bytes,
        size: int,
        fill: bytes,
        *,
        chunked: bool,
    ) -> None:
        rest = max(0, size - len(start))
        pieces = [start] + [fill] * (rest // len(fill)) + [b"a" * (rest % len(fill))]
        for data in filter(None, pieces):
            writer.write(_chunk(data) if chunked else data)
            await writer.drain()  # raises once the gateway drops the connection
            self.sent[model] += len(data)
            if data is start:
                await asyncio.sleep(0.05)  # let the gateway relay what came before
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _small(
        self, writer: asyncio.StreamWriter, model: str, stream: bool, text: str
    ) -> None:
        if stream:
            body = _delta(text) + b"data: [DONE]\n\n"
            kind = b"text/event-stream"
        else:
            body = json.dumps(_ordinary(model, text)).encode()
            kind = b"application/json"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (kind, len(body), body)
        )
        await writer.drain()


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


@contextmanager
def triage_serve(tmp: Path, config: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """`triage serve` on a free loopback port; yields its URL and pid."""
    config = {**config, "triage": {"ledger": {"enabled": False}, **config.get("triage", {})}}
    config["server"] = {"log_level": "warning", **config.get("server", {})}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    command = [sys.executable, "-m", "triage.cli", "serve", "--config", str(path)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "triage serve did not start"
            time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)
