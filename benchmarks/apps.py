"""Apps benchmark: batch risk scoring of a synthetic labelled set through one continuous batch (rows/s), the share
of model answers that validate against the schema (must be 100%), and AUC / precision at the top 5% for the
rules-only features, the model alone and both combined. Prints a table, writes results/apps.json plus the CSV and
HTML report beside it.

    .venv/bin/python benchmarks/apps.py --n 2000            # the issue's batch size
    .venv/bin/python benchmarks/apps.py --n 200 --threads 1 # what a shared 2-core CPU machine allows
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from r1stack.apps.backend import OfflineBackend
from r1stack.apps.risk.answer import parse_answer
from r1stack.apps.risk.evaluate import auc, precision_at
from r1stack.apps.risk.report import write_csv, write_html
from r1stack.apps.risk.scorer import BatchReport, finish, jobs_for, prepare
from r1stack.apps.risk.synth import generate
from r1stack.apps.risk.transactions import validate_rows
from r1stack.guard.policy import PiiFilter

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "apps.json"
console = Console()


def processor_cost(args) -> dict:
    """The logits processor's cost per generated token beside a plain masked copy of the logits (its floor)."""
    import torch

    from r1stack.apps.risk.answer import MAX_TOKENS, RISK_SCHEMA
    from r1stack.engine.constrained import json_schema_processor
    from r1stack.engine.loader import load_tokenizer
    from r1stack.engine.store import resolve

    torch.set_num_threads(args.threads or 1)
    tok = load_tokenizer(resolve(args.model, args.data_dir))
    t0 = time.perf_counter()
    json_schema_processor(RISK_SCHEMA, tok, [tok.eos_token_id], MAX_TOKENS)
    build_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    calls, spent, floor = 0, 0.0, 0.0
    for _ in range(20):
        proc = json_schema_processor(RISK_SCHEMA, tok, [tok.eos_token_id], MAX_TOKENS)
        out: list[int] = []
        while len(out) < MAX_TOKENS:
            logits = torch.randn(len(tok), generator=gen)
            t = time.perf_counter()
            masked = proc([], out, logits)
            spent += time.perf_counter() - t
            t = time.perf_counter()
            torch.where(torch.isfinite(masked), logits, -float("inf"))  # one full-vocab masked copy
            floor += time.perf_counter() - t
            calls += 1
            tid = int(torch.multinomial(torch.softmax(masked, -1), 1, generator=gen))
            if tid == tok.eos_token_id:
                break
            out.append(tid)
    table = Table(title=f"constrained decoding: logits processor (risk schema, vocab {len(tok)})")
    for col in ("grammar build s", "us per token", "masked-copy floor us", "ratio"):
        table.add_column(col)
    per, per_floor = spent / calls * 1e6, floor / calls * 1e6
    table.add_row(f"{build_s:.2f}", f"{per:.0f}", f"{per_floor:.0f}", f"{per / per_floor:.1f}x")
    console.print(table)
    return {
        "grammar_build_s": round(build_s, 3),
        "us_per_token": round(per, 1),
        "masked_copy_floor_us": round(per_floor, 1),
        "tokens": calls,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--fraud-rate", type=float, default=0.05)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data-dir", default=str(ROOT / "r1stack-data"))
    ap.add_argument("--processor-only", action="store_true", help="only time the logits processor")
    args = ap.parse_args()
    processor = processor_cost(args)
    if args.processor_only:
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.write_text(json.dumps({**data, "processor": processor}, indent=2) + "\n")
        return

    from r1stack import LLM

    rows = generate(args.n, args.fraud_rate, seed=0)
    txns, errors = validate_rows(rows)
    labels = {r["transaction_id"]: r["label"] for r in rows}
    llm = LLM(
        args.model,
        dtype=args.dtype,
        device=args.device,
        data_dir=args.data_dir,
        threads=args.threads,
        max_num_seqs=256,
        kv_cache_bytes=2 << 30,
    )
    backend = OfflineBackend(llm)
    start = time.perf_counter()
    prepared = prepare(txns, PiiFilter("redact"))
    texts = backend.run(jobs_for(prepared, seed=0), progress=True)
    gen_s = time.perf_counter() - start
    valid = 0
    for t in texts:
        try:
            parse_answer(t)
            valid += 1
        except Exception:
            pass
    results = finish(prepared, texts, None, backend.name)
    report = BatchReport(results, errors, time.perf_counter() - start)
    y = [labels[r.transaction_id] for r in results]
    scores = {}
    for name, s in (
        ("rules only", [r.rules_score for r in results]),
        ("model alone", [float(r.score) for r in results]),
        ("combined", [r.combined_score for r in results]),
    ):
        scores[name] = {"auc": round(auc(s, y), 4), "precision_at_5pct": round(precision_at(s, y), 4)}
    out_dir = RESULTS.parent / "apps"
    write_csv(report, out_dir / "risk-results.csv")
    write_html(report, out_dir / "risk-report.html")

    table = Table(
        title=f"risk scoring: {len(results)} rows ({sum(y)} fraud), {args.model} {args.dtype} "
        f"on {llm.engine.device.type}"
    )
    for col in ("scorer", "AUC", "precision@5%"):
        table.add_column(col)
    for name, m in scores.items():
        table.add_row(name, f"{m['auc']:.3f}", f"{m['precision_at_5pct']:.3f}")
    console.print(table)
    console.print(
        f"{report.rows_per_s:.2f} rows/s end to end ({gen_s:.1f} s generating), "
        f"{valid}/{len(texts)} answers validate"
    )
    RESULTS.write_text(
        json.dumps(
            {
                "n": len(results),
                "fraud": sum(y),
                "model": args.model,
                "dtype": args.dtype,
                "device": llm.engine.device.type,
                "threads": args.threads,
                "machine": platform.processor() or platform.machine(),
                "rows_per_s": round(report.rows_per_s, 3),
                "generate_s": round(gen_s, 2),
                "valid_answers": valid,
                "answers": len(texts),
                "scores": scores,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
