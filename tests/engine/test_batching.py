"""Continuous batching changes nothing about the tokens: batch == alone, under memory pressure too; aborts free
every block; a seeded sampled request is the same alone and in a crowd."""

from __future__ import annotations

import asyncio
import random

import pytest

from r1stack import LLM, SamplingParams
from r1stack.engine.async_engine import AsyncEngine
from r1stack.engine.config import EngineArgs

N_TOKENS = 16


def _prompts(n: int) -> list[str]:
    rng = random.Random(0)
    subjects = [
        "the ocean",
        "a robot",
        "Paris",
        "长城",
        "machine learning",
        "a cat",
        "the moon",
        "Python code",
    ]
    verbs = ["Describe", "Tell me about", "Write a sentence on", "Explain", "请介绍"]
    return [f"{rng.choice(verbs)} {rng.choice(subjects)} #{i}:" for i in range(n)]


@pytest.fixture(scope="module")
def alone(llm_fp32) -> dict[str, list[int]]:
    params = SamplingParams(temperature=0, max_tokens=N_TOKENS, ignore_eos=True)
    return {p: llm_fp32.generate(p, params)[0].outputs[0].token_ids for p in _prompts(32)}


def test_32_together_equal_each_alone(llm_fp32, alone):
    params = SamplingParams(temperature=0, max_tokens=N_TOKENS, ignore_eos=True)
    outs = llm_fp32.generate(list(alone), params)
    assert [o.outputs[0].token_ids for o in outs] == list(alone.values())


def test_quarter_sized_kv_cache_preempts_and_still_matches(llm_fp32, alone, data_dir):
    engine = llm_fp32.engine
    prompts = list(alone)
    longest = max(len(engine.tokenize(p)) for p in prompts) + N_TOKENS
    blocks_per_seq = -(-longest // 16)
    quarter = len(prompts) // 4 * blocks_per_seq
    small = LLM(
        "smollm2-135m-instruct",
        dtype="float32",
        data_dir=data_dir,
        kv_cache_bytes=quarter * 16 * engine.kv_cache.bytes_per_token,
    )
    assert small.engine.block_manager.num_blocks <= quarter
    outs = small.generate(prompts, SamplingParams(temperature=0, max_tokens=N_TOKENS, ignore_eos=True))
    assert [o.outputs[0].token_ids for o in outs] == list(alone.values())
    stats = small.engine.stats()
    assert stats.num_preemptions > 0
    assert stats.num_free_blocks == stats.num_total_blocks


def test_abort_mid_generation_returns_every_block(llm_fp32):
    engine = llm_fp32.engine
    free0 = engine.block_manager.num_free_blocks
    engine.add_request(
        "to-abort", "Write a long story about a dragon.", SamplingParams(max_tokens=200, ignore_eos=True)
    )
    engine.add_request("to-keep", "Count to ten:", SamplingParams(temperature=0, max_tokens=5))
    for _ in range(4):
        engine.step()
    assert engine.block_manager.num_free_blocks < free0
    aborted = engine.abort("to-abort")
    assert aborted.outputs[0].finish_reason == "abort"
    while engine.has_unfinished():
        engine.step()
    assert engine.block_manager.num_free_blocks == free0
    assert all(b.ref_count == 0 for b in engine.block_manager.blocks)


def test_seeded_request_same_alone_and_in_batch_of_16(llm_fp32):
    seeded = SamplingParams(
        temperature=0.9, top_p=0.95, top_k=50, seed=1234, max_tokens=N_TOKENS, ignore_eos=True
    )
    prompt = "Tell me a story about a lighthouse keeper."
    solo = llm_fp32.generate(prompt, seeded)[0].outputs[0].token_ids
    others = [
        SamplingParams(temperature=1.0, max_tokens=rng_len, ignore_eos=True) for rng_len in range(8, 24)
    ]
    crowd = llm_fp32.generate(_prompts(16) + [prompt], others + [seeded])
    assert crowd[-1].outputs[0].token_ids == solo
    again = llm_fp32.generate(prompt, seeded)[0].outputs[0].token_ids
    assert again == solo


def test_async_engine_streams_and_client_close_aborts(data_dir):
    async def main():
        engine = AsyncEngine(
            EngineArgs(
                model="smollm2-135m-instruct", dtype="float32", data_dir=data_dir, kv_cache_bytes=64 << 20
            )
        )
        await engine.start()
        free0 = engine.engine.block_manager.num_free_blocks
        texts = []
        async for out in engine.generate(
            "中国的首都是北京。请介绍北京的历史。", SamplingParams(temperature=0, max_tokens=30), "a"
        ):
            texts.append(out.outputs[0].text)
        # cumulative text only grows, and never shows half a character
        assert all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
        assert all("\ufffd" not in t for t in texts)
        gen = engine.generate("Write a very long essay.", SamplingParams(max_tokens=500), "b")
        for _ in range(3):
            await gen.__anext__()
        await gen.aclose()  # the client went away
        for _ in range(100):
            await asyncio.sleep(0.05)
            if engine.stats().num_free_blocks == free0 and not engine.engine.has_unfinished():
                break
        assert engine.stats().num_free_blocks == free0
        await engine.shutdown()

    asyncio.run(main())
