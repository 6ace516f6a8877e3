"""Quantized matmuls against a dequantized float reference, and the weight formats' conversions (no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from r1stack.engine.quant import cpu_gemv
from r1stack.engine.quant.formats import (
    Int4Weights,
    from_awq,
    from_gguf,
    int4_rtn,
    int4_rtn_parts,
    int8_rtn,
    to_awq,
)
from r1stack.engine.quant.linear import Int4Linear, Int8Linear

CPU = torch.device("cpu")
# Stated tolerances, as a fraction of the largest reference output. PyTorch's packed kernels run in bf16: bf16
# rounding of the inputs and of the sum, within 1%. Ours (VNNI) also round the activations to int8 per block of
# 32, up to half a step of 1/127 of the block's largest value each: measured 0.5-0.7% on random data, bound 2%.
REL_TOL = {"cpu": 1e-2, "vnni": 2e-2}
KERNELS = [
    "cpu",
    pytest.param(
        "vnni",
        marks=pytest.mark.skipif(not cpu_gemv.available(), reason="needs AVX512-VNNI and a C++ compiler"),
    ),
]


def _rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return ((y.float() - ref).abs().max() / ref.abs().max()).item()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("rows", [1, 5, 64])  # one row, the 4-row blocking plus a remainder, a prefill
def test_int4_matmul_matches_dequantized_reference(kernel, group, rows):
    w = torch.randn(256, 384)
    q = int4_rtn(w, group)
    lin = Int4Linear(q, None, CPU, kernel=kernel)
    assert lin.kernel == kernel  # this CPU build has the kernel; the test is about it
    x = torch.randn(rows, 384)
    ref = F.linear(x, q.dequantize())
    assert _rel_err(lin(x), ref) < REL_TOL[kernel]
    assert _rel_err(lin(x.to(torch.bfloat16)), F.linear(x.to(torch.bfloat16).float(), q.dequantize())) < 2e-2


@pytest.mark.skipif(not cpu_gemv.available(), reason="needs AVX512-VNNI and a C++ compiler")
def test_vnni_layouts_round_trip_and_rows_are_independent():
    q4 = torch.randint(0, 16, (48, 96), dtype=torch.uint8)
    packed, _, _ = cpu_gemv.pack_int4(q4, torch.ones(48, 3), torch.zeros(48, 3))
    assert torch.equal(cpu_gemv.unpack_int4(packed), q4)
    q8 = torch.randint(-127, 128, (32, 64), dtype=torch.int8)
    assert torch.equal(cpu_gemv.unpack_int8(cpu_gemv.pack_int8(q8)), q8.to(torch.int16))
    # A row's result does not depend on the rows computed beside it (4-row blocks vs one at a time).
    lin = Int4Linear(int4_rtn(torch.randn(64, 256), 32), None, CPU, kernel="vnni")
    x = torch.randn(6, 256)
    assert torch.equal(lin(x)[5], lin(x[5:])[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA's tinygemm int4 kernel needs a GPU")
def test_int4_cuda_kernel_matches_dequantized_reference():
    cuda = torch.device("cuda")
    w = torch.randn(256, 384)
    for group in (32, 64, 128):
        q = int4_rtn(w, group)
        lin = Int4Linear(q, None, cuda)
        assert lin.kernel == "cuda"
        for rows in (1, 7, 64):
            x = torch.randn(rows, 384)
            ref = F.linear(x, q.dequantize())
            assert _rel_err(lin(x.to(cuda)).cpu(), ref) < REL_TOL, (group, rows)


def test_int4_fallback_for_shapes_the_kernel_refuses():
    w = torch.randn(40, 64)  # 40 rows: the CPU packing wants a multiple of 16
    q = int4_rtn(w, 32)
    lin = Int4Linear(q, torch.randn(40), CPU)
    assert not lin.packed
    x = torch.randn(3, 64)
    assert torch.allclose(lin(x), F.linear(x, q.dequantize(), lin.bias), atol=1e-4)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rows", [1, 31, 64])  # PyTorch's kernel below 32 rows, widened weights from 32
def test_int8_matmul_matches_dequantized_reference(kernel, rows):
    w = torch.randn(192, 320)
    q = int8_rtn(w)
    lin = Int8Linear(q, None, CPU, kernel=kernel)
    assert lin.kernel == kernel
    x = torch.randn(rows, 320)
    assert _rel_err(lin(x), F.linear(x, q.dequantize())) < REL_TOL[kernel]


def test_round_to_nearest_error_is_within_half_a_step():
    w = torch.randn(64, 256)
    q4 = int4_rtn(w, 64)
    step = q4.scale.repeat_interleave(64, dim=1)
    assert ((q4.dequantize() - w).abs() <= step / 2 + 1e-6).all()
    q8 = int8_rtn(w)
    assert ((q8.dequantize() - w).abs() <= q8.scale[:, None] / 2 + 1e-6).all()


def _gguf_bytes(kind: str, n: int, k: int) -> torch.Tensor:
    """Random but well-formed GGUF blocks, encoded by the gguf package's own quantizer."""
    from gguf import GGMLQuantizationType, quantize

    w = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)
    raw = quantize(w, GGMLQuantizationType[kind])
    return torch.from_numpy(np.ascontiguousarray(raw).view(np.uint8).reshape(-1)), w


