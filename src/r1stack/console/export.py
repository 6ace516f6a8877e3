"""A conversation as a Markdown document a person can read, or as JSON another tool can load."""

from __future__ import annotations

import datetime as dt
import json
import re

from r1stack.console.store import Conversation


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def to_markdown(conv: Conversation) -> str:
    lines = [f"# {conv.title}", "", f"_{_when(conv.created)}_", ""]
    for m in conv.messages:
        role = str(m.get("role", "")).capitalize()
        lines += [f"## {role}", ""]
        reasoning = m.get("reasoning")
        if reasoning:
            lines += ["<details><summary>Thinking</summary>", "", str(reasoning), "", "</details>", ""]
        lines += [str(m.get("content") or ""), ""]
        for s in m.get("sources") or []:
            where = s.get("url") or f"{s.get('knowledge_base', '')}/{s.get('document', '')}"
            lines.append(f"[{s.get('id')}] {s.get('title') or where} — {where}")
        if m.get("sources"):
            lines.append("")
        if m.get("error"):
            lines += [f"> Error: {m['error']}", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_json(conv: Conversation) -> str:
    return json.dumps(conv.to_dict(), ensure_ascii=False, indent=2)


def filename(conv: Conversation, ext: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_\-]+", "-", conv.title).strip("-")[:60] or "conversation"
    return f"{stem}.{ext}"
