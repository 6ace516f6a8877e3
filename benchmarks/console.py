"""The web console in Debian's chromium against a real `r1stack serve` (default model, fp32, CPU unless told):
page load time (navigation start to load event, and to the signed-in app being shown), and the delay between a
streamed token arriving in the page and the DOM update that shows it (the page's own `r1-token-delay`
performance measures: the next animation frame, or at most ~30 ms later when the browser grants the tab no
frame), with 1 and 16 tabs streaming at once. The peer, measured in the same run, is the gap between consecutive
tokens as the page receives them: a delay well under it means the page keeps up with the server.
Writes benchmarks/results/console.json. Bar (issue 12): under 50 ms added per token at 16 tabs.

    .venv/bin/python benchmarks/console.py [--tabs 1,16] [--tokens 48] [--loads 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "console"))
from common import print_table, write_results  # noqa: E402
from consoleproc import KEYS, launch_browser, start  # noqa: E402
from rich.progress import Progress  # noqa: E402
from serverproc import stop_server  # noqa: E402

DELAYS = "performance.getEntriesByName('r1-token-delay').map(e => [e.startTime, e.duration])"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def sign_in(page, url: str) -> None:
    page.goto(url + "/")
    page.fill("#key", KEYS["alice"])
    page.press("#key", "Enter")
    page.wait_for_selector("#app:not([hidden])")


def page_loads(ctx, url: str, n: int) -> dict:
    page = ctx.new_page()
    sign_in(page, url)
    loads, ready = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        page.reload()
        while page.evaluate("document.getElementById('app').hidden"):
            time.sleep(0.005)
        ready.append((time.perf_counter() - t0) * 1000)
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
        loads.append(nav["loadEventEnd"] - nav["startTime"])
    page.close()
    return {"load_ms_median": statistics.median(loads), "ready_ms_median": statistics.median(ready)}


def stream_tabs(ctx, url: str, tabs: int, tokens: int, progress, task) -> dict:
    pages = []
    for _ in range(tabs):
        p = ctx.new_page()
        sign_in(p, url)
        p.evaluate("document.querySelector('.settings').open = true")
        p.fill("#max-tokens", str(tokens))
        p.fill("#temperature", "0")
        p.fill("#prompt", "Tell me about the history of lighthouses in detail.")
        pages.append(p)
    for p in pages:
        p.click("#send")
    pending = set(range(tabs))
    while pending:
        for i in list(pending):
            if pages[i].evaluate("Number(document.body.dataset.turns || 0) >= 1"):
                pending.discard(i)
                progress.advance(task)
        time.sleep(0.1)
    delays, gaps = [], []
    hidden = sum(p.evaluate("document.visibilityState") != "visible" for p in pages)
    for p in pages:
        entries = p.evaluate(DELAYS)
        delays += [d for _, d in entries]
        arrivals = sorted(s for s, _ in entries)
        gaps += [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        p.close()
    return {
        "tabs": tabs,
        "hidden_tabs": hidden,  # a hidden tab draws no frames; the delay then waits for it to be shown
        "tokens_seen": len(delays),
        "delay_ms_p50": pct(delays, 0.5),
        "delay_ms_p95": pct(delays, 0.95),
        "delay_ms_max": max(delays) if delays else float("nan"),
        "token_gap_ms_p50": pct(gaps, 0.5),
        "delay_over_gap_p50": pct(delays, 0.5) / pct(gaps, 0.5) if gaps else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tabs", default="1,16")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    tab_counts = [int(x) for x in args.tabs.split(",")]
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = start(Path(tmp))
        try:
            with sync_playwright() as pw:
                ctx = launch_browser(pw, Path(tmp) / "profile")
                load = page_loads(ctx, server.url, args.loads)
                rows = []
                with Progress() as progress:
                    task = progress.add_task("tabs streaming", total=sum(tab_counts))
                    for n in tab_counts:
                        rows.append(stream_tabs(ctx, server.url, n, args.tokens, progress, task))
                ctx.close()
        finally:
            stop_server(server)
    print_table(
        "console page load",
        ["load ms (median)", "app shown ms (median)"],
        [[load["load_ms_median"], load["ready_ms_median"]]],
    )
    cols = list(rows[0])
    print_table("token arrival -> shown in the page", cols, [[r[c] for c in cols] for r in rows])
    path = write_results(
        "console",
        {
            "conditions": {
                "tokens_per_tab": args.tokens,
                "loads": args.loads,
                "model": "smollm2-135m-instruct fp32",
            },
            "page_load": load,
            "streaming": rows,
            "bar_ms_at_16_tabs": 50,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
