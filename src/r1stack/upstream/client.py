"""One request to one replica: POST a streaming OpenAI request and yield its SSE chunks, sorting every way it
can go wrong into a replica failure (try another) or a rejection of the request itself (tell the client)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx


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
    http: httpx.AsyncClient, url: str, body: dict, headers: dict[str, str]
) -> AsyncIterator[dict]:
    """The JSON chunks of one streamed response, up to `data: [DONE]`."""
    try:
        async with http.stream("POST", url, json=body, headers=headers) as r:
            if r.status_code != 200:
                message = _error_message(await r.aread())
                if r.status_code in (401, 403):
                    # Our key, not the client's, was refused: a misconfigured gateway or replica.
                    raise UpstreamFailed(
                        f"refused the gateway's upstream key (HTTP {r.status_code}: {message})"
                    )
                # 408 and 429 say "not now", 404 "no such model here" (a misconfigured replica), not "wrong
                # request": another replica may take it.
                if 400 <= r.status_code < 500 and r.status_code not in (404, 408, 429):
                    raise UpstreamRejected(r.status_code, message)
                raise UpstreamFailed(f"answered HTTP {r.status_code}: {message}")
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise UpstreamFailed(f"sent malformed JSON in its stream: {data[:120]!r}") from None
                if not isinstance(chunk, dict):
                    raise UpstreamFailed(f"sent a stream chunk that is not an object: {data[:120]!r}")
                if "error" in chunk:
                    raise UpstreamFailed(f"reported an error mid-stream: {_error_message(data.encode())}")
                yield chunk
            raise UpstreamFailed("closed the stream before data: [DONE] (cut mid-stream)")
    except httpx.ConnectError as e:
        raise UpstreamFailed(f"refused the connection ({e})") from None
    except httpx.TimeoutException as e:
        raise UpstreamFailed(f"timed out ({type(e).__name__})") from None
    except httpx.HTTPError as e:
        raise UpstreamFailed(f"broke the connection ({type(e).__name__}: {e})") from None


async def list_models(
    http: httpx.AsyncClient, base: str, headers: dict[str, str], timeout_s: float
) -> list[str]:
    """The model ids a replica serves (its health check); raises UpstreamFailed when it cannot say."""
    try:
        r = await http.get(base + "/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as e:
        raise UpstreamFailed(f"health check failed ({type(e).__name__})") from None
    if r.status_code != 200:
        raise UpstreamFailed(f"health check answered HTTP {r.status_code}")
    try:
        return [str(m["id"]) for m in r.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise UpstreamFailed("health check: /models is not an OpenAI model list") from None
