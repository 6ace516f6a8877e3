"""`r1stack guard scan | detect` (PII recognisers, watermark detector) and `r1stack audit verify` (the hash chain)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from r1stack.config import get_settings
from r1stack.errors import UserError

out = Console()
err = Console(stderr=True)

guard_app = typer.Typer(help="PII recognisers and the watermark detector.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(guard_app, name="guard")
    app.add_typer(audit_app, name="audit")


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{source}: no such file; give a text file, or - to read standard input")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source} is not UTF-8 text; convert it (e.g. iconv -f GBK -t UTF-8)") from None


@guard_app.command("scan")
def scan(
    source: str = typer.Argument(..., help="a text file, or - for standard input"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per finding"),
    redact: bool = typer.Option(False, "--redact", help="print the text with the policy applied instead"),
    policy: str = typer.Option(None, help="redact | mask | block | allow (default: guard.pii_policy)"),
    show: bool = typer.Option(
        False, "--show", help="print found values in full (default: all but the last 4 masked)"
    ),
) -> None:
    """Run the PII recognisers over text and print what they found."""
    from r1stack.guard.policy import PiiFilter, mask

    g = get_settings().guard
    pii = PiiFilter(policy or g.pii_policy, g.custom_patterns, g.pii_threshold)
    text = _read(source)
    if redact:
        result = pii.redact(text)
        if result.blocked:
            err.print(f"blocked: {result.counts}")
            sys.exit(1)  # click hands typer.Exit back as a return value under main(); exit for real
        sys.stdout.write(result.text)
        return
    findings = pii.scan(text)
    line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def where(pos: int) -> tuple[int, int]:
        import bisect

        line = bisect.bisect_right(line_starts, pos)
        return line, pos - line_starts[line - 1] + 1

    if as_json:
        for f in findings:
            line, col = where(f.start)
            value = f.text if show else mask(f.text)
            print(
                json.dumps(
                    {
                        "type": f.entity,
                        "line": line,
                        "column": col,
                        "start": f.start,
                        "end": f.end,
                        "score": round(f.score, 2),
                        "value": value,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(title=f"{len(findings)} finding(s) in {source}")
    for col in ("line:col", "type", "score", "value"):
        table.add_column(col)
    for f in findings:
        line, col = where(f.start)
        table.add_row(f"{line}:{col}", f.entity, f"{f.score:.2f}", f.text if show else mask(f.text))
    out.print(table)


@guard_app.command("detect")
def detect(
    source: str = typer.Argument(..., help="a text file, or - for standard input"),
    model: str = typer.Option(None, help="whose tokenizer to use (default: the configured model)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Test text for the watermark: z-score, p-value and verdict, with the parameters in the configuration."""
    from r1stack.engine.loader import load_tokenizer
    from r1stack.engine.store import resolve
    from r1stack.guard.detection import detect as run_detect

    settings = get_settings()
    text = _read(source)
    tokenizer = load_tokenizer(resolve(model or settings.model, settings.data_dir))
    d = run_detect(text, settings, tokenizer)
    if as_json:
        print(json.dumps(d.as_dict()))
        return
    out.print(
        f"verdict: [bold]{d.verdict}[/]  z = {d.z:.2f}  p = {d.p_value:.3g}  "
        f"green {d.green} of {d.scored} scored tokens (gamma {d.gamma})"
    )


@audit_app.command("verify")
def verify(
    target: Path = typer.Argument(
        None, help="an audit directory or one day's file (default: the data directory's)"
    ),
) -> None:
    """Walk the hash chain and name the first record that was changed, removed or reordered."""
    from r1stack.guard.audit import AuditLog

    settings = get_settings()
    log = AuditLog(settings)
    target = target or log.directory
    if not target.exists():
        raise UserError(
            f"{target}: no audit log there; give an audit directory or an audit-YYYY-MM-DD.jsonl file"
        )
    report = log.verify(target)
    if report.ok:
        out.print(f"[green]ok[/]: {report.records} record(s) in {report.files} file(s), chain intact")
        return
    rid = f" (request {report.request_id})" if report.request_id else ""
    print(f"TAMPERED: {report.bad_file} line {report.bad_line}{rid}: {report.reason}")
    sys.exit(1)  # click hands typer.Exit back as a return value under main(); exit for real
