"""The applications pages, the dashboard's guard parts and the web-search switch in Debian's chromium against the
folder's real `r1stack serve`: risk scoring of an uploaded CSV (real progress, sortable table, SVG charts, CSV and
HTML reports), the clinical flow (DICOM de-identified with its preview, triage, cited differential), redaction
counts and the audit chain on the dashboard, and a grounded answer whose source URLs come from a real search proxy
asking a stand-in SearXNG. Unsupported uploads get a message in the page."""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import httpx
from consoleproc import KEYS
from test_console_browser import XSS, _same_origin_only, _send, _setting, _sign_in, _until, _wait_turn_done

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from dicom_factory import PATIENT, make_series  # noqa: E402

from r1stack.apps.clinical.assistant import DEPARTMENTS, SAFETY_NOTICE, URGENCY  # noqa: E402
from r1stack.apps.risk.synth import generate  # noqa: E402
from r1stack.apps.risk.transactions import FIELDS  # noqa: E402

LEVELS = ("low", "medium", "high", "critical")
GUIDE = """# Community-acquired pneumonia

Community-acquired pneumonia presents with fever, productive cough, pleuritic chest pain and dyspnoea.
Chest CT shows consolidation. First-line treatment for outpatients is amoxicillin.

# Pulmonary embolism

Pulmonary embolism presents with sudden dyspnoea, pleuritic chest pain and tachycardia. CT pulmonary
angiography confirms the diagnosis.
"""


def _auth(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _transactions_csv() -> tuple[bytes, list[str]]:
    """Three good rows (one with markup in its id) and one with a negative amount, as an analyst's CSV."""
    rows = generate(3, seed=11)[:3]
    rows[1]["transaction_id"] = XSS
    rows.append({**rows[0], "transaction_id": "neg-amount", "amount": -5})
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in r.items()})
    return out.getvalue().encode(), [r["transaction_id"] for r in rows[:3]]


def _table(page) -> list[list[str]]:
    return page.evaluate(
        "[...document.querySelectorAll('#risk-body tr')].map(tr => [...tr.cells].map(td => td.textContent))"
    )


def _counter(page, name: str) -> int:
    return int(page.evaluate(f"document.body.dataset.{name} || '0'"))


