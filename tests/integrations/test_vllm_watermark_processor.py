"""The vLLM watermark logits processor without vLLM: driven through vLLM's batch-update protocol (requests
added, removed, moved and swapped between rows) over the default model's real logits, it must bias exactly the
rows that asked for it, exactly as guard/watermark.py's processor does, so `r1stack guard detect` recognises
what it wrote and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

import pytest
import torch

from r1stack import SamplingParams
from r1stack.config import Settings
from r1stack.guard import WatermarkProcessor, detect, detect_ids
from r1stack.guard.watermark import WatermarkParams
from r1stack.integrations.vllm import XARG, WatermarkLogitsProcessor, wants_watermark

PARAMS = WatermarkParams("vllm-test-key", gamma=0.25, delta=2.0, context=1)
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator keeps food cold.",
    "List some things to pack for a week of hiking in the mountains.",
]


# vLLM's own batch-update records (vllm/v1/sample/logits_processor/interface.py), as plain data: what its
# model runner hands every logits processor before each step.
class MoveDirectionality(Enum):
    UNIDIRECTIONAL = auto()
    SWAP = auto()


@dataclass(frozen=True)
class BatchUpdate:
    batch_size: int
    removed: list = field(default_factory=list)
    added: list = field(default_factory=list)
    moved: list = field(default_factory=list)


@dataclass
class VllmSamplingParams:
    extra_args: dict | None = None


class Recorder:
    """Keeps every step's real logits of one sequence as the engine computed them (unchanged)."""

    def __init__(self):
        self.steps: list[tuple[list[int], list[int], torch.Tensor]] = []

    def __call__(self, prompt_ids, output_ids, logits):
        self.steps.append((list(prompt_ids), list(output_ids), logits.detach().clone()))
        return logits


@pytest.fixture(scope="module")
def recorded(llm_fp32):
    """Real per-step logits of three sequences of the default model (greedy, 6 steps each)."""
    recs = [Recorder() for _ in PROMPTS]
    params = [
        SamplingParams(temperature=0, max_tokens=6, ignore_eos=True, logits_processors=[r]) for r in recs
    ]
    llm_fp32.generate(PROMPTS, params)
    assert all(len(r.steps) == 6 for r in recs)
    return recs


def test_switch_values():
    assert wants_watermark({XARG: 1}) and wants_watermark({XARG: "on"}) and wants_watermark({XARG: True})
    assert not wants_watermark(None) and not wants_watermark({}) and not wants_watermark({XARG: 0})
    with pytest.raises(ValueError, match=XARG):
        WatermarkLogitsProcessor.validate_params(VllmSamplingParams({XARG: "maybe"}))
    WatermarkLogitsProcessor.validate_params(VllmSamplingParams({XARG: 1}))
    assert WatermarkLogitsProcessor(params=PARAMS).is_argmax_invariant() is False


def test_batch_rows_follow_vllms_batch_updates(recorded):
    """Rows get the guard processor's exact bias while their request asked for it, wherever vLLM moves them;
    rows of requests that did not ask, and rows freed by removed requests, are left alone."""
    guard = WatermarkProcessor(PARAMS)
    lp = WatermarkLogitsProcessor(params=PARAMS)
    on, off = VllmSamplingParams({XARG: 1}), VllmSamplingParams({"other": 3})
    outs = [[] for _ in PROMPTS]  # vLLM's live output lists: the processor must read them by reference
    prompts = [recorded[i].steps[0][0] for i in range(3)]
    # seq 0 at row 0 (watermarked), seq 1 at row 1 (not), seq 2 at row 2 (watermarked)
    rows = {0: 0, 1: 1, 2: 2}
    lp.update_state(
        BatchUpdate(
            3,
            added=[(0, on, prompts[0], outs[0]), (1, off, prompts[1], outs[1]), (2, on, prompts[2], outs[2])],
        )
    )
    marked = {0, 2}
    plan = {
        2: BatchUpdate(3, moved=[(0, 2, MoveDirectionality.SWAP)]),  # seq 0 <-> seq 2
        3: BatchUpdate(2, removed=[1], moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)]),  # seq 1 leaves
        4: BatchUpdate(2),  # nothing changes
        5: None,
    }
    for step in range(6):
        if step in plan:
            lp.update_state(plan[step])
            if step == 2:
                rows[0], rows[2] = 2, 0
            if step == 3:
                del rows[1]
                rows[0] = 1
        batch = torch.zeros(max(rows.values()) + 1, recorded[0].steps[0][2].numel())
        for seq, row in rows.items():
            prompt, out, logits = recorded[seq].steps[step]
            assert out == outs[seq]
            batch[row] = logits
        before = batch.clone()
        result = lp.apply(batch)
        for seq, row in rows.items():
            prompt, out, logits = recorded[seq].steps[step]
            if seq in marked:
                expected = guard(prompt, out, logits)
                assert torch.equal(result[row], expected), (step, seq)
                assert not torch.equal(result[row], before[row])
            else:
                assert torch.equal(result[row], before[row]), (step, seq)
        for seq in rows:  # vLLM appends each sampled token to the live list
            nxt = recorded[seq].steps[step + 1][1] if step + 1 < 6 else None
            if nxt is not None:
                outs[seq].append(nxt[-1])


