"""Acceptance: with the default model on r1stack's own engine, 200-token generations with the watermark are
detected at z > 4 for >= 95% of 50 prompts, without it for <= 1%; the perplexity cost is printed."""

import json

import pytest
import watermark_eval

from r1stack.config import Settings


@pytest.mark.slow
def test_watermark_detection_rates(data_dir, capsys):
    from r1stack import LLM

    # Prefix caching off: the engine records no prompt logprobs for cached positions, and perplexity needs them.
    llm = LLM("smollm2-135m-instruct", data_dir=data_dir, enable_prefix_caching=False)
    result = watermark_eval.run(llm, Settings(data_dir=data_dir), n=50, tokens=200)
    with capsys.disabled():
        summary = {k: v for k, v in result.items() if k not in ("plain", "watermarked")}
        for name in ("plain", "watermarked"):
            summary[name] = {k: v for k, v in result[name].items() if k != "z"}
        print("\nwatermark acceptance:", json.dumps(summary))
    assert result["watermarked"]["detected"] >= 0.95, result["watermarked"]["z"]
    assert result["plain"]["detected"] <= 0.01, result["plain"]["z"]
