"""LLMEngine: requests in, one scheduled step at a time, RequestOutputs out. Not thread-safe: one owner drives it
(the offline LLM directly, or AsyncEngine's step thread)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from r1stack.engine import cpp_build, cpu_attention, cpu_decode, cpu_fused, packed_linear, store
from r1stack.engine.block_manager import BlockManager
from r1stack.engine.compiled import DecodeStep
from r1stack.engine.config import EngineArgs
from r1stack.engine.detokenizer import IncrementalDetokenizer, find_stop, held_back
from r1stack.engine.kv_cache import KVCache, plan_num_blocks
from r1stack.engine.loader import load_model
from r1stack.engine.model_runner import ModelRunner
from r1stack.engine.outputs import CompletionOutput, RequestMetrics, RequestOutput
from r1stack.engine.sampler import Sampler, position_logprobs
from r1stack.engine.sampling_params import SamplingParams
from r1stack.engine.scheduler import Scheduler
from r1stack.engine.sequence import Sequence
from r1stack.errors import UserError

log = logging.getLogger("r1stack.engine")


@dataclass
class ModelInfo:
    name: str
    path: Path
    format: str
    architecture: str
    dtype: str
    device: str
    max_model_len: int
    vocab_size: int
    eos_token_ids: list[int]
    is_reasoning_model: bool
    generation_defaults: dict = field(default_factory=dict)


@dataclass
class EngineStats:
    num_running: int
    num_waiting: int
    num_free_blocks: int
    num_total_blocks: int
    kv_cache_usage: float
    prefix_cache_queries: int
    prefix_cache_hits: int
    num_preemptions: int
    prompt_tokens_total: int
    generation_tokens_total: int
    # MoE models: tokens routed to each expert since start-up, per MoE layer index (routing imbalance)
    expert_load: dict[int, list[int]] | None = None


@dataclass(eq=False)
class Request:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    seqs: list[Sequence]
    metrics: RequestMetrics

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.seqs)


class LLMEngine:
    def __init__(self, args: EngineArgs):
        if args.data_dir is None:
            from r1stack.config import get_settings

            args.data_dir = get_settings().data_dir
        self.args = args
        if not args.cpu_kernels and not cpp_build.disable():
            log.warning(
                "cpu_kernels=false ignored: another engine in this process already uses the C++ kernels"
            )
        src = store.resolve(args.model, args.data_dir)
        self.device = args.resolve_device()
        self.dtype = args.resolve_dtype(self.device)
        torch.manual_seed(args.seed)
        if self.device.type == "cpu" and args.threads:
            torch.set_num_threads(args.threads)
        loaded = load_model(src, self.device, self.dtype, args.quantization)
        self.model, self.config, self.tokenizer = loaded.model, loaded.config, loaded.tokenizer
        cfg = self.config
        num_blocks = plan_num_blocks(cfg, args, self.dtype, self.device)
        self.kv_cache = KVCache(cfg, num_blocks, args.block_size, self.dtype, self.device)
        limit = args.max_model_len or cfg.max_position_embeddings
        if args.max_model_len and args.max_model_len > cfg.max_position_embeddings:
            raise UserError(
                f"max_model_len {args.max_model_len} exceeds the model's "
                f"{cfg.max_position_embeddings} positions; lower it"
            )
        # One sequence must always fit, or preemption could never make progress.
        self.max_model_len = min(limit, self.kv_cache.num_slots)
        self.model.rotary.build(self.device, self.max_model_len)
        log.info(
            "KV cache: %d blocks x %d tokens = %d tokens (%.2f GiB, %.0f bytes/token); max_model_len %d",
            num_blocks,
            args.block_size,
            self.kv_cache.num_slots,
            self.kv_cache.nbytes / 2**30,
            self.kv_cache.bytes_per_token,
            self.max_model_len,
        )
        self.block_manager = BlockManager(num_blocks, args.block_size, args.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, args.max_num_seqs, args.max_num_batched_tokens)
        # Compiled decode step (and CUDA graphs): the default on CUDA; on CPU only when asked for, since on a
        # small CPU the compile (tens of seconds) outweighs its gain for all but long-running work.
        eager = args.enforce_eager if args.enforce_eager is not None else self.device.type == "cpu"
        decode_step = None if eager else DecodeStep(self.device, args.data_dir)
        self.runner = ModelRunner(self.model, self.kv_cache, self.device, decode_step, args.max_num_seqs)
        if decode_step is None and packed_linear.can_pack(self.device, self.dtype):
            log.info("pre-packed %d linear weights for oneDNN", packed_linear.pack_linears(self.model))
        if decode_step is None and any(getattr(m, "kernel", None) == "vnni" for m in self.model.modules()):
            # Quantized onto the VNNI matmuls, a decode step is mostly per-op overhead: one C++ call per
            # elementwise kernel instead of ~35 small ops a layer (float models keep transformers' exact ops).
            if cpu_fused.available():
                log.info("fused CPU kernels on %d modules", cpu_fused.use(self.model))
            if self.runner.decode_by_blocks and cpu_decode.applies(self.model):
                self.runner.decode_step = cpu_decode.decode_layer  # decode-only steps without module overhead
        uses_kernel = decode_step is not None or self.dtype != torch.float32  # eager fp32 keeps SDPA
        if self.device.type == "cpu" and self.runner.decode_by_blocks and uses_kernel:
            # Built (first start on a machine, about a minute) or loaded now, not in the first request's time.
            cpu_attention.available()
        if decode_step is not None and self.runner.decode_step is not None:
            decode_step.compile(self.model, args.block_size)
        eos = set(cfg.eos_token_ids)
        if self.tokenizer.eos_token_id is not None:
            eos.add(self.tokenizer.eos_token_id)
        self.eos_token_ids = sorted(eos)
        self.sampler = Sampler(self.eos_token_ids, seed=args.seed)
        self.requests: dict[str, Request] = {}
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.model_info = ModelInfo(
            name=src.name,
            path=src.path,
            format=src.format,
            architecture=cfg.architecture,
            dtype=str(self.dtype).removeprefix("torch."),
            device=self.device.type,
            max_model_len=self.max_model_len,
            vocab_size=cfg.vocab_size,
            eos_token_ids=self.eos_token_ids,
            is_reasoning_model=src.reasoning,
            generation_defaults=loaded.generation_defaults,
        )

    # ---- requests -------------------------------------------------------------------------------------------
    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]

    def add_request(
        self,
        request_id: str,
        prompt: str | None,
        params: SamplingParams,
        prompt_token_ids: list[int] | None = None,
        arrival_time: float | None = None,
    ) -> None:
        if request_id in self.requests:
            raise UserError(f"request id {request_id!r} is already in use")
        ids = list(prompt_token_ids) if prompt_token_ids is not None else self.tokenize(prompt or "")
        self.check_prompt(ids)
        room = self.max_model_len - len(ids)
        if params.max_tokens is None or params.max_tokens > room:
            # Generation simply ends at the context limit (finish_reason "length"); servers check earlier.
            params = _replace(params, max_tokens=room, min_tokens=min(params.min_tokens, room))
        seqs = []
        for i in range(params.n):
            gen = None
            if params.seed is not None:
                gen = torch.Generator(device=self.device).manual_seed(params.seed + i)
            s = Sequence(request_id, i, ids, params, generator=gen)
            s.detok = IncrementalDetokenizer(self.tokenizer, ids, params.skip_special_tokens)
            if params.prompt_logprobs is not None:
                s.prompt_logprobs = [None]
            seqs.append(s)
            self.scheduler.add(s)
        self.requests[request_id] = Request(
            request_id, prompt, ids, params, seqs, RequestMetrics(arrival_time or time.time())
        )
        self.prompt_tokens_total += len(ids)

    def check_prompt(self, ids: list[int]) -> None:
        if not ids:
            raise UserError("the prompt is empty; send at least one token")
        if len(ids) >= self.max_model_len:
            raise UserError(
                f"the prompt has {len(ids)} tokens but the context holds {self.max_model_len} "
                f"(prompt plus at least one generated token); shorten the prompt"
            )
        bad = [t for t in ids if not 0 <= t < self.config.vocab_size]
        if bad:
            raise UserError(f"token id {bad[0]} is outside the vocabulary (0..{self.config.vocab_size - 1})")

    def abort(self, request_id: str) -> RequestOutput | None:
        req = self.requests.pop(request_id, None)
        if req is None:
            return None
        for s in req.seqs:
            if not s.finished:
                self.scheduler.finish(s)
                s.finish_reason = "abort"
        return self._output(req)

    def has_unfinished(self) -> bool:
        return bool(self.requests)

    # ---- the step -------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> list[RequestOutput]:
        batch = self.scheduler.schedule()
        if not batch:
            return []
        now = time.time()
        seqs, logits, prompt_logits = self.runner.run(batch)
        for s, n in batch:
            req = self.requests[s.request_id]
            req.metrics.first_scheduled_time = req.metrics.first_scheduled_time or now
            if s in prompt_logits:
                self._record_prompt_logprobs(s, prompt_logits[s])
            s.num_computed += n
            self.block_manager.commit(s)
        touched: dict[str, Request] = {}
        if seqs:
            tokens, lps = self.sampler(seqs, logits)
            for s, t, lp in zip(seqs, tokens, lps, strict=True):
                self._append(s, t, lp)
                touched[s.request_id] = self.requests[s.request_id]
        outputs = []
        now = time.time()
        for req in touched.values():
            req.metrics.first_token_time = req.metrics.first_token_time or now
            if req.finished:
                req.metrics.finished_time = now
                del self.requests[req.request_id]
            outputs.append(self._output(req))
        return outputs

    def _record_prompt_logprobs(self, s: Sequence, logits: torch.Tensor) -> None:
        lps = torch.log_softmax(logits, dim=-1)
        k = s.params.prompt_logprobs
        for j in range(logits.shape[0]):
            target = s.num_computed + j + 1  # row j predicts the token after its position
            if target < s.num_prompt_tokens and target == len(s.prompt_logprobs):
                s.prompt_logprobs.append(position_logprobs(lps[j], s.prompt_token_ids[target], k))

    def _append(self, s: Sequence, token: int, lp) -> None:
        p = s.params
        s.tokens.append(token)
        self.generation_tokens_total += 1
        if lp is not None:
            s.logprobs.append(lp)
            s.cumulative_logprob += lp[token].logprob
        n_out = s.num_output_tokens
        if token in p.stop_token_ids and n_out > p.min_tokens:
            s.finish_reason, s.stop_reason = "stop", token
        elif not p.ignore_eos and token in self.eos_token_ids and n_out > p.min_tokens:
            s.finish_reason = "stop"
        else:
            delta = s.detok.add(token)
            s.decoded += delta
            if p.stop and delta and n_out > p.min_tokens:
                hit = find_stop(s.decoded, len(delta), p.stop)
                if hit:
                    i, stop = hit
                    s.decoded = s.decoded[: i + len(stop)] if p.include_stop_str_in_output else s.decoded[:i]
                    s.finish_reason, s.stop_reason = "stop", stop
            if s.finish_reason is None and (n_out >= p.max_tokens or s.num_tokens >= self.max_model_len):
                s.finish_reason = "length"
        decoded = s.decoded
        if s.finish_reason is not None:
            s.text = decoded
            self.scheduler.finish(s)
        elif p.stop:
            s.text = decoded[: len(decoded) - held_back(decoded, p.stop)]
        else:
            s.text = decoded

    def _output(self, req: Request) -> RequestOutput:
        outs = [
            CompletionOutput(
                index=s.index,
                text=s.text,
                token_ids=s.output_token_ids,
                cumulative_logprob=s.cumulative_logprob if s.logprobs is not None else None,
                logprobs=list(s.logprobs) if s.logprobs is not None else None,
                finish_reason=s.finish_reason,
                stop_reason=s.stop_reason,
            )
            for s in req.seqs
        ]
        first = req.seqs[0]
        return RequestOutput(
            request_id=req.request_id,
            prompt=req.prompt,
            prompt_token_ids=req.prompt_token_ids,
            outputs=outs,
            finished=req.finished,
            prompt_logprobs=first.prompt_logprobs,
            metrics=req.metrics,
            num_cached_tokens=first.num_cached_hit,
        )

    def stats(self) -> EngineStats:
        bm = self.block_manager
        used = bm.num_blocks - bm.num_free_blocks
        return EngineStats(
            num_running=len(self.scheduler.running),
            num_waiting=len(self.scheduler.waiting),
            num_free_blocks=bm.num_free_blocks,
            num_total_blocks=bm.num_blocks,
            kv_cache_usage=used / bm.num_blocks,
            prefix_cache_queries=bm.prefix_queries,
            prefix_cache_hits=bm.prefix_hits,
            num_preemptions=self.scheduler.num_preemptions,
            prompt_tokens_total=self.prompt_tokens_total,
            generation_tokens_total=self.generation_tokens_total,
            expert_load=self._expert_load(),
        )

    def _expert_load(self) -> dict[int, list[int]] | None:
        if not hasattr(self.model, "expert_load"):
            return None
        return dict(zip(self.model.moe_layers(), self.model.expert_load().tolist(), strict=True))


def _replace(params: SamplingParams, **changes) -> SamplingParams:
    from dataclasses import replace

    return replace(params, **changes)
