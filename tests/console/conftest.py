"""One real server with the console for the whole folder (its web search goes through a real search proxy to a
stand-in SearXNG on loopback), and one headless chromium per module whose every request and console message is
recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from consoleproc import launch_browser, require_browser, start
from serverproc import stop_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "websearch"))
from websearch_standins import StandIn, running_proxy, searxng_route  # noqa: E402


@pytest.fixture(scope="package")
def searxng():
    """A stand-in SearXNG: its hits point at pages of this loopback server, so their URLs are known."""
    server = StandIn()
    server.routes["/search"] = searxng_route
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def console_server(tmp_path_factory, searxng):
    tmp = tmp_path_factory.mktemp("console")
    with running_proxy(tmp, "--provider", "searxng", "--searxng-url", searxng.base) as proxy:
        env = {"R1STACK_WEBSEARCH__PROXY_ADDRESS": proxy.address}
        s = start(tmp, env=env)
        s.tmp, s.env = tmp, env
        yield s
        stop_server(s)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = tmp_path_factory.mktemp("screenshots")
    print(f"\nconsole screenshots: {d}")
    return d


class Recorder:
    def __init__(self):
        self.requests: list[str] = []
        self.errors: list[str] = []

    def attach(self, page) -> None:
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = launch_browser(p, tmp_path_factory.mktemp("chromium-profile"))
        yield ctx
        ctx.close()


@pytest.fixture()
def page(browser, shots):
    pg = browser.new_page()
    pg.shots = shots
    rec = Recorder()
    rec.attach(pg)
    pg.recorder = rec
    pg.set_default_timeout(60_000)
    yield pg
    pg.close()