@pytest.mark.parametrize("kind", ["Q4_0", "Q8_0"])
def test_gguf_blocks_repack_to_the_values_gguf_dequantizes_to(kind):
    from gguf import GGMLQuantizationType, dequantize

    raw, _ = _gguf_bytes(kind, 32, 128)
    expected = torch.from_numpy(dequantize(raw.numpy(), GGMLQuantizationType[kind]).reshape(32, 128).copy())
    ours = from_gguf(kind, raw, [32, 128])
    if kind == "Q4_0":  # exact: the same integers and scales
        assert isinstance(ours, Int4Weights) and ours.group_size == 32
        assert torch.allclose(ours.dequantize(), expected, atol=1e-6)
    else:  # requantized per row: within half a step of the row's scale
        assert ((ours.dequantize() - expected).abs() <= ours.scale[:, None] / 2 + 1e-6).all()


def test_gguf_q4_1_repack_matches_the_loader_dequantizer(default_gguf):
    """Q4_1 has no encoder in the gguf package; the shipped model's own tensors are the test data."""
    import gguf

    from r1stack.engine.gguf_file import dequantize

    reader = gguf.GGUFReader(str(default_gguf))
    t = next(t for t in reader.tensors if t.tensor_type.name == "Q4_1")
    raw = torch.from_numpy(np.asarray(t.data).view(np.uint8).reshape(-1).copy())
    ours = from_gguf("Q4_1", raw, [int(x) for x in reversed(t.shape)])
    assert torch.allclose(ours.dequantize(), dequantize(t), atol=1e-5)


def test_awq_layout_round_trips():
    w = torch.randn(48, 256)
    q, scale, izero = int4_rtn_parts(w, 64)
    parts = to_awq(q, scale, izero)
    assert parts["qweight"].shape == (256, 6) and parts["qweight"].dtype == torch.int32
    assert parts["qzeros"].shape == (4, 6) and parts["scales"].shape == (4, 48)
    back = from_awq(parts["qweight"], parts["qzeros"], parts["scales"])
    assert torch.equal(back.q, q)
    assert torch.allclose(back.dequantize(), int4_rtn(w, 64).dequantize(), atol=2e-3)  # fp16 scales


def test_awq_column_order_is_autoawqs():
    """AutoAWQ puts column 2 (not 1) in the second nibble: a checkpoint from it must unpack column for column."""
    q = torch.arange(8, dtype=torch.uint8).repeat(1, 1).expand(32, 8).t().contiguous()  # row r holds r
    parts = to_awq(q, torch.ones(8, 1), torch.full((8, 1), 8.0))
    word = parts["qweight"][0, 0].item()
    assert [(word >> (4 * i)) & 0xF for i in range(8)] == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.skipif(not cpu_gemv.available(), reason="needs AVX512-VNNI and a C++ compiler")
def test_vnni_int8_odd_tile_count():
    """13 tiles of 16 outputs: six pairs and the last tile alone, at decode (2 rows) and batch (9 rows) sizes."""
    q = int8_rtn(torch.randn(208, 96))
    lin = Int8Linear(q, None, CPU, kernel="vnni")
    for rows in (2, 9):
        x = torch.randn(rows, 96)
        assert _rel_err(lin(x), F.linear(x, q.dequantize())) < REL_TOL["vnni"]
