"""Guard benchmark: PII recall/precision on the generated corpus beside Presidio's (when it installs), redaction
throughput (MB/s), the streaming redactor's added latency and hold-back per token, and, with --watermark, the
watermark experiment on r1stack's engine. Prints a table, merges its sections into results/guard.json."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "guard"))

import pii_corpus  # noqa: E402

from r1stack.guard import PiiFilter  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "guard.json"
console = Console()
# Presidio's entity names, mapped onto ours; PHONE_NUMBER counts for mobiles and landlines alike.
PRESIDIO_MAP = {
    "EMAIL_ADDRESS": "EMAIL",
    "CREDIT_CARD": "BANK_CARD",
    "IP_ADDRESS": "IP_ADDRESS",
    "PHONE_NUMBER": "PHONE",
    "US_PASSPORT": "PASSPORT",
}


def _phone_agnostic(triples):
    return [("PHONE" if e in ("MOBILE", "LANDLINE") else e, s, t) for e, s, t in triples]


def presidio_analyzer():
    """Presidio with a blank spaCy pipeline: its pattern recognisers run; the NER ones need a trained spaCy model,
    which is not on PyPI and cannot be fetched offline."""
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError as e:
        return None, f"presidio-analyzer not installed ({e})"

    class BlankSpacy(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    return (
        analyzer,
        (
            "presidio-analyzer 2.2 with spacy.blank('en'): its pattern recognisers only, since no trained spaCy model "
            "can be had offline (en_core_web_* are not on PyPI); tldextract could not download the public-suffix "
            "list offline and used its bundled copy"
        ),
    )


def quality(samples, analyzer) -> dict:
    ours = PiiFilter()
    rows = {}
    r = pii_corpus.score(samples, lambda t: [(f.entity, f.start, f.end) for f in ours.scan(t)])
    rows["r1stack"] = {k: r[k] for k in ("precision", "recall", "tp", "fp", "fn")}
    # Both sides scored with phone types merged and only on the types Presidio has, for a like-for-like view.
    shared = {"EMAIL", "BANK_CARD", "IP_ADDRESS", "PHONE"}
    gold_shared = [
        pii_corpus.Sample(s.text, [x for x in _phone_agnostic(s.spans) if x[0] in shared]) for s in samples
    ]
    r = pii_corpus.score(
        gold_shared,
        lambda t: [
            x for x in _phone_agnostic((f.entity, f.start, f.end) for f in ours.scan(t)) if x[0] in shared
        ],
    )
    rows["r1stack_on_presidio_types"] = {k: r[k] for k in ("precision", "recall", "tp", "fp", "fn")}
    if analyzer is not None:

        def predict(text):
            found = analyzer.analyze(text=text, language="en", entities=list(PRESIDIO_MAP))
            return [
                (PRESIDIO_MAP[x.entity_type], x.start, x.end)
                for x in found
                if PRESIDIO_MAP[x.entity_type] in shared
            ]

        r = pii_corpus.score(gold_shared, predict)
        rows["presidio_on_presidio_types"] = {k: r[k] for k in ("precision", "recall", "tp", "fp", "fn")}
        r = pii_corpus.score([pii_corpus.Sample(s.text, _phone_agnostic(s.spans)) for s in samples], predict)
        rows["presidio_all_types"] = {k: r[k] for k in ("precision", "recall", "tp", "fp", "fn")}
    return rows


def throughput(samples, analyzer) -> dict:
    text = "\n".join(s.text for s in samples)
    data_mb = len(text.encode()) / 1e6
    pii = PiiFilter()
    t = time.perf_counter()
    pii.redact(text)
    ours_s = time.perf_counter() - t
    out = {"text_mb": round(data_mb, 3), "r1stack_mb_per_s": data_mb / ours_s}
    if analyzer is not None:
        lines = [s.text for s in samples[:300]]
        mb = len("\n".join(lines).encode()) / 1e6
        t = time.perf_counter()
        for line in lines:
            analyzer.analyze(text=line, language="en", entities=list(PRESIDIO_MAP))
        presidio_s = time.perf_counter() - t
        t = time.perf_counter()
        for line in lines:
            pii.redact(line)
        ours_lines_s = time.perf_counter() - t
        out["presidio_mb_per_s_per_sentence"] = mb / presidio_s
        out["r1stack_mb_per_s_per_sentence"] = mb / ours_lines_s
        out["speedup_vs_presidio"] = presidio_s / ours_lines_s
    return out


def streaming(samples, tokenizer) -> dict:
    """Feed each sentence token by token (the model's tokenizer, else 3-character pieces) and time every feed."""
    pii = PiiFilter()
    feed_times, held, tokens = [], [], 0
    plain_s = 0.0
    for s in track(samples, description="streaming", console=console):
        pieces = (
            [tokenizer.decode([i]) for i in tokenizer.encode(s.text, add_special_tokens=False)]
            if tokenizer is not None
            else [s.text[i : i + 3] for i in range(0, len(s.text), 3)]
        )
        if "".join(pieces) != s.text:
            pieces = [s.text[i : i + 3] for i in range(0, len(s.text), 3)]
        st = pii.stream()
        for p in pieces:
            t = time.perf_counter()
            st.feed(p)
            feed_times.append(time.perf_counter() - t)
            held.append(st.held)
            tokens += 1
        st.flush()
        t = time.perf_counter()
        pii.redact(s.text)
        plain_s += time.perf_counter() - t
    feed_times.sort()
    n = len(feed_times)
    return {
        "tokens": tokens,
        "tokenizer": "model" if tokenizer is not None else "3-char pieces",
        "feed_us_mean": 1e6 * sum(feed_times) / n,
        "feed_us_p50": 1e6 * feed_times[n // 2],
        "feed_us_p99": 1e6 * feed_times[int(n * 0.99)],
        "held_chars_mean": sum(held) / n,
        "held_chars_p99": sorted(held)[int(n * 0.99)],
        "stream_cost_vs_whole_text": sum(feed_times) / plain_s,
    }


def watermark(n: int, tokens: int) -> dict:
    import watermark_eval

    from r1stack import LLM
    from r1stack.config import Settings

    data_dir = ROOT / "r1stack-data"
    t = time.perf_counter()
    llm = LLM("smollm2-135m-instruct", data_dir=data_dir, enable_prefix_caching=False)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    result = watermark_eval.run(llm, Settings(data_dir=data_dir), n=n, tokens=tokens)
    result["wall_s"] = time.perf_counter() - t
    result["load_s"] = load_s
    result["device"] = str(llm.engine.device) if hasattr(llm.engine, "device") else "?"
    try:
        import torch

        if torch.cuda.is_available():
            result["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # a figure for the record, never a failure
        pass
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sentences", type=int, default=3000)
    ap.add_argument(
        "--watermark", action="store_true", help="also run the watermark experiment (wants a GPU)"
    )
    ap.add_argument("--watermark-only", action="store_true")
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if not args.watermark_only:
        samples = pii_corpus.corpus(args.sentences, seed=12345)
        analyzer, note = presidio_analyzer()
        tokenizer = None
        try:
            from r1stack.engine.loader import load_tokenizer
            from r1stack.engine.store import resolve

            tokenizer = load_tokenizer(resolve("smollm2-135m-instruct", ROOT / "r1stack-data"))
        except Exception as e:  # no model installed: 3-character pieces stand in for tokens
            console.print(f"[yellow]no tokenizer ({e}); streaming in 3-character pieces")
        results["conditions"] = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus_shared": "2 cores shared with other work",
            "sentences": args.sentences,
            "presidio": note,
        }
        results["quality"] = quality(samples, analyzer)
        results["throughput"] = throughput(samples, analyzer)
        results["streaming"] = streaming(samples[:1000], tokenizer)
        table = Table(title="PII recognition on the generated corpus")
        for col in ("system", "precision", "recall", "tp", "fp", "fn"):
            table.add_column(col)
        for name, row in results["quality"].items():
            table.add_row(
                name,
                f"{row['precision']:.4f}",
                f"{row['recall']:.4f}",
                str(row["tp"]),
                str(row["fp"]),
                str(row["fn"]),
            )
        console.print(table)
        console.print(results["throughput"])
        console.print(results["streaming"])
    if args.watermark or args.watermark_only:
        results["watermark"] = watermark(args.prompts, args.tokens)
        w = results["watermark"]
        table = Table(title=f"watermark: {w['prompts']} prompts x {w['tokens']} tokens")
        for col in ("run", "detected (z>4)", "mean z", "perplexity"):
            table.add_column(col)
        for name in ("plain", "watermarked"):
            r = w[name]
            table.add_row(name, f"{r['detected']:.2%}", f"{r['mean_z']:.2f}", f"{r['perplexity']:.2f}")
        console.print(table)
        console.print(f"perplexity cost: {w['perplexity_cost']:+.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
