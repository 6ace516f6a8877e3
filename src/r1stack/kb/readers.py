"""Turn a file into text sections (txt, md, html, pdf, docx, csv, json); unreadable input is a UserError."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

from r1stack.errors import UserError
from r1stack.kb.models import Section

_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")


def decode_text(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise UserError(
            f"{name}: looks binary, not text; convert it to txt, md, html, pdf, docx, csv or json"
        )
    # UTF-8 first; GB18030 is the common legacy encoding of Chinese office files and decodes GBK/GB2312 too.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UserError(f"{name}: not UTF-8 or GB18030 text; re-save it as UTF-8")


def split_markdown(text: str) -> list[Section]:
    """Sections at each heading line; the heading names the body under it."""
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else _MD_HEADING.match(line)
        if m:
            if "".join(body).strip():
                sections.append(Section("\n".join(body).strip(), heading))
            heading, body = m.group(2).strip(), []
        else:
            body.append(line)
    if "".join(body).strip():
        sections.append(Section("\n".join(body).strip(), heading))
    return sections


def _read_txt(data: bytes, name: str) -> list[Section]:
    return [Section(decode_text(data, name).strip())]


def _read_md(data: bytes, name: str) -> list[Section]:
    return split_markdown(decode_text(data, name))


def _read_html(data: bytes, name: str) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, name), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    # Headings become markdown heading lines so one splitter serves both formats.
    for tag in soup.find_all(re.compile(r"^h[1-6]$")):
        tag.replace_with(f"\n{'#' * int(tag.name[1])} {tag.get_text(' ', strip=True)}\n")
    text = soup.get_text("\n")
    text = re.sub(r"\n\s*\n+", "\n\n", text)
    return split_markdown(text)


def _read_pdf(data: bytes, name: str) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UserError(f"{name}: the PDF is encrypted; remove its password and ingest it again")
        return [
            Section(text.strip(), page=i + 1)
            for i, page in enumerate(reader.pages)
            if (text := page.extract_text() or "").strip()
        ]
    except UserError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        msg = str(e)
        if "crypt" in msg.lower():
            raise UserError(
                f"{name}: the PDF is encrypted ({msg}); remove its password and ingest it again"
            ) from e
        raise UserError(f"{name}: not a readable PDF ({msg})") from e


def _read_docx(data: bytes, name: str) -> list[Section]:
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise UserError(f"{name}: not a readable .docx file ({e}); is it encrypted or an old .doc?") from e
    sections: list[Section] = []
    heading: str | None = None
    body: list[str] = []
    for para in document.paragraphs:
        style = (para.style.name or "") if para.style is not None else ""
        if style.startswith("Heading") or style == "Title":
            if body:
                sections.append(Section("\n".join(body), heading))
            heading, body = para.text.strip() or heading, []
        elif para.text.strip():
            body.append(para.text.strip())
    for table in document.tables:
        for row in table.rows:
            body.append(" | ".join(cell.text.strip() for cell in row.cells))
    if body:
        sections.append(Section("\n".join(body), heading))
    return sections


def _read_csv(data: bytes, name: str) -> list[Section]:
    text = decode_text(data, name)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise UserError(f"{name}: not valid CSV ({e})") from e
    if not rows:
        return []
    header, lines = rows[0], []
    # Each row becomes one line of "column: value" pairs so a chunk is readable on its own.
    for row in rows[1:]:
        pairs = [f"{h}: {v}" for h, v in zip(header, row, strict=False) if v.strip()]
        if pairs:
            lines.append("; ".join(pairs) + ".")
    if not lines:  # a header-only file, or a file without a header row
        lines = [", ".join(row) for row in rows if any(c.strip() for c in row)]
    return [Section("\n".join(lines))]


def _flatten_json(value: object, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten_json(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten_json(v, f"{path}[{i}]", out)
    elif value is not None and str(value).strip():
        out.append(f"{path}: {value}" if path else str(value))


def _read_json(data: bytes, name: str) -> list[Section]:
    try:
        value = json.loads(decode_text(data, name))
    except json.JSONDecodeError as e:
        raise UserError(f"{name}: not valid JSON ({e})") from e
    lines: list[str] = []
    _flatten_json(value, "", lines)
    return [Section("\n".join(lines))]


READERS: dict[str, Callable[[bytes, str], list[Section]]] = {
    ".txt": _read_txt,
    ".text": _read_txt,
    ".md": _read_md,
    ".markdown": _read_md,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".csv": _read_csv,
    ".json": _read_json,
}


def read_bytes(data: bytes, name: str) -> list[Section]:
    """Sections of a file's content; `name` chooses the format by its extension."""
    suffix = Path(name).suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise UserError(f"{name}: unknown format {suffix or '(no extension)'!r}; supported: {known}")
    if not data.strip():
        raise UserError(f"{name}: the file is empty")
    sections = [s for s in reader(data, name) if s.text.strip()]
    if not sections:
        raise UserError(f"{name}: no text found (a scanned PDF needs OCR first)")
    return sections
