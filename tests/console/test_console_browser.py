"""The console in Debian's chromium against a real `r1stack serve` with the default model: sign-in, streaming,
persistence across reloads and restarts, stop, knowledge-base citations, sanitised rendering, the dashboard, and
a phone-width layout. Every test records each request the page makes (none may leave the server's origin) and
each console error (there must be none), and writes a screenshot."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from consoleproc import KEYS, start

XSS = "<img src=x onerror=window.__pwned=1>"


def _auth(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _sign_in(page, server, name: str = "alice") -> None:
    page.goto(server.url + "/")
    page.fill("#key", KEYS[name])
    page.press("#key", "Enter")
    page.wait_for_selector("#app:not([hidden])")


def _until(page, js: str, timeout_s: float = 120) -> None:
    """Poll a JS condition with page.evaluate (wait_for_function would need eval, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(js):
        if time.monotonic() > deadline:
            page.screenshot(path=page.shots / "timeout.png")
            raise AssertionError(
                f"still false after {timeout_s} s: {js}; screenshot {page.shots}/timeout.png"
            )
        time.sleep(0.1)


def _turns(page) -> int:
    return int(page.evaluate("document.body.dataset.turns || '0'"))


def _send(page, text: str, key: str | None = None) -> int:
    """Type and send a message (by a key press or the Send button); the finished-turn count before it."""
    before = _turns(page)
    page.fill("#prompt", text)
    if key:
        page.press("#prompt", key)
    else:
        page.click("#send")
    return before


def _wait_turn_done(page, before: int) -> None:
    _until(
        page,
        f"Number(document.body.dataset.turns || 0) > {before} && !document.body.classList.contains('busy')",
    )


def _setting(page, selector: str, value: str) -> None:
    page.evaluate("document.querySelector('.settings').open = true")
    page.fill(selector, value)


def _last_answer(page) -> str:
    return page.locator(".msg.assistant .answer").last.inner_text()


def _same_origin_only(page, server, allow_errors: tuple[str, ...] = ()) -> None:
    rec = page.recorder
    assert rec.requests, "no requests recorded"
    outside = [
        u for u in rec.requests if not (u.startswith(server.url + "/") or u.startswith(("data:", "blob:")))
    ]
    assert outside == []
    errors = [e for e in rec.errors if not any(a in e for a in allow_errors)]
    assert errors == []
    assert page.evaluate("window.__pwned") is None


def _running(server) -> float:
    return server.metric("r1stack:num_requests_running")


def test_sign_in_chat_stream_and_reload(page, console_server, shots):
    page.goto(console_server.url + "/")
    page.screenshot(path=shots / "01-signin.png")
    page.fill("#key", "not-a-key-at-all")
    page.click("#signin-button")
    _until(page, "document.getElementById('signin-error').textContent.length > 0")
    assert "refused" in page.inner_text("#signin-error")
    page.fill("#key", KEYS["alice"])
    page.click("#signin-button")
    page.wait_for_selector("#app:not([hidden])")
    _setting(page, "#max-tokens", "48")
    turn = _send(page, "Name three colours of the rainbow.", key="Enter")
    page.wait_for_selector(".msg.assistant")
    _wait_turn_done(page, turn)
    answer = _last_answer(page)
    frames = page.evaluate(
        "new Set(performance.getEntriesByName('r1-token-delay').map(e => e.startTime + e.duration)).size"
    )
    assert frames > 1, "the answer appeared in one frame, not streamed"
    stats = page.locator(".msg.assistant .stats").last.inner_text()
    assert "tokens/s" in stats
    page.screenshot(path=shots / "02-chat.png")
    # What the page shows is what the server keeps.
    convs = httpx.get(console_server.api + "/conversations", headers=_auth("alice")).json()["data"]
    assert [c["title"] for c in convs] == ["Name three colours of the rainbow."]
    stored = httpx.get(f"{console_server.api}/conversations/{convs[0]['id']}", headers=_auth("alice")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"].strip() and stored["messages"][1]["stats"]["tokens"] > 0
    page.reload()
    page.wait_for_selector(".msg.assistant")
    assert page.inner_text("#conv-title") == "Name three colours of the rainbow."
    assert _last_answer(page) == answer
    # Regenerate replaces the answer; rename and export work on the stored conversation.
    turn = _turns(page)
    page.click("#regenerate")
    _wait_turn_done(page, turn)
    assert page.locator(".msg.assistant").count() == 1
    page.once("dialog", lambda d: d.accept("Rainbow colours"))
    page.click("#rename")
    _until(page, "document.querySelector('.conv-item.active')?.textContent === 'Rainbow colours'")
    with page.expect_download() as dl:
        page.click("#export-md")
    exported = Path(dl.value.path()).read_text()
    assert exported.startswith("# Rainbow colours") and _last_answer(page).split()[0] in exported
    stored = httpx.get(f"{console_server.api}/conversations/{convs[0]['id']}", headers=_auth("alice")).json()
    assert stored["title"] == "Rainbow colours" and len(stored["messages"]) == 2
    _same_origin_only(page, console_server, allow_errors=("401",))


def test_stop_aborts_generation_on_the_server(page, console_server, shots):
    _sign_in(page, console_server)
    page.click("#new-chat")
    _setting(page, "#max-tokens", "1500")
    _setting(page, "#temperature", "0.8")
    turn = _send(page, "Write a very long story about a dragon and a lighthouse keeper, at least 1000 words.")
    _until(page, "[...document.querySelectorAll('.msg.assistant .answer')].pop()?.textContent.length > 40")
    assert _running(console_server) >= 1
    page.click("#stop")
    _wait_turn_done(page, turn)
    assert "Stopped" in page.locator(".msg.assistant .msg-error").last.inner_text()
    deadline = time.monotonic() + 60
    while _running(console_server) != 0:
        assert time.monotonic() < deadline, "the stopped request is still running on the server"
        time.sleep(0.2)
    kept = _last_answer(page)
    assert len(kept) > 40
    page.screenshot(path=shots / "03-stopped.png")
    conv_id = page.evaluate("sessionStorage.getItem('r1stack.conv')")
    stored = httpx.get(f"{console_server.api}/conversations/{conv_id}", headers=_auth("alice")).json()
    assert stored["messages"][-1]["content"].strip() == kept.strip()
    # A paste far beyond the context: the server's message shows, and nothing is lost from the conversation.
    turn = _send(page, "long " * 10_000)
    _wait_turn_done(page, turn)
    error = page.inner_text("#chat-error")
    assert "2048" in error, error  # the server names the context length it has
    stored = httpx.get(f"{console_server.api}/conversations/{conv_id}", headers=_auth("alice")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user"]
    assert stored["messages"][1]["content"].strip() == kept.strip()
    assert len(stored["messages"][2]["content"]) == 50_000
    page.screenshot(path=shots / "03b-too-long.png")
    _same_origin_only(page, console_server, allow_errors=("400",))


def test_chinese_interface(page, console_server, shots):
    """The interface follows the browser's language."""
    page.add_init_script("Object.defineProperty(navigator, 'languages', { get: () => ['zh-CN', 'zh'] })")
    page.goto(console_server.url + "/")
    assert page.inner_text("#signin-button") == "登录"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.fill("#key", KEYS["bob"])
    page.press("#key", "Enter")
    page.wait_for_selector("#app:not([hidden])")
    assert page.inner_text("#send") == "发送" and page.inner_text("#new-chat") == "新对话"
    assert page.locator("nav [data-view=dash]").is_hidden()  # bob is no admin: no dashboard
    page.screenshot(path=shots / "11-chinese.png")
    _same_origin_only(page, console_server)


def test_knowledge_base_upload_and_citation(page, console_server, shots):
    _sign_in(page, console_server)
    page.click("nav [data-view=kb]")
    page.fill("#kb-name", "handbook")
    page.click("#kb-create button")
    page.wait_for_selector("#kb-detail:not([hidden])")
    text = (
        "The vault code of the Zephyr project is 7341. Only the night warden may open the vault.\n"
        f"<script>window.__pwned=2</script> {XSS}\n"
    )
    page.set_input_files(
        "#kb-files",
        files=[
            {"name": f"zephyr {XSS}.txt", "mimeType": "text/plain", "buffer": text.encode()},
            {"name": "photo.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00binary"},
        ],
    )
    page.click("#kb-upload button")
    page.wait_for_selector("#kb-results tr.failed")
    rows = page.locator("#kb-results tr").all_inner_texts()
    assert any(XSS in r and "failed" not in r for r in rows), rows  # the file name shows as text
    assert any("photo.exe" in r and "failed" in r for r in rows), rows  # the unsupported upload says why
    assert page.locator("#kb-progress").evaluate("p => p.value") == 100
    page.screenshot(path=shots / "04-knowledge.png")
    page.click("nav [data-view=chat]")
    page.click("#new-chat")
    page.evaluate("document.querySelector('.settings').open = true")
    page.check("#kb-choices input[value=handbook]")
    _setting(page, "#max-tokens", "40")
    turn = _send(page, "What is the vault code of the Zephyr project?")
    _wait_turn_done(page, turn)
    assert page.locator(".msg.assistant .msg-error").last.inner_text() == ""
    assert "tokens/s" in page.locator(".msg.assistant .stats").last.inner_text()
    page.locator(".msg.assistant .source-link").first.click()
    panel = page.inner_text("#source-text")
    assert "7341" in panel and "<script>window.__pwned=2</script>" in panel
    assert "handbook" in page.inner_text("#source-where")
    assert page.locator("#source-panel script, #source-panel img, #messages img").count() == 0
    page.screenshot(path=shots / "05-citation.png")
    _same_origin_only(page, console_server)


def test_model_output_is_rendered_as_text(page, console_server, shots):
    content = (
        f"<script>window.__pwned=4</script> **bold** {XSS} [1]\n\n"
        "```python\ndef f(x):\n    return 'hi'  # note\n```\n[link](javascript:window.__pwned=6)"
    )
    body = {
        "title": f"Hostile {XSS}",
        "messages": [
            {"role": "user", "content": f"show me {XSS}"},
            {
                "role": "assistant",
                "content": content,
                "reasoning": "<script>window.__pwned=7</script>",
                "sources": [{"id": 1, "kind": "kb", "title": XSS, "text": "<b>snippet</b>"}],
            },
        ],
    }
    httpx.post(console_server.api + "/conversations", json=body, headers=_auth("alice")).raise_for_status()
    _sign_in(page, console_server)
    page.locator(".conv-item", has_text="Hostile").click()
    page.wait_for_selector(".msg.assistant pre")
    answer = _last_answer(page)
    assert "<script>window.__pwned=4</script>" in answer and XSS in answer
    assert page.locator(".msg.assistant strong").inner_text() == "bold"
    assert page.locator(".msg.assistant .tok-k").count() >= 2  # def, return highlighted
    assert page.locator("#messages a[href^=javascript]").count() == 0
    page.locator(".msg.assistant .cite").click()
    assert page.inner_text("#source-text") == "<b>snippet</b>"
    page.locator(".thinking summary").click()
    assert "<script>" in page.inner_text(".thinking-body")
    assert page.locator("#messages script, #messages img, #source-panel b").count() == 0
    page.screenshot(path=shots / "06-hostile.png")
    conv_id = page.evaluate("sessionStorage.getItem('r1stack.conv')")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete")
    _until(page, "!document.querySelector('.conv-item')?.textContent.startsWith('Hostile')")
    gone = httpx.get(f"{console_server.api}/conversations/{conv_id}", headers=_auth("alice"))
    assert gone.status_code == 404
    _same_origin_only(page, console_server)


def test_dashboard_and_phone_width(page, console_server, shots):
    _sign_in(page, console_server)
    page.click("nav [data-view=dash]")
    _until(page, "/^\\d+$/.test(document.getElementById('d-running').textContent)")
    _until(page, "document.getElementById('d-chain').textContent.length > 0")
    assert page.inner_text("#d-health") == "ok"
    chain = page.inner_text("#d-chain")
    assert "verifies" in chain and int(re.search(r"\((\d+) records", chain).group(1)) >= 1, chain
    page.wait_for_timeout(2500)  # a second scrape, so the charts have a line
    page.screenshot(path=shots / "07-dashboard.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})
    page.click("nav [data-view=chat]")
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    assert page.locator("#conv-title").bounding_box()["width"] > 200  # the title is not squeezed to a column
    page.screenshot(path=shots / "08-phone.png")
    _same_origin_only(page, console_server)


@pytest.mark.slow
def test_server_gone_then_restarted_with_r1_reasoning(page, console_server, shots):
    """The server dies mid-stream (the partial answer stays, an error shows); it comes back on the same port with
    the R1 parser forced on: the conversations are all there, and reasoning lands in the thinking panel only."""
    _sign_in(page, console_server)
    page.click("#new-chat")
    _setting(page, "#max-tokens", "1500")
    turn = _send(page, "Write a very long poem about the sea, at least 800 words.")
    _until(page, "[...document.querySelectorAll('.msg.assistant .answer')].pop()?.textContent.length > 40")
    console_server.proc.kill()
    console_server.proc.wait()
    _wait_turn_done(page, turn)
    assert "connection was lost" in page.locator(".msg.assistant .msg-error").last.inner_text()
    assert len(_last_answer(page)) > 40
    page.screenshot(path=shots / "09-server-gone.png")
    port = int(console_server.url.rsplit(":", 1)[1])
    titles_before = page.locator(".conv-item").all_inner_texts()
    new = start(console_server.tmp, "--reasoning-parser", "deepseek_r1", port=port, env=console_server.env)
    console_server.proc, console_server.log_path = new.proc, new.log_path
    # The page keeps retrying the save it could not make; once the server is back, the partial answer is stored.
    partial = _last_answer(page)
    conv_id = page.evaluate("sessionStorage.getItem('r1stack.conv')")
    deadline = time.monotonic() + 60
    while True:
        stored = httpx.get(f"{console_server.api}/conversations/{conv_id}", headers=_auth("alice")).json()
        if stored["messages"][-1]["role"] == "assistant":
            break
        assert time.monotonic() < deadline, "the partial answer never reached the server"
        time.sleep(0.5)
    assert stored["messages"][-1]["content"].strip() == partial.strip()
    assert "connection was lost" in stored["messages"][-1]["error"]
    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    assert page.locator(".conv-item").all_inner_texts() == titles_before
    assert "Rainbow colours" in titles_before
    page.click("#new-chat")
    _setting(page, "#max-tokens", "40")
    turn = _send(page, "What is 2 + 2?")
    _wait_turn_done(page, turn)
    thinking = page.locator(".msg.assistant .thinking").last
    assert thinking.is_visible()
    thinking.locator("summary").click()
    shown = thinking.locator(".thinking-body").inner_text()
    assert shown.strip()
    conv_id = page.evaluate("sessionStorage.getItem('r1stack.conv')")
    stored = httpx.get(f"{console_server.api}/conversations/{conv_id}", headers=_auth("alice")).json()
    reply = stored["messages"][-1]
    assert reply["reasoning"].strip() == shown.strip()
    assert reply["reasoning"].strip() not in _last_answer(page)
    assert reply["reasoning"].strip() not in (reply.get("content") or "")
    page.screenshot(path=shots / "10-reasoning.png")
    # Chromium logs the failed reads of the killed server; nothing else may appear.
    _same_origin_only(page, console_server, allow_errors=("net::ERR_", "Failed to load resource"))
