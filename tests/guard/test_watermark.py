"""The green-list processor and the detector, on synthetic logits (no model): the same parameters make both
agree, the first generated token sees the last prompt token, and repeats cannot inflate the score."""

import pytest
import torch

from r1stack.config import Settings
from r1stack.guard import WatermarkProcessor, detect, detect_ids, watermark_processor
from r1stack.guard.watermark import WatermarkParams

VOCAB = 4096


def sample(n: int, processor=None, prompt=(1, 2, 3), seed: int = 0, vocab: int = VOCAB) -> list[int]:
    """Draw n tokens from random (fixed per step) logits, through the processor when given."""
    g = torch.Generator().manual_seed(seed)
    out: list[int] = []
    for _ in range(n):
        logits = torch.randn(vocab, generator=g) * 2.0
        if processor is not None:
            logits = processor(list(prompt), out, logits)
        out.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g)))
    return out


def test_green_share_is_gamma_and_mask_matches_the_scalar_rule():
    params = WatermarkParams("secret")
    proc = WatermarkProcessor(params)
    shares = []
    for ctx in ([1], [42], [49151]):
        mask = proc.green_mask(ctx, 49152)
        shares.append(mask.float().mean().item())
        scalar = torch.tensor([params.is_green(ctx, t) for t in range(49152)])
        assert torch.equal(mask, scalar)
    assert all(abs(s - 0.25) < 0.01 for s in shares)


def test_processor_adds_delta_to_green_tokens_only():
    proc = WatermarkProcessor(WatermarkParams("k", delta=2.0))
    logits = torch.zeros(VOCAB)
    out = proc([7], [9, 11], logits)
    assert torch.equal(out, proc.green_mask([11], VOCAB).float() * 2.0)
    assert torch.equal(logits, torch.zeros(VOCAB))  # the input is left alone


def test_first_token_is_seeded_by_the_last_prompt_token():
    proc = WatermarkProcessor(WatermarkParams("k", context=1))
    first = proc([5, 7], [], torch.zeros(VOCAB))
    assert torch.equal(first, proc.green_mask([7], VOCAB).float() * 2.0)
    wide = WatermarkProcessor(WatermarkParams("k", context=3))
    assert torch.equal(wide([5], [], torch.zeros(VOCAB)), torch.zeros(VOCAB))  # too little context: unchanged
    assert torch.equal(wide([5], [6, 8], torch.zeros(VOCAB)), wide.green_mask([5, 6, 8], VOCAB).float() * 2.0)


@pytest.mark.parametrize("context", [1, 2, 4])
def test_detector_separates_watermarked_from_plain(context):
    params = WatermarkParams("k", context=context)
    marked = sample(200, WatermarkProcessor(params), seed=context)
    plain = sample(200, seed=context + 100)
    d = detect_ids(marked, params, prompt_ids=[1, 2, 3])
    assert d.z > 4 and d.verdict == "watermarked" and d.p_value < 1e-4
    assert detect_ids(plain, params, prompt_ids=[1, 2, 3]).verdict == "not watermarked"
    assert detect_ids(marked, WatermarkParams("other key", context=context)).verdict == "not watermarked"


def test_repeated_ngrams_count_once():
    params = WatermarkParams("k")
    green_pair = next(
        (a, b) for a in range(100) for b in range(100) if params.is_green([a], b) and params.is_green([b], a)
    )
    looping = list(green_pair) * 200  # a model stuck in a loop: 400 tokens, 2 distinct pairs
    d = detect_ids(looping, params)
    assert d.scored == 2 and d.verdict == "too short"


def test_defaults_are_the_papers(tmp_path):
    p = WatermarkParams.from_settings(Settings(data_dir=tmp_path))
    assert (p.gamma, p.delta, p.context, p.z_threshold) == (0.25, 2.0, 1, 4.0) and p.key


def test_settings_drive_both_sides(tmp_path):
    settings = Settings(
        data_dir=tmp_path, guard={"watermark_key": "bank-key", "watermark_gamma": 0.5, "watermark_delta": 4.0}
    )
    proc = watermark_processor(settings)
    assert proc.params == WatermarkParams("bank-key", 0.5, 4.0, 1, 4.0)
    marked = sample(120, proc)
    assert detect(marked, settings, prompt_ids=[1, 2, 3]).verdict == "watermarked"


def test_text_round_trip_through_the_real_tokenizer(default_gguf):
    from r1stack.engine.loader import load_tokenizer
    from r1stack.engine.store import resolve

    tok = load_tokenizer(resolve(str(default_gguf), default_gguf.parent))
    # Whole words with a leading space re-tokenise to themselves, so text and ids give the same answer.
    words = [
        i
        for i in range(1000, 20000)
        if (s := tok.decode([i])).startswith(" ") and s[1:].isalpha() and s[1:].islower()
    ]
    settings = Settings(data_dir=default_gguf.parent)
    proc = watermark_processor(settings)
    g = torch.Generator().manual_seed(3)
    ids = [words[0]]
    index = torch.tensor(words)
    for _ in range(150):
        logits = torch.full((len(tok),), -1e9)
        logits[index] = torch.randn(len(words), generator=g) * 2
        logits = proc([], ids, logits)
        ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g)))
    text = tok.decode(ids)
    d = detect(text, settings, tok)
    assert d.verdict == "watermarked", d
    assert (
        detect(
            "The quick brown fox jumps over the lazy dog. " * 3 + "It was a sunny day in the old town, "
            "and the market was full of people buying bread, fish and fresh vegetables for the week.",
            settings,
            tok,
        ).verdict
        != "watermarked"
    )
