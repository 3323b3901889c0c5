"""The upstream connection pools' settings and the lanes' loop-bound aiohttp session (the
native lane for `https://` deployments, the Anthropic lane); plain `http://` ones use the
lean client of http1.py with the same limits."""

from __future__ import annotations

import asyncio

import aiohttp

POOL_LIMIT = 1000  # beyond this, calls queue for a connection instead of exhausting sockets
# Below the 5 s keep-alive of uvicorn (vLLM, llama-cpp-python): we drop an idle connection
# before the server does, because a POST sent on one it is closing fails and is not replayed.
KEEPALIVE_SECONDS = 4.0
DNS_CACHE_SECONDS = 300


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=POOL_LIMIT,
        limit_per_host=0,
        ttl_dns_cache=DNS_CACHE_SECONDS,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # upstream cookies must never leak across clients
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,  # no process env below cli.py
    )


class LoopSession:
    """A pooled aiohttp session, made in the loop that first uses it. A session is bound to
    its loop: a lane reused from another loop (one test after another) gets a fresh one rather
    than a pool it cannot drive, and one left on a finished loop has no live connections to
    close."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session, self._loop = _new_session(), loop
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
