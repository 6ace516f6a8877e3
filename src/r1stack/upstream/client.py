"""One request to one replica: POST a streaming OpenAI request and yield its SSE chunks, sorting every way it
can go wrong into a replica failure (try another) or a rejection of the request itself (tell the client)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp


class UpstreamFailed(Exception):
    """The replica failed (refused, hung, 5xx, malformed or cut stream): count it against the replica."""


class UpstreamRejected(Exception):
    """The replica is fine but refused this request (4xx): the client hears it, no retry."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        err = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)
        return str(err)
    except ValueError:
        return raw[:300].decode(errors="replace").strip() or "(empty body)"


async def stream_chunks(
    http: aiohttp.ClientSession, url: str, body: dict, headers: dict[str, str]
) -> AsyncIterator[dict]:
    """The JSON chunks of one streamed response, up to `data: [DONE]`."""
    try:
        # Leaving this block before the body's end closes the connection: that is how a replica hears that the
        # client went away.
        async with http.post(url, json=body, headers=headers) as r:
            if r.status != 200:
                message = _error_message(await r.read())
                if r.status in (401, 403):
                    # Our key, not the client's, was refused: a misconfigured gateway or replica.
                    raise UpstreamFailed(f"refused the gateway's upstream key (HTTP {r.status}: {message})")
                # 408 and 429 say "not now", 404 "no such model here" (a misconfigured replica), not "wrong
                # request": another replica may take it.
                if 400 <= r.status < 500 and r.status not in (404, 408, 429):
                    raise UpstreamRejected(r.status, message)
                raise UpstreamFailed(f"answered HTTP {r.status}: {message}")
            pending = b""
            # Whatever arrived, split into lines here: a replica may put several events in one read, or one long
            # event (logprobs) across many.
            async for data in r.content.iter_any():
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        await _drain(r)
                        return
                    yield _chunk(payload)
            raise UpstreamFailed("closed the stream before data: [DONE] (cut mid-stream)")
    except (aiohttp.ClientConnectorError, ConnectionRefusedError) as e:
        raise UpstreamFailed(f"refused the connection ({e})") from None
    except TimeoutError as e:  # aiohttp's connect and read timeouts are TimeoutErrors
        raise UpstreamFailed(f"timed out ({type(e).__name__})") from None
    except aiohttp.ClientError as e:
        raise UpstreamFailed(f"broke the connection ({type(e).__name__}: {e})") from None


async def _drain(r: aiohttp.ClientResponse) -> None:
    """Read the body's end after [DONE] so the connection goes back to the pool (a response left unread is
    closed, and the next request would pay a new TCP handshake). Nothing should follow; wait briefly for it."""
    try:
        async with asyncio.timeout(1.0):
            while await r.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        pass  # then the connection is closed instead of reused, which is all that is lost


def _chunk(payload: bytes) -> dict:
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise UpstreamFailed(f"sent malformed JSON in its stream: {payload[:120]!r}") from None
    if not isinstance(chunk, dict):
        raise UpstreamFailed(f"sent a stream chunk that is not an object: {payload[:120]!r}")
    if "error" in chunk:
        raise UpstreamFailed(f"reported an error mid-stream: {_error_message(payload)}")
    return chunk


async def list_models(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str], timeout_s: float
) -> list[str]:
    """The model ids a replica serves (its health check); raises UpstreamFailed when it cannot say."""
    try:
        async with http.get(
            base + "/models", headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as r:
            status, raw = r.status, await r.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        raise UpstreamFailed(f"health check failed ({type(e).__name__})") from None
    if status != 200:
        raise UpstreamFailed(f"health check answered HTTP {status}")
    try:
        return [str(m["id"]) for m in json.loads(raw)["data"]]
    except (ValueError, KeyError, TypeError):
        raise UpstreamFailed("health check: /models is not an OpenAI model list") from None
