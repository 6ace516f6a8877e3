"""`r1stack guard scan` and `r1stack guard detect` as a user runs them."""

import json
import os
import subprocess
import sys


def cli(args, data_dir, stdin=None, **env_extra):
    env = {**os.environ, "R1STACK_DATA_DIR": str(data_dir), **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "r1stack.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=300,
    )


def test_scan_file_and_stdin(tmp_path):
    f = tmp_path / "note.txt"
    f.write_text("客户王五\n身份证11010519491231002X，银行卡6217 0012 3456 7890 122\n", encoding="utf-8")
    r = cli(["guard", "scan", str(f), "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    found = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["type"], x["line"], x["column"]) for x in found] == [("ID_CARD", 2, 4), ("BANK_CARD", 2, 26)]
    assert found[0]["value"] == "**************002X"  # masked unless --show
    table = cli(["guard", "scan", str(f)], tmp_path, COLUMNS="120")
    assert table.returncode == 0 and "2 finding(s)" in table.stdout
    assert "ID_CARD" in table.stdout and "**************002X" in table.stdout and "2:4" in table.stdout
    assert "11010519491231002X" not in table.stdout
    r = cli(["guard", "scan", "-", "--redact"], tmp_path, stdin="call 13812345678 now")
    assert r.returncode == 0 and r.stdout == "call [PHONE] now"
    r = cli(["guard", "scan", "-", "--redact", "--policy", "block"], tmp_path, stdin="call 13812345678 now")
    assert r.returncode == 1 and r.stdout == ""


def test_scan_bad_input(tmp_path):
    r = cli(["guard", "scan", str(tmp_path / "missing.txt")], tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("身份证".encode("gbk"))
    r = cli(["guard", "scan", str(gbk)], tmp_path)
    assert r.returncode == 2 and "UTF-8" in r.stderr


def test_detect_plain_text(data_dir, tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text(
        "The committee met on Tuesday to review the quarterly report. Revenue rose slightly, costs fell, "
        "and the board agreed to publish the figures next month after the auditors sign off."
    )
    r = cli(["guard", "detect", str(f), "--json"], data_dir)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "not watermarked" and d["z"] < 4 and d["scored"] > 16


def test_detect_watermarked_text_with_the_configured_key(data_dir, default_gguf, tmp_path):
    import torch

    from r1stack.config import Settings
    from r1stack.engine.loader import load_tokenizer
    from r1stack.engine.store import resolve
    from r1stack.guard import watermark_processor

    tok = load_tokenizer(resolve(str(default_gguf), default_gguf.parent))
    # whole lower-case words with a leading space re-tokenise to themselves, so the file holds these very ids
    words = [
        i
        for i in range(1000, 20000)
        if (s := tok.decode([i])).startswith(" ") and s[1:].isalpha() and s[1:].islower()
    ]
    index = torch.tensor(words)
    proc = watermark_processor(Settings(data_dir=data_dir, guard={"watermark_key": "bank-key"}))
    g = torch.Generator().manual_seed(7)
    ids = [words[0]]
    for _ in range(120):
        logits = torch.full((len(tok),), -1e9)
        logits[index] = torch.randn(len(words), generator=g) * 2
        ids.append(int(torch.multinomial(torch.softmax(proc([], ids, logits), -1), 1, generator=g)))
    f = tmp_path / "reply.txt"
    f.write_text(tok.decode(ids))
    key = {"R1STACK_GUARD__WATERMARK_KEY": "bank-key"}
    r = cli(["guard", "detect", str(f), "--json"], data_dir, **key)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "watermarked" and d["z"] > 4 and d["p_value"] < 1e-4
    other = json.loads(cli(["guard", "detect", str(f), "--json"], data_dir).stdout)  # the default key
    assert other["verdict"] == "not watermarked"
