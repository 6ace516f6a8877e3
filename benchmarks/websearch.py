"""What the search proxy's hop costs: a search and a page fetch through `r1stack search-proxy` (gRPC, real
process) against the same request sent straight to the stand-in SearXNG / page server, all on loopback.

    .venv/bin/python benchmarks/websearch.py [--n 200]

Prints a table and writes benchmarks/results/websearch.json. Timings are ratios against the direct request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from r1stack.config import WebSearchSettings
from r1stack.websearch import WebSearchClient

PAGE = ("<html><head><title>Bench page</title></head><body><main>"
        + "<p>Paged attention keeps the KV cache in fixed-size blocks.</p>" * 200 + "</main></body></html>").encode()  # fmt: skip


class StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms to each

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path == "/search":
            q = parse_qs(parts.query).get("q", [""])[0]
            host = f"http://{self.headers['host']}"
            hits = [{"url": f"{host}/page/{n}", "title": f"{q} {n}", "content": "snippet " * 30, "engine": "bench"}
                    for n in range(10)]  # fmt: skip
            body, kind = json.dumps({"query": q, "results": hits}).encode(), "application/json"
        else:
            body, kind = PAGE, "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def timed(label: str, n: int, call, progress: Progress) -> list[float]:
    task = progress.add_task(label, total=n)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1000)
        progress.advance(task)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered), "p95_ms": ordered[int(0.95 * (len(ordered) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="requests per row")
    n = parser.parse_args().n

    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env["R1STACK_CONFIG"] = str(Path(tempfile.mkdtemp()) / "none.toml")
    command = [str(Path(sys.executable).with_name("r1stack")), "search-proxy", "serve", "--listen", "127.0.0.1:0",
               "--searxng-url", base, "--trust-cidr", "127.0.0.1/32", "--rate", "0", "--log-level", "WARNING"]  # fmt: skip
    proxy = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    address = re.search(r"listening on (\S+)", proxy.stdout.readline()).group(1)

    rows: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client() as direct, WebSearchClient(WebSearchSettings(proxy_address=address)) as client:
            client.search("warm up")
            with Progress(console=Console(stderr=True)) as progress:
                rows["search direct (httpx -> SearXNG stand-in)"] = summary(timed(
                    "search direct", n, lambda i: direct.get(f"{base}/search", params={"q": f"d{i}", "format": "json"}),
                    progress))  # fmt: skip
                rows["search via proxy, cache miss"] = summary(
                    timed("search via proxy", n, lambda i: client.search(f"miss {i}", top_k=10), progress)
                )
                rows["search via proxy, cache hit"] = summary(
                    timed("search cached", n, lambda i: client.search("same query", top_k=10), progress)
                )
                rows["page direct (httpx)"] = summary(
                    timed("page direct", n, lambda i: direct.get(f"{base}/p"), progress)
                )
                rows["page via proxy (Fetch, HTML -> text)"] = summary(
                    timed("page via proxy", n, lambda i: client.fetch(f"{base}/p"), progress)
                )
    finally:
        proxy.terminate()
        proxy.wait(10)
        server.shutdown()

    peers = {"search": rows["search direct (httpx -> SearXNG stand-in)"]["median_ms"],
             "page": rows["page direct (httpx)"]["median_ms"]}  # fmt: skip
    table = Table(title=f"search proxy overhead on loopback (n={n} per row)")
    for column in ("request", "median ms", "p95 ms", "median / direct"):
        table.add_column(column)
    for name, row in rows.items():
        peer = peers["page" if name.startswith("page") else "search"]
        row["ratio_to_direct"] = row["median_ms"] / peer
        table.add_row(
            name, f"{row['median_ms']:.2f}", f"{row['p95_ms']:.2f}", f"{row['ratio_to_direct']:.2f}x"
        )
    Console().print(table)
    result = {
        "benchmark": "websearch",
        "n": n,
        "conditions": f"loopback, stand-in SearXNG (10 hits) and a {len(PAGE)} B HTML page, proxy with --rate 0",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "rows": rows,
    }
    out = Path(__file__).parent / "results" / "websearch.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
