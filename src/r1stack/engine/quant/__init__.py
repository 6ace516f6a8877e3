"""Weight-only quantization: int8 per output channel, int4 group-wise, GGUF blocks kept packed, AWQ checkpoints
and the AWQ scale search that makes them."""

from r1stack.engine.quant.apply import quantize_model
from r1stack.engine.quant.formats import Int4Weights, Int8Weights
from r1stack.engine.quant.linear import Int4Linear, Int8Linear

__all__ = ["Int4Linear", "Int4Weights", "Int8Linear", "Int8Weights", "quantize_model"]
