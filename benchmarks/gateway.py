"""The gateway's overhead: streaming chat clients talk to a stand-in upstream that streams tokens at a fixed rate,
once directly and once through `r1stack serve --upstream` (a real process, bare and with its default guard: PII
filter on the stream and the audit log). Reports TTFT and time per output token p50/p99 both ways, the added
TTFT and TPOT (gateway minus direct), and errors, in two modes:

- burst: N requests (N = 1, 64, 256) start at the same instant. Their TTFT includes queueing behind each other
  for the gateway's CPU (N requests' set-up work on one event loop), so it grows with N by design.
- steady: N streams in flight continuously (each client starts its next request when one ends; the first
  starts are staggered over one stream's length); TTFT is measured only on requests that start while N others
  are streaming, i.e. what one new request pays on a gateway already carrying N streams.

Writes benchmarks/results/gateway.json.

    .venv/bin/python benchmarks/gateway.py [--clients 1,64,256] [--steady 64] [--steady-s 10] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from common import print_table, write_results
from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def standin_app(tokens: int, interval_s: float):
    """An OpenAI chat endpoint that streams `tokens` one-word deltas, one every `interval_s`."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": "standin", "object": "model"}]})

    async def chat(request):
        await request.json()

        async def body():
            def chunk(delta, finish=None):
                c = {"index": 0, "delta": delta, "finish_reason": finish}
                return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                                              "model": "standin", "choices": [c]}) + "\n\n"  # fmt: skip

            yield chunk({"role": "assistant", "content": ""})
            for i in range(tokens):
                await asyncio.sleep(interval_s)
                yield chunk({"content": f" w{i}"})
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(
        routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    )


def wait_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url} exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"{url} did not come up:\n{log.read_text()[-2000:]}")


