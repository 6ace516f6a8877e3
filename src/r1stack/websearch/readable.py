"""Turns a fetched body into the readable text a model can cite: HTML loses its scripts, menus and markup."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

# Elements that carry code, chrome or controls rather than the page's prose.
_NOISE = (
    "head", "title", "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed",
    "nav", "header", "footer", "aside", "form", "button", "select", "input", "textarea",
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")


def _tidy(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def html_to_text(body: bytes, charset: str | None = None) -> tuple[str, str]:
    """(title, text) of an HTML document; the charset comes from the header, else the document says it."""
    soup = BeautifulSoup(body, "html.parser", from_encoding=charset)
    title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    for tag in soup(_NOISE):
        tag.decompose()
    # Prefer the page's own idea of its main content; fall back to the whole body.
    root = soup.find("main") or soup.find("article") or soup.body or soup
    return title, _tidy(root.get_text("\n"))


def decode_text(body: bytes, charset: str | None) -> str:
    """Bytes of a plain-text type to tidy text; an unknown charset falls back to UTF-8."""
    try:
        text = body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    return _tidy(text)