def test_risk_page_scores_a_csv(page, console_server, shots):
    _sign_in(page, console_server)
    page.click("nav [data-view=apps]")
    page.wait_for_selector("#risk-page:not([hidden])")
    # An unsupported upload is refused in the page with a message.
    runs = _counter(page, "riskRuns")
    page.set_input_files(
        "#risk-file", files=[{"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4"}]
    )
    page.click("#risk-run")
    _until(page, f"Number(document.body.dataset.riskRuns || 0) > {runs}")
    assert "not a CSV file" in page.inner_text("#risk-error")
    # Every status line the page shows is recorded, to see the progress move through the batches.
    page.evaluate(
        "window.__status = []; new MutationObserver(() => window.__status.push("
        "document.getElementById('risk-status').textContent)).observe("
        "document.getElementById('risk-status'), {childList: true, characterData: true, subtree: true})"
    )
    data, good_ids = _transactions_csv()
    page.set_input_files("#risk-file", files=[{"name": "march.csv", "mimeType": "text/csv", "buffer": data}])
    runs = _counter(page, "riskRuns")
    page.click("#risk-run")
    _until(page, f"Number(document.body.dataset.riskRuns || 0) > {runs}", timeout_s=300)
    assert page.inner_text("#risk-error") == ""
    done = [
        int(m.group(1))
        for s in page.evaluate("window.__status")
        if (m := re.search(r"Scoring (\d+) of 4", s))
    ]
    assert any(0 < d < 4 for d in done), done  # one batch finished before the other
    assert page.locator("#risk-progress").evaluate("p => [p.value, p.max]") == [4, 4]
    assert "3 scored, 1 rejected" in page.inner_text("#risk-status")
    rows = _table(page)
    assert sorted(r[0] for r in rows) == sorted(good_ids)  # the markup id shows as text
    assert all(r[1] in LEVELS for r in rows)
    assert page.locator("#risk-body img").count() == 0
    errors = page.inner_text("#risk-errors")
    assert "row 4 (neg-amount)" in errors and "amount" in errors
    # Sorting: the combined-score header toggles descending / ascending order of the rows.
    combined = page.locator("#risk-head button[data-key=combined_score]")
    for _ in range(2):
        combined.click()
        values = [float(r[2]) for r in _table(page)]
        order = combined.evaluate("b => b.parentElement.getAttribute('aria-sort')")
        assert values == sorted(values, reverse=order == "descending"), (order, values)
    page.locator("#risk-head button[data-key=risk_level]").click()
    ranks = [LEVELS.index(r[1]) for r in _table(page)]
    assert ranks == sorted(ranks, reverse=True)
    # Charts: one bar per level whose values add up to the rows scored; the reasons chart counts what the rows say.
    level_values = page.evaluate(
        "[...document.querySelectorAll('#risk-levels .bar-value')].map(t => Number(t.textContent))"
    )
    assert len(level_values) == 4 and sum(level_values) == 3
    assert [level_values[LEVELS.index(lv)] for lv in LEVELS] == [
        sum(r[1] == lv for r in rows) for lv in LEVELS
    ]
    reason_bars = page.locator("#risk-reasons rect.bar").count()
    assert reason_bars >= 1 or "No reasons" in page.inner_text("#risk-reasons")
    page.screenshot(path=shots / "12-risk.png", full_page=True)
    # Downloads: the CSV holds the table's decisions; the HTML report is escaped and self-contained.
    with page.expect_download() as dl:
        page.click("#risk-csv")
    assert dl.value.suggested_filename == "march-risk.csv"
    got = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert {r["transaction_id"]: r["risk_level"] for r in got} == {r[0]: r[1] for r in rows}
    assert len(got[0]) > 7  # the features travel with the decisions
    with page.expect_download() as dl:
        page.click("#risk-html")
    report = Path(dl.value.path()).read_text()
    assert report.startswith("<!doctype html>") and report.count("<svg") == 2
    assert "<script" not in report and XSS not in report and "&lt;img src=x onerror" in report
    assert "3 transactions scored, 1 rejected, from march.csv" in report
    _same_origin_only(page, console_server)


