"""`r1stack app risk score|synth|eval` and `r1stack app clinical triage|diagnose|dicom`: the applications from
a terminal. Results and reports go under the data directory unless --out names a folder."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from r1stack.config import get_settings
from r1stack.errors import UserError

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

app_app = typer.Typer(
    help="Applications: transaction risk scoring, the clinical assistant.", no_args_is_help=True
)
risk_app = typer.Typer(help="Financial transaction risk assessment.", no_args_is_help=True)
clinical_app = typer.Typer(help="Two-stage clinical assistant with DICOM intake.", no_args_is_help=True)
app_app.add_typer(risk_app, name="risk")
app_app.add_typer(clinical_app, name="clinical")


def register(app: typer.Typer) -> None:
    app.add_typer(app_app, name="app")


def _backend(model: str | None, dtype: str | None):
    from r1stack.apps.backend import OfflineBackend
    from r1stack.cli.engine_cmds import _engine_options
    from r1stack.engine.llm import LLM

    return OfflineBackend(LLM(**vars(_engine_options(model, dtype, None))))


def _audit(settings):
    """The audit log, unless the configuration turned it off (guard.audit)."""
    from r1stack.guard.audit import AuditLog

    return AuditLog(settings) if settings.guard.audit else None


def _out_dir(out_dir: Path | None, name: str) -> Path:
    return out_dir or get_settings().data_dir / "apps" / name


# ---- risk ----------------------------------------------------------------------------------------------------
@risk_app.command("score")
def risk_score(
    file: Path = typer.Argument(..., help="transactions as .csv (header row) or .json/.jsonl"),
    out_dir: Path = typer.Option(None, "--out", help="folder for risk-results.csv and risk-report.html"),
    model: str = typer.Option(None, "--model", "-m", help="catalogue name or local path"),
    dtype: str = typer.Option(None, "--dtype"),
    seed: int = typer.Option(None, "--seed", help="base seed; row i uses seed + i"),
) -> None:
    """Score every valid row (one continuous batch), report bad rows, write CSV and an HTML report."""
    from r1stack.apps.risk.report import write_csv, write_html
    from r1stack.apps.risk.scorer import score_batch
    from r1stack.apps.risk.transactions import load_file
    from r1stack.guard.policy import PiiFilter

    settings = get_settings()
    txns, errors = load_file(file)
    for e in errors:
        err.print(
            f"[yellow]row {e.row}[/] {e.transaction_id or ''}: {e.message}", markup=True, highlight=False
        )
    if not txns:
        raise UserError(
            f"{file.name}: no valid transactions ({len(errors)} bad rows); fix the rows listed above"
        )
    report = score_batch(
        _backend(model, dtype),
        txns,
        errors,
        PiiFilter.for_key(settings, None),
        _audit(settings),
        seed=seed,
        progress=True,
    )
    folder = _out_dir(out_dir, "risk")
    write_csv(report, folder / "risk-results.csv")
    write_html(report, folder / "risk-report.html")
    table = Table(
        title=f"{len(report.results)} scored, {len(errors)} rejected, {report.rows_per_s:.2f} rows/s"
    )
    for col in ("transaction", "level", "model", "rules", "combined", "reasons"):
        table.add_column(col)
    for r in sorted(report.results, key=lambda r: -r.combined_score)[:15]:
        table.add_row(
            r.transaction_id,
            r.risk_level,
            str(r.score),
            f"{r.rules_score:g}",
            f"{r.combined_score:g}",
            "; ".join(r.reasons)[:60],
        )
    out.print(table)
    err.print(f"wrote {folder / 'risk-results.csv'} and {folder / 'risk-report.html'}")


@risk_app.command("synth")
def risk_synth(
    n: int = typer.Argument(..., help="number of transactions (about)"),
    file: Path = typer.Argument(..., help="output .csv"),
    fraud_rate: float = typer.Option(0.05, "--fraud-rate"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a synthetic labelled set (label, pattern columns) with fraud patterns injected at a known rate."""
    from r1stack.apps.risk.synth import generate

    if n < 1 or not 0 <= fraud_rate <= 1:
        raise UserError("n must be at least 1 and --fraud-rate between 0 and 1")
    rows = generate(n, fraud_rate, seed)
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    err.print(f"wrote {len(rows)} rows ({sum(r['label'] for r in rows)} fraud) to {file}")


