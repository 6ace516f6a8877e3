"""The watermark experiment of the issue, shared by the acceptance test and benchmarks/guard.py: N prompts,
each generated with and without the watermark, z-scores of both, and the perplexity of both under the model
without the watermark."""

from __future__ import annotations

import math
from typing import Any

TOPICS = [
    "a lighthouse keeper",
    "the history of tea",
    "how vaccines work",
    "a robot learning to paint",
    "the water cycle",
    "a night market in Taipei",
    "why the sky is blue",
    "a chess match",
    "the first day of school",
    "black holes",
    "a recipe for dumplings",
    "the Silk Road",
    "a lost umbrella",
    "photosynthesis",
    "a mountain village in winter",
    "how bridges stay up",
    "a jazz musician",
    "the life of a bee",
    "an old library",
    "climate and oceans",
    "a train journey across Russia",
    "how a bank loan works",
    "a hospital night shift",
    "the invention of paper",
    "a football final",
    "a cat who hates rain",
    "volcanoes",
    "learning a new language",
    "the moon landing",
    "a small bakery",
    "how compilers work",
    "a desert caravan",
    "the immune system",
    "a haunted house",
    "electric cars",
    "a wedding in Shanghai",
    "the stock market",
    "a storm at sea",
    "how to plant rice",
    "a friendship between two rivals",
    "the printing press",
    "a museum at night",
    "machine learning",
    "a snowstorm",
    "a detective in Hong Kong",
    "honey bees and farming",
    "the Great Wall",
    "a violin maker",
    "sleep and dreams",
    "a spaceship repair",
]
STYLES = ["Write a short story about {}.", "Explain {} to a curious teenager.", "Write a blog post about {}."]


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": STYLES[i % len(STYLES)].format(TOPICS[i % len(TOPICS)])}]
        for i in range(n)
    ]


def perplexity(llm: Any, prompt_ids: list[list[int]], gen_ids: list[list[int]]) -> float:
    """Mean per-token perplexity of the generated tokens under the model itself, no watermark."""
    from r1stack import SamplingParams

    reqs = [{"prompt_token_ids": p + g} for p, g in zip(prompt_ids, gen_ids, strict=True)]
    outs = llm.generate(reqs, SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0))
    nll, count = 0.0, 0
    for out, p, g in zip(outs, prompt_ids, gen_ids, strict=True):
        for pos in range(len(p), len(p) + len(g)):
            nll -= out.prompt_logprobs[pos][(p + g)[pos]].logprob
            count += 1
    return math.exp(nll / count)


def run(llm: Any, settings: Any, n: int = 50, tokens: int = 200, seed: int = 0) -> dict[str, Any]:
    from r1stack import SamplingParams
    from r1stack.guard import detect_ids, watermark_processor
    from r1stack.guard.watermark import WatermarkParams

    params = WatermarkParams.from_settings(settings)
    convs = prompts(n)
    result: dict[str, Any] = {
        "prompts": n,
        "tokens": tokens,
        "gamma": params.gamma,
        "delta": params.delta,
        "context": params.context,
        "z_threshold": params.z_threshold,
    }
    for name, procs in (("plain", []), ("watermarked", [watermark_processor(settings)])):
        sp = [
            SamplingParams(
                max_tokens=tokens, min_tokens=tokens, temperature=1.0, seed=seed + i, logits_processors=procs
            )
            for i in range(n)
        ]
        outs = llm.chat(convs, sp)
        gen = [o.outputs[0].token_ids for o in outs]
        zs = [detect_ids(g, params, o.prompt_token_ids).z for g, o in zip(gen, outs, strict=True)]
        result[name] = {
            "z": [round(z, 2) for z in zs],
            "detected": sum(z > params.z_threshold for z in zs) / n,
            "mean_z": sum(zs) / n,
            "perplexity": perplexity(llm, [o.prompt_token_ids for o in outs], gen),
        }
    result["perplexity_cost"] = result["watermarked"]["perplexity"] / result["plain"]["perplexity"] - 1
    return result
