"""Every supported format yields text with its headings and pages; bad files get a clear message."""

from __future__ import annotations

import io

import pytest

from r1stack.errors import UserError
from r1stack.kb.readers import read_bytes


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page, assembled by hand."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_pdf_pages_are_numbered():
    sections = read_bytes(make_pdf(["Liquidity coverage ratio", "Credit risk grades"]), "risk.pdf")
    assert [(s.page, s.text) for s in sections] == [
        (1, "Liquidity coverage ratio"),
        (2, "Credit risk grades"),
    ]


def test_encrypted_pdf_is_refused_with_a_message():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf(["secret text"]))))
    writer.encrypt(user_password="s3cret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(UserError, match="encrypted"):
        read_bytes(buf.getvalue(), "locked.pdf")


def test_docx_headings_and_tables():
    import docx

    d = docx.Document()
    d.add_heading("贷款分类", level=1)
    d.add_paragraph("贷款分为五类。")
    d.add_heading("Tables", level=1)
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "ratio"
    table.rows[0].cells[1].text = "100%"
    buf = io.BytesIO()
    d.save(buf)
    sections = read_bytes(buf.getvalue(), "rules.docx")
    assert sections[0].heading == "贷款分类" and "贷款分为五类。" in sections[0].text
    assert "ratio | 100%" in sections[-1].text


def test_html_headings_and_no_scripts():
    html = "<html><head><style>p{}</style><script>var x=1;</script></head><body><h2>Triage</h2><p>Chest pain first.</p></body></html>"
    sections = read_bytes(html.encode(), "page.html")
    assert sections[0].heading == "Triage"
    assert "Chest pain first." in sections[0].text and "var x" not in sections[0].text


def test_csv_rows_become_sentences_and_json_is_flattened():
    csv_sections = read_bytes("name,limit\n张三,5000\nBob,700\n".encode(), "limits.csv")
    assert csv_sections[0].text.splitlines() == ["name: 张三; limit: 5000.", "name: Bob; limit: 700."]
    json_sections = read_bytes(b'{"bank": {"ratios": [{"lcr": 1.2}]}}', "r.json")
    assert json_sections[0].text == "bank.ratios[0].lcr: 1.2"


def test_gb18030_text_is_decoded():
    assert read_bytes("流动性风险".encode("gb18030"), "legacy.txt")[0].text == "流动性风险"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.txt", "empty"),
        (b"   \n", "blank.md", "empty"),
        (b"\x00\x01\x02binary", "blob.txt", "binary"),
        (b"data", "archive.zip", "unknown format"),
        (b"{not json", "bad.json", "not valid JSON"),
        (b"not a pdf at all", "broken.pdf", "PDF"),
        (b"PK not a zip", "broken.docx", "docx"),
        (b"<html><body><script>x</script></body></html>", "nothing.html", "no text"),
    ],
)
def test_bad_files_get_a_clear_message(data: bytes, name: str, message: str):
    with pytest.raises(UserError, match=message) as err:
        read_bytes(data, name)
    assert err.value.message.startswith(name)
