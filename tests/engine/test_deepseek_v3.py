"""DeepSeek-V3 (R1's architecture) against transformers' DeepseekV3ForCausalLM on tiny random checkpoints written
here: MLA over the paged latent cache (absorbed and expanded decode), group-limited sigmoid routing with the
correction bias, YaRN rope, dense-then-MoE layers, FP8 block-scaled weights, expert load counters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from r1stack import LLM, SamplingParams
from r1stack.engine.attention import AttentionMetadata, PrefillSpan
from r1stack.engine.config import ModelConfig
from r1stack.engine.fp8 import FP8_DTYPE, dequantize_blocks, quantize_blocks
from r1stack.errors import UserError

VOCAB = 96
PROMPTS = [[5, 17, 33, 2, 71, 9], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 12, 13], [88, 3]]
N_NEW = 32


def _tiny_config(**overrides):
    from transformers import DeepseekV3Config

    kw = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=32,
        num_hidden_layers=3,
        first_k_dense_replace=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_routed_experts=8,
        n_shared_experts=1,
        num_experts_per_tok=2,
        n_group=4,
        topk_group=2,
        routed_scaling_factor=2.5,
        q_lora_rank=32,
        kv_lora_rank=16,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        v_head_dim=16,
        max_position_embeddings=256,
        initializer_range=0.1,
        tie_word_embeddings=False,
        # YaRN as R1 ships it (factor 40 over 4096), scaled down to this model's positions.
        rope_scaling={
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 64,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
        },
        eos_token_id=VOCAB - 1,
        bos_token_id=0,
    )
    kw.update(overrides)
    return DeepseekV3Config(**kw)


def _tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"w{i}": i for i in range(VOCAB - 2)}
    words.update({"<unk>": VOCAB - 2, "<eos>": VOCAB - 1})
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>").save_pretrained(path)


def _reference(cfg, seed: int = 0):
    from transformers import DeepseekV3ForCausalLM

    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(cfg).eval()
    with torch.no_grad():  # a non-zero correction bias, so that choosing and weighting differ as in R1
        for layer in model.model.layers[cfg.first_k_dense_replace :]:
            layer.mlp.gate.e_score_correction_bias.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-deepseek-v3")
    ref = _reference(_tiny_config())
    ref.save_pretrained(path, safe_serialization=True)
    _tokenizer(path)
    return path, ref


@pytest.fixture(scope="module")
def llm(tiny):
    return LLM(
        str(tiny[0]), dtype="float32", device="cpu", kv_cache_bytes=1 << 20, enable_prefix_caching=False
    )


def _hf_greedy(ref, prompt: list[int], n: int = N_NEW) -> list[int]:
    with torch.inference_mode():
        ids = torch.tensor([prompt])  # an explicit mask: no prompt token may be taken for padding
        out = ref.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=VOCAB - 2,
        )
    return out[0, len(prompt) :].tolist()


def _full_forward(llm: LLM, ids: list[int]) -> torch.Tensor:
    """Logits of every position from one prefill of the whole sequence: nothing is read from the cache."""
    model, n = llm.engine.model, len(ids)
    meta = AttentionMetadata(
        slot_mapping=torch.arange(n),
        num_decode=0,
        decode_slots=None,
        decode_mask=None,
        prefills=[PrefillSpan(0, n, 0, None)],
    )
    with torch.inference_mode():
        hidden = model(torch.tensor(ids), torch.arange(n), llm.engine.kv_cache.layers(), meta)
        return model.compute_logits(hidden)


def _greedy(llm: LLM, prompts=PROMPTS) -> list[list[int]]:
    params = SamplingParams(temperature=0, max_tokens=N_NEW, min_tokens=N_NEW, ignore_eos=True)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
    return [o.outputs[0].token_ids for o in outs]


def test_logits_match_transformers(tiny, llm):
    _, ref = tiny
    ids = PROMPTS[1] + PROMPTS[0]
    with torch.inference_mode():
        want = ref(torch.tensor([ids])).logits[0]
    got = _full_forward(llm, ids)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_greedy_matches_transformers_with_paged_latent_cache(tiny, llm):
    _, ref = tiny
    want = [_hf_greedy(ref, p) for p in PROMPTS]
    assert _greedy(llm) == want  # batched decode, weight absorption over the latent cache
    layers = [layer.self_attn for layer in llm.engine.model.layers]
    try:
        for attn in layers:
            attn.absorb = False  # decode expands the cached latent to per-head K/V instead
        assert _greedy(llm) == want
    finally:
        for attn in layers:
            attn.absorb = True


def test_greedy_matches_transformers_without_the_cache(tiny, llm):
    _, ref = tiny
    for prompt in PROMPTS[:2]:
        ids = list(prompt)
        for _ in range(N_NEW):
            ids.append(int(_full_forward(llm, ids)[-1].argmax()))
        assert ids[len(prompt) :] == _hf_greedy(ref, prompt)


def test_chunked_prefill_and_prefix_cache_read_the_latent_cache(tiny):
    """Prompts longer than the token budget are prefilled in chunks that attend over cached latents; a second
    request sharing a block-aligned prefix starts from cached blocks."""
    path, ref = tiny
    llm = LLM(
        str(path),
        dtype="float32",
        device="cpu",
        kv_cache_bytes=1 << 20,
        block_size=4,
        max_num_batched_tokens=8,
    )
    long = [(7 * i + 3) % (VOCAB - 2) for i in range(21)]
    assert _greedy(llm, [long]) == [_hf_greedy(ref, long)]
    shared = long[:16] + [1, 2, 3]
    assert _greedy(llm, [shared]) == [_hf_greedy(ref, shared)]
    assert llm.engine.stats().prefix_cache_hits >= 16


def test_router_matches_transformers_group_limited_topk():
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    from r1stack.engine.models.moe import Router

    cfg = _tiny_config(n_routed_experts=16, n_group=4, topk_group=2, num_experts_per_tok=4)
    torch.manual_seed(1)
    theirs = DeepseekV3TopkRouter(cfg)
    with torch.no_grad():
        theirs.weight.normal_(0, 0.3)
        theirs.e_score_correction_bias.normal_(0, 0.2)
    ours = Router(cfg.hidden_size, ModelConfig.from_hf(cfg).moe)
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
        ours.e_score_correction_bias.copy_(theirs.e_score_correction_bias)
    x = torch.randn(200, cfg.hidden_size)
    _, w_ref, ids_ref = theirs(x)
    w, ids = ours(x)
    ids_ref, order_ref = ids_ref.sort(dim=-1)
    ids, order = ids.sort(dim=-1)
    assert torch.equal(ids, ids_ref)
    torch.testing.assert_close(w.gather(1, order), w_ref.gather(1, order_ref))
    # group limiting is on: every token's experts lie in at most topk_group groups
    assert (ids // 4).unique_consecutive(dim=-1).shape[-1] <= 4
    assert all(len(set((row // 4).tolist())) <= 2 for row in ids)


def test_expert_load_counts_add_up(tiny):
    path, _ = tiny
    llm = LLM(str(path), dtype="float32", device="cpu", kv_cache_bytes=1 << 20, enable_prefix_caching=False)
    model = llm.engine.model
    assert model.expert_load().sum() == 0
    _greedy(llm, PROMPTS)
    forwarded = sum(len(p) + N_NEW - 1 for p in PROMPTS)  # the last sampled token is never fed back
    k = model.cfg.moe.num_experts_per_tok
    load = model.expert_load()
    assert load.shape == (2, 8)
    assert load.sum(dim=1).tolist() == [forwarded * k] * 2
    # the last step decoded one token for each prompt
    assert model.last_expert_load().sum(dim=1).tolist() == [len(PROMPTS) * k] * 2


def test_kv_bytes_per_token_are_the_latent():
    from transformers import DeepseekV3Config

    r1 = ModelConfig.from_hf(DeepseekV3Config())  # its defaults are the published 671B V3/R1 architecture
    assert (r1.num_layers, r1.num_heads, r1.mla.kv_lora_rank, r1.mla.qk_rope_head_dim) == (61, 128, 512, 64)
    assert r1.kv_bytes_per_token(torch.bfloat16) == 61 * (512 + 64) * 2 == 70272
    assert r1.mha_kv_bytes_per_token(torch.bfloat16) == 61 * 128 * (128 + 64 + 128) * 2


def test_engine_allocates_the_latent_only(llm):
    kv = llm.engine.kv_cache
    assert kv.bytes_per_token == 3 * (16 + 8) * 4
    assert kv.bytes_per_token == llm.engine.config.kv_bytes_per_token(torch.float32)
    assert llm.engine.config.mha_kv_bytes_per_token(torch.float32) == 3 * 4 * (16 + 8 + 16) * 4


def test_fp8_blocks_round_trip():
    torch.manual_seed(0)
    w = torch.randn(300, 200) * torch.logspace(-3, 1, 200)  # columns of very different magnitude
    q, s = quantize_blocks(w)
    assert q.dtype == FP8_DTYPE and s.shape == (3, 2)
    back = dequantize_blocks(q, s, (128, 128), torch.float32)
    # e4m3 keeps 3 mantissa bits: relative error per element at most 2^-4 of its block's scale range
    blockmax = s.repeat_interleave(128, 0)[:300].repeat_interleave(128, 1)[:, :200] * 448
    assert ((back - w).abs() <= blockmax / 16 + 1e-12).all()
    assert (back - w).abs().max() > 0  # it really went through 8 bits
    with pytest.raises(ValueError):
        dequantize_blocks(q, s[:2], (128, 128), torch.float32)


def _quantize_checkpoint(src: Path, dst: Path) -> dict[str, torch.Tensor]:
    """What DeepSeek publishes: attention and expert/MLP projections in FP8 with weight_scale_inv per 128x128
    block; embeddings, norms, router and lm_head stay wide. Returns the dequantized state for the reference."""
    state = load_file(str(src / "model.safetensors"))
    out, deq = {}, {}
    for name, t in state.items():
        if t.ndim == 2 and "proj" in name:
            q, s = quantize_blocks(t)
            out[name], out[name.replace(".weight", ".weight_scale_inv")] = q, s
            deq[name] = dequantize_blocks(q, s, (128, 128), torch.float32)
        else:
            out[name] = deq[name] = t
    dst.mkdir()
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    raw = json.loads((src / "config.json").read_text())
    raw["quantization_config"] = {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    }
    (dst / "config.json").write_text(json.dumps(raw))
    for f in src.glob("tokenizer*"):
        (dst / f.name).write_bytes(f.read_bytes())
    return deq


def test_fp8_checkpoint_loads_dequantized(tiny, tmp_path):
    path, ref = tiny
    deq = _quantize_checkpoint(path, tmp_path / "fp8")
    fp8 = LLM(str(tmp_path / "fp8"), dtype="float32", device="cpu", kv_cache_bytes=1 << 20)
    assert fp8.engine.config.fp8_block == (128, 128)
    from transformers import DeepseekV3ForCausalLM

    (tmp_path / "dequantized").mkdir()
    save_file(deq, str(tmp_path / "dequantized" / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "dequantized" / "config.json").write_bytes((path / "config.json").read_bytes())
    ref_deq = DeepseekV3ForCausalLM.from_pretrained(tmp_path / "dequantized").eval()
    ids = PROMPTS[1]
    with torch.inference_mode():
        want = ref_deq(torch.tensor([ids])).logits[0]
        orig = ref(torch.tensor([ids])).logits[0]
    got = _full_forward(fp8, ids)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert (got - orig).abs().max() > 1e-4  # the FP8 rounding is really there
    # every weight the engine holds is the block dequantization, experts included
    model = fp8.engine.model
    assert torch.equal(
        model.layers[0].self_attn.kv_b_proj.weight, deq["model.layers.0.self_attn.kv_b_proj.weight"]
    )
    assert torch.equal(model.layers[2].mlp.w13[5, 32:], deq["model.layers.2.mlp.experts.5.up_proj.weight"])
    assert torch.equal(model.layers[2].mlp.w2[7], deq["model.layers.2.mlp.experts.7.down_proj.weight"])
    assert _greedy(fp8, PROMPTS[:2]) == [_hf_greedy(ref_deq, p) for p in PROMPTS[:2]]


def test_incomplete_checkpoints_are_refused(tiny, tmp_path):
    path, _ = tiny
    state = load_file(str(path / "model.safetensors"))
    for broken, drop in (("no-expert", "model.layers.2.mlp.experts.5.down_proj.weight"), ("no-scale", None)):
        d = tmp_path / broken
        d.mkdir()
        tensors = dict(state)
        if drop:
            del tensors[drop]
        else:
            name = "model.layers.0.self_attn.kv_b_proj.weight"
            tensors[name] = quantize_blocks(tensors[name])[0]  # FP8 without its weight_scale_inv
        save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
        for f in path.glob("*.json"):
            (d / f.name).write_bytes(f.read_bytes())
        with pytest.raises(UserError, match="download it again"):
            LLM(str(d), dtype="float32", device="cpu", kv_cache_bytes=1 << 20)


_WORKER = """
import json, os, sys
import torch, torch.distributed as dist
rank, world, port, model, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
from r1stack import LLM, SamplingParams
from r1stack.engine.models.deepseek_v3_parallel import shard
llm = LLM(model, dtype="float32", device="cpu", kv_cache_bytes=1 << 20, enable_prefix_caching=False)
shard(llm.engine.model, rank, world)
prompts = json.loads(sys.argv[6])
params = SamplingParams(temperature=0, max_tokens=int(sys.argv[7]), min_tokens=int(sys.argv[7]), ignore_eos=True)
outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
m = llm.engine.model
with open(out, "w") as f:
    json.dump({"tokens": [o.outputs[0].token_ids for o in outs], "heads": m.layers[0].self_attn.h,
               "experts": m.layers[1].mlp.w13.shape[0], "first_expert": m.layers[1].mlp.first_expert,
               "expert_load": m.expert_load().tolist()}, f)