async def one(http: aiohttp.ClientSession, url: str, model: str) -> tuple[float, float, int]:
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "stream": True}
    t0 = time.perf_counter()
    first = last = None
    n = 0
    async with http.post(url, json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {(await r.read())[:200]!r}")
        async for line in r.content:  # one SSE line at a time
            if not line.startswith(b"data: {"):
                continue
            obj = json.loads(line[6:])
            if "error" in obj:
                raise RuntimeError(obj["error"]["message"])
            if obj["choices"] and obj["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                n += 1
    if first is None:
        raise RuntimeError("no content streamed")
    return first - t0, (last - first) / max(1, n - 1), n


def session() -> aiohttp.ClientSession:
    """The clients' HTTP: aiohttp, the lightest Python client we know, because on 2 cores the clients' own CPU
    competes with the gateway being measured (httpx's cost here was more than the gateway's)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    )


async def run(url: str, model: str, clients: int) -> dict:
    async with session() as client:
        results = await asyncio.gather(
            *(one(client, url, model) for _ in range(clients)), return_exceptions=True
        )
    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    ttft = sorted(r[0] for r in ok)
    tpot = sorted(r[1] for r in ok)
    return {
        "ttft_p50_ms": 1000 * pct(ttft, 50),
        "ttft_p99_ms": 1000 * pct(ttft, 99),
        "tpot_p50_ms": 1000 * pct(tpot, 50),
        "tpot_p99_ms": 1000 * pct(tpot, 99),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def run_steady(url: str, model: str, streams: int, seconds: float, stream_s: float) -> dict:
    """`streams` clients each streaming back to back for `seconds`; stats of requests started in steady state."""
    t_start = time.perf_counter()
    warm = t_start + stream_s * 2  # every client has started, and finished one stream, by then
    end = t_start + seconds
    stats: list[tuple[float, float, int]] = []
    errors: list[str] = []

    async def client(i: int, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i * stream_s / streams)  # staggered: starts spread evenly over one stream
        while time.perf_counter() < end:
            started = time.perf_counter()
            try:
                r = await one(http, url, model)
            except Exception as e:  # noqa: BLE001 - counted and reported, never hidden
                errors.append(repr(e))
                continue
            if started >= warm:
                stats.append(r)

    async with session() as http:
        await asyncio.gather(*(client(i, http) for i in range(streams)))
    ttft = sorted(r[0] for r in stats)
    tpot = sorted(r[1] for r in stats)
    return {
        "measured_requests": len(stats),
        "ttft_p50_ms": 1000 * pct(ttft, 50),
        "ttft_p99_ms": 1000 * pct(ttft, 99),
        "tpot_p50_ms": 1000 * pct(tpot, 50),
        "tpot_p99_ms": 1000 * pct(tpot, 99),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="1,64,256")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--steady", default="64", help="streams held in flight in steady mode ('' to skip)")
    ap.add_argument("--steady-s", type=float, default=10.0, help="seconds each steady run lasts")
    ap.add_argument("--standin", type=int, help=argparse.SUPPRESS)  # internal: run the stand-in on this port
    args = ap.parse_args()
    if args.standin:
        import uvicorn

        app = standin_app(args.tokens, args.interval_ms / 1000)
        uvicorn.run(app, host="127.0.0.1", port=args.standin, log_level="warning", backlog=4096)
        return

    tmp = Path(tempfile.mkdtemp(prefix="r1stack-gw-bench-"))
    up_port = free_port()
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env.update(R1STACK_DATA_DIR=str(tmp / "data"), R1STACK_CONFIG=str(tmp / "none.toml"), OMP_NUM_THREADS="1")
    procs = []
    try:
        log_up = tmp / "standin.log"
        cmd = [sys.executable, __file__, "--standin", str(up_port), "--tokens", str(args.tokens),
               "--interval-ms", str(args.interval_ms)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=open(log_up, "wb"), stderr=subprocess.STDOUT, env=env))
        up = f"http://127.0.0.1:{up_port}/v1"
        wait_up(up + "/models", procs[-1], log_up)
        levels = [int(x) for x in args.clients.split(",") if x]
        steady = [int(x) for x in args.steady.split(",") if x]
        stream_s = args.tokens * args.interval_ms / 1000
        keys = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms")
        # bare: the gateway alone; guarded: its defaults (the streaming PII filter holds back text that may be
        # the start of an identifier, and every answer is appended to the audit log).
        variants = {
            "bare": {"R1STACK_GUARD__PII_POLICY": "allow", "R1STACK_GUARD__AUDIT": "false"},
            "guarded": {},
        }
        rows, out = [], []
        with Progress() as progress:
            task = progress.add_task(
                "gateway overhead", total=2 * (len(levels) + len(steady)) * len(variants)
            )
            for variant, extra in variants.items():
                gw_port = free_port()
                log_gw = tmp / f"gateway-{variant}.log"
                cmd = [sys.executable, "-c", "from r1stack.cli.main import main; main()", "serve", "--upstream",
                       up, "--served-model-name", "bench", "--port", str(gw_port), "--max-waiting", "1024"]  # fmt: skip
                gw_proc = subprocess.Popen(
                    cmd, stdout=open(log_gw, "wb"), stderr=subprocess.STDOUT, env={**env, **extra}
                )
                procs.append(gw_proc)
                gw = f"http://127.0.0.1:{gw_port}"
                wait_up(gw + "/health", gw_proc, log_gw)
                # One request each way first: connection set-up and first-call costs are not what we measure.
                asyncio.run(run(up + "/chat/completions", "standin", 1))
                asyncio.run(run(gw + "/v1/chat/completions", "bench", 1))
                for n in levels:
                    direct = asyncio.run(run(up + "/chat/completions", "standin", n))
                    progress.advance(task)
                    via = asyncio.run(run(gw + "/v1/chat/completions", "bench", n))
                    progress.advance(task)
                    added = {k: via[k] - direct[k] for k in keys}
                    out.append(
                        {
                            "mode": "burst",
                            "gateway": variant,
                            "clients": n,
                            "direct": direct,
                            "via_gateway": via,
                            "added": added,
                        }
                    )
                    rows.append(["burst", variant, n, direct["ttft_p50_ms"], via["ttft_p50_ms"], added["ttft_p50_ms"],
                                 added["ttft_p99_ms"], direct["tpot_p50_ms"], via["tpot_p50_ms"],
                                 added["tpot_p50_ms"], added["tpot_p99_ms"], direct["errors"] + via["errors"]])  # fmt: skip
                for n in steady:
                    direct = asyncio.run(
                        run_steady(up + "/chat/completions", "standin", n, args.steady_s, stream_s)
                    )
                    progress.advance(task)
                    via = asyncio.run(
                        run_steady(gw + "/v1/chat/completions", "bench", n, args.steady_s, stream_s)
                    )
                    progress.advance(task)
                    added = {k: via[k] - direct[k] for k in keys}
                    out.append({"mode": "steady", "gateway": variant, "clients": n, "direct": direct,
                                "via_gateway": via, "added": added})  # fmt: skip
                    rows.append(["steady", variant, n, direct["ttft_p50_ms"], via["ttft_p50_ms"], added["ttft_p50_ms"],
                                 added["ttft_p99_ms"], direct["tpot_p50_ms"], via["tpot_p50_ms"],
                                 added["tpot_p50_ms"], added["tpot_p99_ms"], direct["errors"] + via["errors"]])  # fmt: skip
                gw_proc.terminate()
                gw_proc.wait(timeout=20)
        print_table(
            f"Gateway overhead ({args.tokens} tokens per stream, one every {args.interval_ms:g} ms), ms",
            [
                "mode",
                "gateway",
                "streams",
                "TTFT direct p50",
                "TTFT gw p50",
                "+TTFT p50",
                "+TTFT p99",
                "TPOT direct p50",
                "TPOT gw p50",
                "+TPOT p50",
                "+TPOT p99",
                "errors",
            ],  # fmt: skip
            rows,
        )
        path = write_results(
            "gateway",
            {
                "tokens_per_stream": args.tokens,
                "interval_ms": args.interval_ms,
                "load_avg_1m_at_start": load,
                "load_avg_1m_at_end": os.getloadavg()[0],
                "steady_seconds": args.steady_s,
                "results": out,
            },  # fmt: skip
        )
        print(f"wrote {path}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=20)


if __name__ == "__main__":
    main()