def test_clinical_page_dicom_triage_and_cited_differential(page, console_server, shots, tmp_path):
    http = httpx.Client(base_url=console_server.url, headers=_auth("alice"), timeout=300)
    assert http.post("/v1/kb", json={"name": "medlit"}).status_code == 200
    up = http.post("/v1/kb/medlit/documents", files={"files": ("respiratory.md", GUIDE.encode())})
    assert up.status_code == 200 and up.json()["data"][0]["status"] != "failed", up.text
    make_series(tmp_path / "dicom", n=2)
    files = [
        {"name": p.name, "mimeType": "application/dicom", "buffer": p.read_bytes()}
        for p in sorted((tmp_path / "dicom").iterdir())
    ]
    files.append({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not dicom"})
    _sign_in(page, console_server)
    page.click("nav [data-view=apps]")
    page.click("nav [data-app=clinical]")
    page.wait_for_selector("#clinical-page:not([hidden])")
    page.set_input_files("#clin-dicom", files=files)
    uploads = _counter(page, "dicomUploads")
    page.click("#clin-upload")
    _until(page, f"Number(document.body.dataset.dicomUploads || 0) > {uploads}")
    # Two de-identified previews, decoded by the browser; the text file is named with the server's reason.
    _until(
        page, "[...document.querySelectorAll('#clin-images img')].filter(i => i.naturalWidth > 0).length == 2"
    )
    captions = page.locator("#clin-images figcaption").all_inner_texts()
    assert len(captions) == 2 and all("CT of CHEST" in c for c in captions), captions
    assert "notes.txt: not a readable DICOM file" in page.inner_text("#clin-dicom-errors")
    shown = page.inner_text("#clinical-page")
    for secret in (PATIENT["PatientName"], PATIENT["PatientID"], "Zhang"):
        assert secret not in shown
    page.screenshot(path=shots / "13a-clinical-imaging.png")
    symptoms = "Fever, productive cough and pleuritic chest pain for three days; patient phone 13812345678."
    page.fill("#clin-symptoms", symptoms)
    page.check("#clin-kbs input[value=medlit]")
    runs = _counter(page, "clinicalRuns")
    with page.expect_response(
        lambda r: r.url.endswith("/v1/apps/clinical/diagnose"), timeout=300_000
    ) as resp:
        page.click("#clin-run")
    _until(page, f"Number(document.body.dataset.clinicalRuns || 0) > {runs}", timeout_s=300)
    assert page.inner_text("#clin-error") == ""
    said = resp.value.json()  # what the page shows is what the server answered
    assert page.text_content("#clin-dept") == said["triage"]["department"] in DEPARTMENTS
    assert page.text_content("#clin-urgency") == said["triage"]["urgency"] in URGENCY
    items = page.locator("#clin-differential li:not(.none)").all_text_contents()
    assert items == said["differential"] or (
        not said["differential"] and "gave none" in page.inner_text("#clin-differential")
    )
    assert page.locator("#clin-steps li:not(.none)").all_text_contents() == said["next_steps"]
    assert page.locator("#clin-cites .cite").all_text_contents() == [f"[{n}]" for n in said["citations"]]
    note = page.inner_text("#clin-note")
    assert SAFETY_NOTICE in note and "13812345678" not in note and "MOBILE" in note
    sources = page.locator("#clin-sources .source-link")
    assert sources.count() >= 1 and all("respiratory.md" in s for s in sources.all_inner_texts())
    (
        page.locator("#clin-cites .cite").first
        if page.locator("#clin-cites .cite").count()
        else sources.first
    ).click()
    snippet = page.inner_text("#clin-source-text")
    assert "pneumonia" in snippet.lower() or "embolism" in snippet.lower(), snippet
    assert "medlit" in page.inner_text("#clin-source-where")
    page.screenshot(path=shots / "13-clinical.png", full_page=True)
    _same_origin_only(page, console_server)


def test_dashboard_shows_redactions_chain_and_expert_load(page, console_server, shots):
    audit = httpx.get(console_server.api + "/console/audit", headers=_auth("alice")).json()
    if not audit["redactions"]:  # the clinical test leaves some; alone, make one
        triage = {"symptoms": "Chest pain; call me on 13812345678.", "seed": 1}
        r = httpx.post(
            console_server.api + "/apps/clinical/triage", json=triage, headers=_auth("alice"), timeout=300
        )
        assert r.status_code == 200, r.text
        audit = httpx.get(console_server.api + "/console/audit", headers=_auth("alice")).json()
    assert audit["redactions"].get("MOBILE", 0) >= 1
    _sign_in(page, console_server)
    page.click("nav [data-view=dash]")
    _until(page, "document.querySelectorAll('#d-redactions .bar').length > 0")
    bars = page.evaluate(
        "[...document.querySelectorAll('#d-redactions .bar-label')].map((t, i) => [t.textContent, "
        "Number(document.querySelectorAll('#d-redactions .bar-value')[i].textContent)])"
    )
    assert dict(bars) == audit["redactions"]
    assert "verifies" in page.inner_text("#d-chain")
    assert "MOBILE" in page.inner_text("#d-audit")
    # The default model is dense: /metrics has no expert counters and the expert card stays hidden.
    _until(page, "/^\\d+$/.test(document.getElementById('d-running').textContent)")
    samples = httpx.get(console_server.url + "/metrics").text.splitlines()
    assert not [s for s in samples if not s.startswith("#") and "expert=" in s]
    assert page.locator("#d-experts-card").is_hidden()
    page.screenshot(path=shots / "14-dashboard-guard.png", full_page=True)
    # A MoE model's counters (synthetic Prometheus text, the shape the engine's metric will have) are drawn.
    metrics = "\n".join(
        f'r1stack:moe_expert_tokens_total{{model_name="m",layer="{layer}",expert="{e}"}} {10 * e + layer}'
        for layer in (1, 2)
        for e in range(8)
    )
    page.evaluate(
        "async (text) => { const d = await import('/console/static/dash.js'); d.stopDashboard(); "
        "d.renderExperts(d.parseSamples(text)); }",
        metrics,
    )
    assert page.locator("#d-experts-card").is_visible()
    values = page.evaluate(
        "[...document.querySelectorAll('#d-experts .bar-value')].map(t => Number(t.textContent))"
    )
    assert values == [20 * e + 3 for e in range(8)]
    assert "8 experts" in page.inner_text("#d-experts-summary")
    page.locator("#d-experts-card").screenshot(path=shots / "15-expert-load-synthetic.png")
    _same_origin_only(page, console_server)


def test_web_search_switch_shows_source_urls(page, console_server, searxng, shots):
    _sign_in(page, console_server, "bob")
    page.click("#new-chat")
    _setting(page, "#max-tokens", "24")
    page.check("#web-search")
    turn = _send(page, "Zephyr lighthouse opening hours")
    _wait_turn_done(page, turn)
    assert page.locator(".msg.assistant .msg-error").last.inner_text() == ""
    asked = [s.query["q"] for s in searxng.seen if s.path == "/search"]
    assert asked and "Zephyr lighthouse opening hours" in asked[-1][0]
    urls = page.locator(".msg.assistant").last.locator(".sources .url").all_inner_texts()
    assert urls == [f"{searxng.base}/doc/{n}" for n in (1, 2, 3)]
    page.locator(".msg.assistant .source-link").first.click()
    assert page.inner_text("#source-where") == f"{searxng.base}/doc/1"
    assert "snippet 1 about Zephyr" in page.inner_text("#source-text")
    page.screenshot(path=shots / "16-web-search.png")
    # The page shows the URLs; it fetches none of them (nothing leaves the server's origin).
    _same_origin_only(page, console_server)
    conv_id = page.evaluate("sessionStorage.getItem('r1stack.conv')")
    stored = httpx.get(f"{console_server.api}/conversations/{conv_id}", headers=_auth("bob")).json()
    assert [s["url"] for s in stored["messages"][-1]["sources"]] == urls
    # Leave bob's conversation list as the other modules expect it.
    httpx.delete(f"{console_server.api}/conversations/{conv_id}", headers=_auth("bob")).raise_for_status()


def test_apps_page_in_chinese_and_at_phone_width(page, console_server, shots):
    page.add_init_script("Object.defineProperty(navigator, 'languages', { get: () => ['zh-CN', 'zh'] })")
    page.set_viewport_size({"width": 390, "height": 800})
    _sign_in(page, console_server)
    page.click("nav [data-view=apps]")
    assert page.inner_text("nav [data-app=risk]") == "交易风险" and page.inner_text("#risk-run") == "评分"
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    page.click("nav [data-app=clinical]")
    assert page.inner_text("#clin-run") == "评估"
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=shots / "17-clinical-phone-zh.png", full_page=True)
    _same_origin_only(page, console_server)


def test_a_key_refused_mid_session_returns_to_sign_in(page, console_server, shots):
    """The server refuses a revoked key exactly as an unknown one: the page swaps its key for one the server
    does not know and the next call brings back the sign-in form with the reason, not a broken view."""
    _sign_in(page, console_server)
    page.evaluate("import('/console/static/api.js').then(m => m.setKey('revoked-key-0000000000'))")
    page.click("nav [data-view=kb]")
    page.wait_for_selector("#signin:not([hidden])")
    assert "refused (wrong or revoked)" in page.inner_text("#signin-error")
    assert page.locator("#app").is_hidden()
    assert page.evaluate("sessionStorage.getItem('r1stack.key')") is None
    page.screenshot(path=shots / "18-key-refused.png")
    _same_origin_only(page, console_server, allow_errors=("401",))