dist.barrier()
# gloo's threads sometimes abort the interpreter's teardown ("terminate called without an active exception");
# both ranks are done and their results are on disk, so leave without it.
os._exit(0)
"""


def test_tensor_and_expert_parallel_on_two_processes_gives_the_same_tokens(tiny, llm, tmp_path):
    """Two real processes over gloo: each holds half the heads, half of every MLP and half the experts."""
    import os
    import socket
    import subprocess
    import sys

    path, _ = tiny
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(r),
                "2",
                port,
                str(path),
                str(tmp_path / f"{r}.json"),
                json.dumps(PROMPTS),
                str(N_NEW),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    single = _greedy(llm)
    for r, got in enumerate(ranks):
        assert got["tokens"] == single
        assert (got["heads"], got["experts"], got["first_expert"]) == (2, 4, 4 * r)
    assert ranks[0]["expert_load"] == ranks[1]["expert_load"]  # the router is replicated, so are its counts


def test_r1_yarn_frequencies_and_softmax_scale_match_transformers():
    from transformers import DeepseekV3Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import yarn_apply_mscale

    from r1stack.engine.models.mla import _yarn_inv_freq, softmax_scale

    # R1's published rope_scaling, in the legacy "type" spelling its config.json uses
    hf = DeepseekV3Config(
        max_position_embeddings=163840,
        rope_scaling={
            "beta_fast": 32,
            "beta_slow": 1,
            "factor": 40,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 4096,
            "type": "yarn",
        },
    )
    cfg = ModelConfig.from_hf(hf)
    want, want_factor = ROPE_INIT_FUNCTIONS["yarn"](hf)
    got, factor = _yarn_inv_freq(cfg.mla.qk_rope_head_dim, cfg.mla.rope_scaling)
    assert torch.equal(got, want) and factor == want_factor
    assert softmax_scale(cfg) == pytest.approx(yarn_apply_mscale(hf.rope_parameters, 192**-0.5))
    assert softmax_scale(cfg) > 192**-0.5  # the mscale correction is really applied


def test_variant_without_q_lora_interleave_or_yarn_matches_transformers(tmp_path):
    """The other branches: a plain q_proj, rotate-half rope without scaling, one expert group, MoE from layer 0,
    two shared experts."""
    cfg = _tiny_config(
        q_lora_rank=None,
        rope_interleave=False,
        rope_scaling=None,
        n_group=1,
        topk_group=1,
        first_k_dense_replace=0,
        n_shared_experts=2,
        num_hidden_layers=2,
    )
    ref = _reference(cfg, seed=3)
    ref.save_pretrained(tmp_path, safe_serialization=True)
    _tokenizer(tmp_path)
    llm = LLM(str(tmp_path), dtype="float32", device="cpu", kv_cache_bytes=1 << 20)
    assert llm.engine.config.mla.q_lora_rank is None and not llm.engine.config.mla.rope_interleave
    ids = PROMPTS[1] + PROMPTS[2]
    with torch.inference_mode():
        want = ref(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(_full_forward(llm, ids), want, atol=1e-4, rtol=1e-4)
    assert _greedy(llm, PROMPTS[:2]) == [_hf_greedy(ref, p) for p in PROMPTS[:2]]


def _bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def test_fp8_checkpoint_kept_as_fp8_matches_the_widened_one(tiny, tmp_path):
    """--quantization fp8 (the default on FP8-capable GPUs) holds the checkpoint's FP8 blocks in memory and widens
    them per call: the same numbers as widening at load, in less memory."""
    from r1stack.engine.fp8 import Fp8Linear

    path, _ = tiny
    _quantize_checkpoint(path, tmp_path / "fp8")
    kw = dict(dtype="float32", device="cpu", kv_cache_bytes=1 << 20, enable_prefix_caching=False)
    widened = LLM(str(tmp_path / "fp8"), **kw)
    kept = LLM(str(tmp_path / "fp8"), quantization="fp8", **kw)
    model = kept.engine.model
    attn = model.layers[0].self_attn
    assert isinstance(attn.kv_b_proj, Fp8Linear) and attn.kv_b_proj.weight.dtype == FP8_DTYPE
    assert isinstance(model.layers[0].mlp.down_proj, Fp8Linear)
    assert model.layers[2].mlp.w13.dtype == FP8_DTYPE and model.layers[2].mlp.w2.dtype == FP8_DTYPE
    assert not isinstance(model.lm_head, Fp8Linear)  # the checkpoint keeps it wide
    assert _bytes(model) < 0.6 * _bytes(widened.engine.model)
    torch.testing.assert_close(
        _full_forward(kept, PROMPTS[1]), _full_forward(widened, PROMPTS[1]), atol=0, rtol=0
    )
    assert _greedy(kept) == _greedy(widened)
    # a model without FP8 weights cannot be asked to keep them
    with pytest.raises(UserError, match="fp8"):
        LLM(str(path), quantization="fp8", **kw)


def test_fp8_linear_narrows_like_tensor_parallelism_cuts():
    from r1stack.engine.fp8 import Fp8Linear

    torch.manual_seed(0)
    w = torch.randn(64, 48)
    q, s = quantize_blocks(w, (16, 16))
    full = dequantize_blocks(q, s, (16, 16), torch.float32)
    for dim, start, size, stays_fp8 in (
        (0, 16, 32, True),
        (1, 32, 16, True),
        (0, 8, 16, False),
        (1, 40, 8, False),
    ):
        lin = Fp8Linear(q.clone(), s.clone(), (16, 16), None, torch.float32)
        lin.narrow(dim, start, size)
        assert (lin.weight.dtype == FP8_DTYPE) == stays_fp8
        assert torch.equal(lin.dequantized(torch.float32), full.narrow(dim, start, size))
        assert (lin.out_features, lin.in_features) == tuple(full.narrow(dim, start, size).shape)


def test_server_metrics_expose_expert_load(tiny, tmp_path):
    """A real `r1stack serve` of the tiny MoE model: /metrics carries tokens per expert per MoE layer, and they add
    up to the tokens forwarded x num_experts_per_tok."""
    import sys

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from serverproc import start_server, stop_server

    path, _ = tiny
    server = start_server(
        tmp_path, "--model", str(path), "--served-model-name", "tiny-v3", "--max-model-len", "256"
    )
    try:
        body = {
            "model": "tiny-v3",
            "prompt": PROMPTS[1],
            "max_tokens": 6,
            "temperature": 0,
            "ignore_eos": True,
        }
        r = httpx.post(server.api + "/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        forwarded = (
            usage["prompt_tokens"] + usage["completion_tokens"] - 1
        )  # the last token is never fed back
        text = httpx.get(server.url + "/metrics").text
    finally:
        stop_server(server)
    per_layer: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("r1stack:moe_expert_tokens_total{"):
            layer = line.split('layer="')[1].split('"')[0]
            per_layer[layer] = per_layer.get(layer, 0) + float(line.rsplit(" ", 1)[1])
    assert per_layer == {"1": forwarded * 2, "2": forwarded * 2}  # MoE layers 1 and 2, two experts per token
    assert 'r1stack:moe_expert_load_imbalance{layer="1",model_name="tiny-v3"}' in text