@risk_app.command("eval")
def risk_eval(
    file: Path = typer.Argument(..., help="a labelled .csv from `app risk synth`"),
    model: str = typer.Option(None, "--model", "-m"),
    dtype: str = typer.Option(None, "--dtype"),
    limit: int = typer.Option(None, "--limit", help="score only the first N rows"),
    seed: int = typer.Option(0, "--seed"),
    json_out: Path = typer.Option(None, "--json", help="also write the table as JSON"),
) -> None:
    """AUC and precision at the top 5% for rules only, the model alone, and both combined."""
    from r1stack.apps.risk.evaluate import auc, precision_at
    from r1stack.apps.risk.scorer import score_batch
    from r1stack.apps.risk.transactions import load_file
    from r1stack.guard.policy import PiiFilter

    labels_by_id = {}
    with file.open(encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if "label" not in rec:
                raise UserError(f"{file.name} has no label column; make one with `r1stack app risk synth`")
            labels_by_id[rec["transaction_id"]] = int(rec["label"])
    txns, errors = load_file(file)
    txns = txns[:limit] if limit else txns
    report = score_batch(
        _backend(model, dtype), txns, errors, PiiFilter("redact"), None, seed=seed, progress=True
    )
    labels = [labels_by_id[r.transaction_id] for r in report.results]
    rows = {}
    for name, scores in (
        ("rules only", [r.rules_score for r in report.results]),
        ("model alone", [float(r.score) for r in report.results]),
        ("combined", [r.combined_score for r in report.results]),
    ):
        rows[name] = {
            "auc": round(auc(scores, labels), 4),
            "precision_at_5pct": round(precision_at(scores, labels), 4),
        }
    table = Table(
        title=f"{len(labels)} transactions, {sum(labels)} fraud, model {report.results and _name(model)}"
    )
    for col in ("scorer", "AUC", "precision@5%"):
        table.add_column(col)
    for name, m in rows.items():
        table.add_row(name, f"{m['auc']:.3f}", f"{m['precision_at_5pct']:.3f}")
    out.print(table)
    if json_out:
        json_out.write_text(
            json.dumps(
                {"n": len(labels), "fraud": sum(labels), "rows_per_s": report.rows_per_s, "scores": rows},
                indent=2,
            )
        )


def _name(model: str | None) -> str:
    return model or get_settings().model


# ---- clinical ------------------------------------------------------------------------------------------------
@clinical_app.command("triage")
def clinical_triage(
    symptoms: str = typer.Argument(..., help="the symptoms in words ('-' reads stdin)"),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="the small triage model [default: apps.triage_model, else the default model]",
    ),
    dtype: str = typer.Option(None, "--dtype"),
    seed: int = typer.Option(None, "--seed"),
) -> None:
    """Stage 1: department and urgency, constrained to the label sets."""
    from r1stack.apps.clinical.flow import triage
    from r1stack.guard.policy import PiiFilter

    settings = get_settings()
    text = _text(symptoms)
    result, _ = asyncio.run(
        triage(
            _backend(model or settings.apps.triage_model, dtype),
            text,
            PiiFilter.for_key(settings, None),
            _audit(settings),
            seed=seed,
        )
    )
    out.print_json(json.dumps({"department": result.department, "urgency": result.urgency}))


@clinical_app.command("diagnose")
def clinical_diagnose(
    symptoms: str = typer.Argument(..., help="the symptoms in words ('-' reads stdin)"),
    kb: list[str] = typer.Option([], "--kb", help="medical knowledge base(s) to ground on (repeatable)"),
    dicom: list[Path] = typer.Option([], "--dicom", help="DICOM files or folders (de-identified first)"),
    triage_model: str = typer.Option(
        None, "--triage-model", help="small model for stage 1 [default: apps.triage_model, else the default]"
    ),
    diagnosis_model: str = typer.Option(
        None,
        "--diagnosis-model",
        help="large model for stage 2 [default: apps.diagnosis_model, else the default]",
    ),
    dtype: str = typer.Option(None, "--dtype"),
    top_k: int = typer.Option(3, "--top-k"),
    seed: int = typer.Option(None, "--seed"),
) -> None:
    """Stage 1 triage, then a grounded differential diagnosis with citations, as a structured note (JSON)."""
    from r1stack.apps.clinical.dicom_intake import intake
    from r1stack.apps.clinical.flow import diagnose
    from r1stack.guard.policy import PiiFilter

    settings = get_settings()
    imaging = []
    if dicom:
        result = intake(list(dicom), _out_dir(None, "clinical") / "dicom")
        imaging = [s.text() for s in result.summaries]
        for e in result.errors:
            err.print(f"[yellow]{e.source}[/]: {e.message}")
    triage_model = triage_model or settings.apps.triage_model or settings.model
    diagnosis_model = diagnosis_model or settings.apps.diagnosis_model or settings.model
    small = _backend(triage_model, dtype)
    # One model for both stages loads once.
    large = small if diagnosis_model == triage_model else _backend(diagnosis_model, dtype)
    note = asyncio.run(
        diagnose(
            small,
            large,
            settings,
            _text(symptoms),
            kb,
            PiiFilter.for_key(settings, None),
            imaging,
            _audit(settings),
            seed=seed,
            top_k=top_k,
        )
    )
    out.print_json(json.dumps(note.as_dict(), ensure_ascii=False))


@clinical_app.command("dicom")
def clinical_dicom(
    paths: list[Path] = typer.Argument(..., help="DICOM files or folders"),
    out_dir: Path = typer.Option(
        None, "--out", help="folder for de-identified copies, PNG previews, summary.json"
    ),
) -> None:
    """De-identify (PS3.15 basic profile), summarise, compute image statistics, write previews."""
    from r1stack.apps.clinical.dicom_intake import intake

    folder = _out_dir(out_dir, "dicom")
    result = intake(list(paths), folder)
    table = Table(title=f"{len(result.summaries)} read, {len(result.errors)} problems -> {folder}")
    for col in ("file", "summary", "note"):
        table.add_column(col)
    for s in result.summaries:
        table.add_row(s.source, s.text(), s.note)
    out.print(table)
    for e in result.errors:
        err.print(f"[yellow]{e.source}[/]: {e.message}")


def _text(arg: str) -> str:
    text = sys.stdin.read() if arg == "-" else arg
    if not text.strip():
        raise UserError("the symptoms are empty; describe them in words")
    return text
