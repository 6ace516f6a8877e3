"""Sampler and output features: stop strings, stop tokens, n > 1, logprobs, prompt logprobs, penalties,
logits processors."""

from __future__ import annotations

import math

import torch

from r1stack import SamplingParams


def test_stop_string_cuts_text_and_reports_it(llm_fp32):
    base = llm_fp32.generate("The capital of France is", SamplingParams(temperature=0, max_tokens=20))[0]
    text = base.outputs[0].text
    stop = text.strip().split()[1][:3]  # a piece from the middle of what greedy would say
    out = llm_fp32.generate(
        "The capital of France is", SamplingParams(temperature=0, max_tokens=20, stop=[stop])
    )[0]
    c = out.outputs[0]
    assert c.finish_reason == "stop" and c.stop_reason == stop
    assert stop not in c.text and text.startswith(c.text)


def test_stop_token_ids_and_max_tokens(llm_fp32):
    base = llm_fp32.generate("def add(a, b):", SamplingParams(temperature=0, max_tokens=8))[0].outputs[0]
    assert base.finish_reason == "length" and len(base.token_ids) == 8
    stop_id = base.token_ids[3]
    out = llm_fp32.generate(
        "def add(a, b):", SamplingParams(temperature=0, max_tokens=8, stop_token_ids=[stop_id])
    )[0].outputs[0]
    assert out.finish_reason == "stop" and out.stop_reason == stop_id
    assert out.token_ids == base.token_ids[: base.token_ids.index(stop_id) + 1]


def test_n_greater_than_one_and_logprobs(llm_fp32):
    out = llm_fp32.generate("Hello", SamplingParams(n=3, temperature=1.0, seed=7, max_tokens=6, logprobs=2))[
        0
    ]
    assert [c.index for c in out.outputs] == [0, 1, 2]
    for c in out.outputs:
        assert len(c.logprobs) == len(c.token_ids)
        for tok, pos in zip(c.token_ids, c.logprobs, strict=True):
            assert tok in pos and pos[tok].logprob <= 0
            top = sorted((lp for lp in pos.values() if lp.rank <= 2), key=lambda lp: lp.rank)
            assert top[0].rank == 1
        assert math.isclose(
            c.cumulative_logprob,
            sum(p[t].logprob for t, p in zip(c.token_ids, c.logprobs, strict=True)),
            rel_tol=1e-5,
        )


def test_prompt_logprobs_score_each_prompt_token(llm_fp32):
    out = llm_fp32.generate(
        "The cat sat on the mat", SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0)
    )[0]
    ids = out.prompt_token_ids
    assert out.prompt_logprobs[0] is None and len(out.prompt_logprobs) == len(ids)
    for tok, pos in zip(ids[1:], out.prompt_logprobs[1:], strict=True):
        assert tok in pos and pos[tok].logprob <= 0


def test_logits_processor_hook_steers_output(llm_fp32):
    tokenizer = llm_fp32.get_tokenizer()
    target = tokenizer.encode(" banana", add_special_tokens=False)[0]

    def force(prompt_ids, output_ids, logits: torch.Tensor) -> torch.Tensor:
        logits[target] += 1000
        return logits

    out = llm_fp32.generate(
        "My favourite fruit is", SamplingParams(temperature=0, max_tokens=3, logits_processors=[force])
    )[0].outputs[0]
    assert out.token_ids == [target] * 3


def test_repetition_penalty_changes_greedy_repetition(llm_fp32):
    prompt = "one one one one one one one"
    plain = llm_fp32.generate(prompt, SamplingParams(temperature=0, max_tokens=10))[0].outputs[0].token_ids
    penal = (
        llm_fp32.generate(
            prompt,
            SamplingParams(temperature=0, max_tokens=10, repetition_penalty=2.0, frequency_penalty=1.0),
        )[0]
        .outputs[0]
        .token_ids
    )
    assert plain != penal
    assert max(penal.count(t) for t in set(penal)) <= max(plain.count(t) for t in set(plain))


def test_prefix_cache_hits_on_a_shared_system_prompt(llm_fp32):
    engine = llm_fp32.engine
    system = "You are a careful assistant for a bank. Answer briefly and cite the policy. " * 4
    before = engine.stats().prefix_cache_hits
    llm_fp32.generate(system + "Question A?", SamplingParams(temperature=0, max_tokens=2))
    llm_fp32.generate(system + "Question B?", SamplingParams(temperature=0, max_tokens=2))
    assert engine.stats().prefix_cache_hits - before >= 16