def test_a_row_reused_by_an_unmarked_request_is_not_marked(recorded):
    lp = WatermarkLogitsProcessor(params=PARAMS)
    prompt, out, logits = recorded[0].steps[0]
    lp.update_state(BatchUpdate(1, added=[(0, VllmSamplingParams({XARG: 1}), prompt, [])]))
    assert not torch.equal(lp.apply(logits.unsqueeze(0).clone())[0], logits)
    lp.update_state(
        BatchUpdate(1, added=[(0, VllmSamplingParams(None), prompt, [])])
    )  # same row, new request
    assert torch.equal(lp.apply(logits.unsqueeze(0).clone())[0], logits)


class ThroughVllmProcessor:
    """Our engine's per-sequence hook driving the vLLM processor as vLLM's runner would: one request added at
    row 0 with a live output list (vLLM appends to it; our engine hands out copies, so we mirror them into it),
    then `apply` on a one-row batch each step."""

    def __init__(self, params: WatermarkParams, extra_args: dict | None):
        self.lp = WatermarkLogitsProcessor(params=params)
        self.extra_args = extra_args
        self.live: list[int] | None = None

    def __call__(self, prompt_ids, output_ids, logits):
        if self.live is None:
            self.live = []
            sp = VllmSamplingParams(self.extra_args)
            self.lp.update_state(BatchUpdate(1, added=[(0, sp, list(prompt_ids), self.live)]))
        self.live[:] = output_ids
        return self.lp.apply(logits.unsqueeze(0))[0]


def test_generation_through_the_processor_is_detected_and_matches_the_native_watermark(llm_fp32, tmp_path):
    """Sampled text (temperature 1, fixed seed) through the vLLM processor: token for token what the native
    watermark writes, detected at z > 4 from its text with the configured parameters; without it, not."""
    settings = Settings(
        data_dir=tmp_path,
        guard={"watermark_key": PARAMS.key, "watermark_gamma": PARAMS.gamma, "watermark_delta": PARAMS.delta},
    )
    assert WatermarkParams.from_settings(settings) == PARAMS

    def run(proc) -> list[int]:
        sp = SamplingParams(temperature=1.0, seed=7, max_tokens=80, ignore_eos=True, logits_processors=proc)
        return llm_fp32.generate([PROMPTS[0]], sp)[0].outputs[0].token_ids

    via_vllm = run([ThroughVllmProcessor(PARAMS, {XARG: 1})])
    native = run([WatermarkProcessor(PARAMS)])
    switched_off = run([ThroughVllmProcessor(PARAMS, {XARG: 0})])
    plain = run([])
    assert via_vllm == native
    assert switched_off == plain and plain != via_vllm

    tokenizer = llm_fp32.engine.tokenizer
    marked = detect(tokenizer.decode(via_vllm), settings, tokenizer)
    unmarked = detect(tokenizer.decode(plain), settings, tokenizer)
    assert marked.z > 4 and marked.verdict == "watermarked", marked
    assert unmarked.z < 4 and unmarked.verdict == "not watermarked", unmarked
    assert detect_ids(via_vllm, WatermarkParams("another key")).verdict == "not watermarked"


def test_imports_without_vllm_and_the_gateway_sends_the_same_switch(tmp_path):
    import importlib.util

    from r1stack.upstream.backend import WATERMARK_XARG, UpstreamConfig

    if importlib.util.find_spec("vllm") is None:  # r1stack's own venv: the class stands alone
        assert WatermarkLogitsProcessor.__mro__[1] is object
    assert WATERMARK_XARG == XARG
    on = Settings(
        data_dir=tmp_path, guard={"watermark": True}, server={"upstreams": ["http://127.0.0.1:1/v1"]}
    )
    off = Settings(data_dir=tmp_path, server={"upstreams": ["http://127.0.0.1:1/v1"]})
    assert UpstreamConfig.from_settings(on).watermark and not UpstreamConfig.from_settings(off).watermark
