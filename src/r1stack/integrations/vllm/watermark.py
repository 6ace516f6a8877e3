"""The r1stack watermark written to vLLM's v1 batch logits-processor interface: vLLM tells the processor which
requests joined, left or moved in its persistent batch; each step the processor biases the rows of the requests
that asked for the watermark, with guard/watermark.py's own per-sequence processor, so the detector agrees."""

from __future__ import annotations

from typing import Any

import torch

from r1stack.guard.watermark import WatermarkParams, WatermarkProcessor

try:  # inside vLLM the class must subclass vLLM's; without vLLM (r1stack's own tests) it stands alone
    from vllm.v1.sample.logits_processor import LogitsProcessor as _VllmLogitsProcessor
except ImportError:
    _VllmLogitsProcessor = object

XARG = "r1stack_watermark"  # the vllm_xargs key that switches the watermark on for one request
_ON = (True, 1, "1", "on", "true", "yes")
_OFF = (None, False, 0, "0", "off", "false", "no")

# vLLM's BatchUpdate.moved directionality: an enum member whose name is UNIDIRECTIONAL or SWAP.
_SWAP = "SWAP"


def wants_watermark(extra_args: dict[str, Any] | None) -> bool:
    """Whether a request's `vllm_xargs` (vLLM's SamplingParams.extra_args) switch the watermark on."""
    value = (extra_args or {}).get(XARG)
    if isinstance(value, str):
        value = value.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(
        f"vllm_xargs {XARG}={value!r}: give 1 to watermark this request, 0 (or leave it out) not to"
    )


def configured_params() -> WatermarkParams:
    """The watermark parameters from r1stack's configuration (r1stack.toml / R1STACK_GUARD__WATERMARK_*), the
    same the detector reads, so `r1stack guard detect` recognises what vLLM wrote."""
    from r1stack.config import get_settings

    return WatermarkParams.from_settings(get_settings())


class WatermarkLogitsProcessor(_VllmLogitsProcessor):
    """vLLM v1 `LogitsProcessor`: construct with (vllm_config, device, is_pin_memory) as vLLM does; `params`
    overrides the configured watermark (tests, embedding)."""

    def __init__(
        self,
        vllm_config: Any = None,
        device: torch.device | str = "cpu",
        is_pin_memory: bool = False,
        params: WatermarkParams | None = None,
    ) -> None:
        self.params = params or configured_params()
        self._proc = WatermarkProcessor(self.params)
        # batch row -> (prompt ids, output ids). The output list is vLLM's own, growing as tokens are sampled.
        self._rows: dict[int, tuple[list[int], list[int]]] = {}

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        # Runs in vLLM's front end: a bad switch value becomes the client's HTTP 400, not a worker error.
        wants_watermark(getattr(sampling_params, "extra_args", None))

    def is_argmax_invariant(self) -> bool:
        return False  # raising green logits changes which token is greatest, so greedy decoding needs it too

    def update_state(self, batch_update: Any) -> None:
        """Apply vLLM's batch changes in the order its interface prescribes: removed, added, moved."""
        if batch_update is None:
            return
        for row in batch_update.removed:
            self._rows.pop(row, None)
        for row, sampling_params, prompt_ids, output_ids in batch_update.added:
            # An added request may take the row of one that left without being reported removed.
            self._rows.pop(row, None)
            if wants_watermark(getattr(sampling_params, "extra_args", None)):
                self._rows[row] = (list(prompt_ids or ()), output_ids)
        for a, b, direction in batch_update.moved:
            entry_a, entry_b = self._rows.pop(a, None), self._rows.pop(b, None)
            if entry_a is not None:
                self._rows[b] = entry_a
            if entry_b is not None and getattr(direction, "name", str(direction)).endswith(_SWAP):
                self._rows[a] = entry_b

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (prompt_ids, output_ids) in self._rows.items():
            logits[row] = self._proc(prompt_ids, output_ids, logits[row])
        return logits
