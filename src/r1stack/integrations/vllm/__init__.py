"""r1stack inside vLLM: the watermark as a vLLM v1 logits processor.

    vllm serve MODEL --logits-processors r1stack.integrations.vllm:WatermarkLogitsProcessor

and per request `"vllm_xargs": {"r1stack_watermark": 1}`. Importable without vLLM installed."""

from r1stack.integrations.vllm.watermark import XARG, WatermarkLogitsProcessor, wants_watermark

__all__ = ["XARG", "WatermarkLogitsProcessor", "wants_watermark"]
