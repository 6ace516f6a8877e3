"""HTTP serving vs the offline engine: N concurrent streaming clients (N = 1, 8, 32, 64) against a real
`r1stack serve` process, and the same requests through the offline `LLM` in the same run, right after each
other for each N (the idle server sleeps while the offline engine runs). Each client sends `--rounds` requests
back to back: random token-id prompts of `--prompt-tokens`, exactly `--output-tokens` generated (greedy, EOS
ignored), over /v1/completions with stream=true. Reports output tokens/s, TTFT p50/p99 and time per output token
p50/p99 (client side), and the HTTP / offline throughput ratio. Both sides run the engine with the same CPU
thread count (the server's rule: all cores but one); with `--repeats R` each N is run R times (HTTP and offline
alternating) and the run with the median throughput is reported for each side. Writes
benchmarks/results/serving.json. With --poisson RATES it instead sends requests arriving as a Poisson process at
each rate (latency under load) and writes benchmarks/results/latency.json.

    .venv/bin/python benchmarks/serving.py [--clients 1,8,32,64] [--rounds 2] [--repeats 1] [--dtype float32]
        [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import DATA_DIR, print_table, write_results  # noqa: E402
from rich.progress import Progress

MODEL = "smollm2-135m-instruct"


def workload(n_requests: int, prompt_tokens: int, seed: int) -> list[list[int]]:
    # Ids from the middle of the vocabulary (SmolLM2 has 49,152): ordinary word pieces, no special tokens.
    rng = random.Random(seed)
    return [[rng.randrange(1000, 30000) for _ in range(prompt_tokens)] for _ in range(n_requests)]


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


# ---- HTTP side ------------------------------------------------------------------------------------------------


def start_server(args) -> tuple[subprocess.Popen, str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="r1stack-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    # Its own data dir (audit log etc.) but the installed model; PII filter and audit stay on, as users run it.
    env.update(R1STACK_DATA_DIR=str(tmp), R1STACK_CONFIG=str(tmp / "none.toml"))
    from r1stack.engine.store import resolve

    model_path = resolve(MODEL, DATA_DIR).path
    cmd = [
        sys.executable,
        "-c",
        "from r1stack.cli.main import main; main()",
        "serve",
        "--model",
        str(model_path),
        "--served-model-name",
        MODEL,
        "--port",
        str(port),
        "--dtype",
        args.dtype,
        "--device",
        args.device,
        "--max-num-seqs",
        str(max(args.clients)),
        "--kv-cache-bytes",
        str(args.kv_cache_bytes),
        "--max-model-len",
        "1024",
    ]
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{(tmp / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, tmp
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start")


async def one_request(client: httpx.AsyncClient, url: str, prompt: list[int], out_tokens: int) -> dict:
    body = {
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": out_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk.get("choices") and chunk["choices"][0]["text"]:
                now = time.perf_counter()
                first = first or now
                last = now
    return {
        "ttft": (first or time.perf_counter()) - t0,
        "tokens": tokens,
        "tpot": (last - first) / (tokens - 1) if first and tokens > 1 else None,
    }


async def run_http(url: str, prompts: list[list[int]], n_clients: int, out_tokens: int) -> dict:
    per_client = [prompts[i::n_clients] for i in range(n_clients)]
    limits = httpx.Limits(max_connections=n_clients + 2)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:
        # warm-up: one short request so the first measured one pays no lazy initialisation
        await one_request(client, url, prompts[0][:8], 2)

        async def client_loop(mine: list[list[int]]) -> list[dict]:
            return [await one_request(client, url, p, out_tokens) for p in mine]

        t0 = time.perf_counter()
        results = await asyncio.gather(*(client_loop(m) for m in per_client))
        elapsed = time.perf_counter() - t0
    flat = [r for rs in results for r in rs]
    tokens = sum(r["tokens"] for r in flat)
    return {"seconds": elapsed, "output_tokens": tokens, **_latencies(flat, tokens, elapsed)}


async def run_poisson(url: str, prompts: list[list[int]], rate: float, out_tokens: int, seed: int) -> dict:
    """Requests arrive as a Poisson process of `rate` per second (exponential gaps), each on its own."""
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=len(prompts) + 2)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:
        await one_request(client, url, prompts[0][:8], 2)

        async def later(delay: float, prompt: list[int]) -> dict:
            await asyncio.sleep(delay)
            return await one_request(client, url, prompt, out_tokens)

        delays, t = [], 0.0
        for _ in prompts:
            delays.append(t)
            t += rng.expovariate(rate)
        t0 = time.perf_counter()
        flat = await asyncio.gather(*(later(d, p) for d, p in zip(delays, prompts, strict=True)))
        elapsed = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in flat)
    return {
        "rate_per_s": rate,
        "requests": len(prompts),
        "seconds": elapsed,
        **_latencies(flat, tokens, elapsed),
    }


def _latencies(flat: list[dict], tokens: int, elapsed: float) -> dict:
    """Throughput and TTFT / time-per-output-token percentiles of finished requests."""
    tpots = [r["tpot"] for r in flat if r["tpot"]]
    return {
        "tokens_per_s": tokens / elapsed,
        "ttft_p50": pct([r["ttft"] for r in flat], 0.5),
        "ttft_p99": pct([r["ttft"] for r in flat], 0.99),
        "tpot_p50": pct(tpots, 0.5),
        "tpot_p99": pct(tpots, 0.99),
    }


def poisson_main(args) -> None:
    rates = [float(r) for r in args.poisson.split(",")]
    proc, url, _ = start_server(args)
    runs = []
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("Poisson arrivals, per rate", total=len(rates))
            for i, rate in enumerate(rates):
                work = workload(args.poisson_requests, args.prompt_tokens, seed=100 + i)
                runs.append(asyncio.run(run_poisson(url, work, rate, args.output_tokens, seed=i)))
                bar.advance(task)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = [
        [r["rate_per_s"], r["tokens_per_s"], r["ttft_p50"] * 1e3, r["ttft_p99"] * 1e3, r["tpot_p50"] * 1e3,
         r["tpot_p99"] * 1e3]
        for r in runs
    ]  # fmt: skip
    print_table(
        f"latency under load: Poisson arrivals, {args.poisson_requests} requests per rate, {args.prompt_tokens}-token "
        f"prompts, {args.output_tokens} output tokens ({args.dtype}, {args.device}, HTTP streaming)",
        ["requests/s", "output tok/s", "TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms"],
        rows,
    )
    path = write_results("latency", {
        "workload": {"arrivals": "Poisson", "requests_per_rate": args.poisson_requests,
                     "prompt_tokens": args.prompt_tokens, "output_tokens": args.output_tokens,
                     "dtype": args.dtype, "device": args.device, "endpoint": "/v1/completions stream=true"},
        "results": runs,
    })  # fmt: skip
    print(f"wrote {path}")


# ---- offline side ---------------------------------------------------------------------------------------------


def run_offline(llm, prompts: list[list[int]], n_clients: int, out_tokens: int) -> dict:
    """The same requests, `n_clients` in flight at a time, as the HTTP clients keep them."""
    from r1stack import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=out_tokens, ignore_eos=True)
    llm.generate({"prompt_token_ids": prompts[0][:8]}, SamplingParams(max_tokens=2, ignore_eos=True))
    t0 = time.perf_counter()
    tokens = 0
    for i in range(0, len(prompts), n_clients):
        outs = llm.generate([{"prompt_token_ids": p} for p in prompts[i : i + n_clients]], params)
        tokens += sum(len(o.outputs[0].token_ids) for o in outs)
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "output_tokens": tokens, "tokens_per_s": tokens / elapsed}


def server_threads() -> int:
    """The CPU threads `r1stack serve` gives its engine (AsyncEngine: all cores but one); the offline engine
    gets the same, or the comparison would measure thread counts rather than HTTP serving."""
    return max(1, (os.cpu_count() or 2) - 1)


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (the lower middle one for an even count), its latencies with it."""
    ranked = sorted(runs, key=lambda r: r["tokens_per_s"])
    return {**ranked[(len(ranked) - 1) // 2], "runs_tokens_per_s": [r["tokens_per_s"] for r in runs]}


def in_worker_thread(fn, *args):
    """Run `fn` in a thread, as the server's engine runs. Measured on this 2-core box: the same LLM.generate is
    4-8x slower on the main thread than on a worker thread (reported to the engine owner), which would make the
    offline baseline look far worse than it is."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", fn(*args)))
    t.start()
    t.join()
    return box["r"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,8,32,64")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client")
    ap.add_argument("--repeats", type=int, default=1, help="runs per client count; the median is reported")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kv-cache-bytes", type=int, default=512 * 2**20)
    ap.add_argument("--poisson", default="", help="arrival rates per second, e.g. 0.5,1,2: the latency table")
    ap.add_argument("--poisson-requests", type=int, default=24, help="requests per Poisson rate")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    if args.poisson:
        args.clients = [args.poisson_requests]  # the server's max_num_seqs
        poisson_main(args)
        return

    from r1stack import LLM
    from r1stack.engine.store import resolve

    llm = LLM(
        str(resolve(MODEL, DATA_DIR).path),
        dtype=args.dtype,
        device=args.device,
        max_num_seqs=max(args.clients),
        kv_cache_bytes=args.kv_cache_bytes,
        max_model_len=1024,
        threads=server_threads(),
    )
    proc, url, _ = start_server(args)
    http, offline = {}, {}
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(
                "HTTP, then offline, per client count", total=len(args.clients) * args.repeats
            )
            for n in args.clients:
                # Back to back for each N, so both see the same machine (the idle server sleeps meanwhile).
                work = workload(n * args.rounds, args.prompt_tokens, seed=n)
                h_runs, o_runs = [], []
                for _ in range(args.repeats):
                    h_runs.append(asyncio.run(run_http(url, work, n, args.output_tokens)))
                    o_runs.append(in_worker_thread(run_offline, llm, work, n, args.output_tokens))
                    bar.advance(task)
                http[n], offline[n] = median_run(h_runs), median_run(o_runs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    rows, out = [], []
    for n in args.clients:
        h, o = http[n], offline[n]
        ratio = h["tokens_per_s"] / o["tokens_per_s"]
        rows.append(
            [
                n,
                h["tokens_per_s"],
                o["tokens_per_s"],
                ratio,
                h["ttft_p50"] * 1e3,
                h["ttft_p99"] * 1e3,
                h["tpot_p50"] * 1e3,
                h["tpot_p99"] * 1e3,
            ]
        )
        out.append({"clients": n, "http": h, "offline": o, "http_over_offline": ratio})
    print_table(
        f"serving: {args.prompt_tokens}-token prompts, {args.output_tokens} output tokens, {args.rounds} "
        f"requests per client, median of {args.repeats} ({args.dtype}, {args.device}, "
        f"{server_threads()} engine threads on both sides)",
        [
            "clients",
            "HTTP tok/s",
            "offline tok/s",
            "HTTP/offline",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "TPOT p50 ms",
            "TPOT p99 ms",
        ],
        rows,
    )
    at32 = next((r for r in out if r["clients"] == 32), None)
    if at32:
        verdict = "meets" if at32["http_over_offline"] >= 0.9 else "misses"
        print(f"bar (HTTP >= 90% of offline at 32 clients): {verdict} ({at32['http_over_offline']:.1%})")
    path = write_results("serving", {
        "workload": {"prompt_tokens": args.prompt_tokens, "output_tokens": args.output_tokens,
                     "rounds_per_client": args.rounds, "dtype": args.dtype, "device": args.device,
                     "endpoint": "/v1/completions stream=true", "median_of": args.repeats,
                     "engine_threads": server_threads()},
        "statistics_note": "TTFT/TPOT measured at the client; pNN over all requests of the run",
        "results": out,
    })  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
