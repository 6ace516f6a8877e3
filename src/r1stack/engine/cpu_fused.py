"""The per-layer elementwise kernels of kernels.py as one C++ call each, for the eager CPU engine in bf16.

Run eagerly, kernels.py's residual add + RMSNorm, rotary and SiLU x up are about 35 small PyTorch ops per layer,
each a few microseconds of dispatch around almost no arithmetic: at one sequence that overhead, not the matmuls,
was most of a quantized decode step, and at 64 sequences the ops' passes over memory were a tenth of it. Here each
is one vectorised call, split across threads for big batches, doing the same arithmetic in the same precision
(fp32 inside, bf16 rounding where PyTorch rounds): rotary is bit-identical to kernels.py, the norm differs only in
the order of its fp32 sum and SiLU in its exp (within 2 ulp of fp32 before the bf16 rounding). Models switch to
them with `use(model)`: the engine does so for models quantized onto the VNNI kernels, whose int8 activations
already move the numbers; float models keep kernels.py, and with it their token-for-token equality with
transformers. Traced (torch.compile) code always takes kernels.py, which inductor fuses itself.
"""

from __future__ import annotations

import torch

from r1stack.engine import cpp_build, kernels

_SOURCE = r"""
using bf16 = c10::BFloat16;

// Rows split across threads only when there are enough of them to pay for waking the threads.
template <typename F>
static void rows(int64_t n, int64_t row_elems, const F& f) {
  at::parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(row_elems, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

// (norm(x + residual), x + residual) for rows of x [T, D]; residual may be empty (no add).
std::vector<at::Tensor> add_rms_norm(at::Tensor x, at::Tensor residual, at::Tensor weight, double eps) {
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && weight.scalar_type() == at::kBFloat16, "bf16 only");
  x = x.contiguous();
  const bool add = residual.numel() > 0;
  if (add) residual = residual.contiguous();
  const int64_t D = x.size(-1), T = x.numel() / D;
  auto sum = add ? at::empty_like(x) : x;
  auto out = at::empty_like(x);
  const bf16* xp = x.data_ptr<bf16>();
  const bf16* rp = add ? residual.data_ptr<bf16>() : nullptr;
  const bf16* wp = weight.data_ptr<bf16>();
  bf16* sp = sum.data_ptr<bf16>();
  bf16* op = out.data_ptr<bf16>();
  const float inv_d = 1.f / static_cast<float>(D), e = static_cast<float>(eps);
  rows(T, D, [&](int64_t t) {
    const bf16* xr = xp + t * D;
    bf16* s = sp + t * D;  // x itself when there is no residual
    bf16* o = op + t * D;
#ifdef R1_AVX512
    if (D % 16 == 0) {
      __m512 ss = _mm512_setzero_ps();
      for (int64_t d = 0; d < D; d += 16) {
        __m512 h = r1::load16(xr + d);
        if (add) {
          h = r1::round_bf16(_mm512_add_ps(h, r1::load16(rp + t * D + d)));
          r1::store16(s + d, h);
        }
        ss = _mm512_fmadd_ps(h, h, ss);
      }
      const __m512 r = _mm512_set1_ps(1.f / std::sqrt(_mm512_reduce_add_ps(ss) * inv_d + e));
      for (int64_t d = 0; d < D; d += 16)
        r1::store16(o + d, _mm512_mul_ps(r1::load16(wp + d), r1::round_bf16(_mm512_mul_ps(r1::load16(s + d), r))));
      return;
    }
#endif
    float ss = 0.f;
    for (int64_t d = 0; d < D; ++d) {
      const bf16 h = add ? bf16(static_cast<float>(xr[d]) + static_cast<float>(rp[t * D + d])) : xr[d];
      if (add) s[d] = h;
      ss += static_cast<float>(h) * static_cast<float>(h);
    }
    const float r = 1.f / std::sqrt(ss * inv_d + e);
    for (int64_t d = 0; d < D; ++d)
      o[d] = bf16(static_cast<float>(wp[d]) * static_cast<float>(bf16(static_cast<float>(s[d]) * r)));
  });
  return {out, sum};
}

// Rotate-half RoPE: x [T, H, D] (last dim contiguous, any row/head strides), cos/sin [T, 1, D] bf16. Rounded to
// bf16 where PyTorch's x * cos + rotate_half(x) * sin rounds: after each product and after the sum.
static at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t T = x.size(0), H = x.size(1), D = x.size(2), half = D / 2;
  TORCH_CHECK(x.stride(2) == 1, "last dim must be contiguous");
  auto out = at::empty({T, H, D}, x.options());
  const bf16* xp = x.data_ptr<bf16>();
  const bf16* cp = cos.data_ptr<bf16>();
  const bf16* snp = sin.data_ptr<bf16>();
  bf16* op = out.data_ptr<bf16>();
  const int64_t s0 = x.stride(0), s1 = x.stride(1), c0 = cos.stride(0);
  rows(T * H, D, [&](int64_t i) {
    const int64_t t = i / H, h = i % H;
    const bf16* xr = xp + t * s0 + h * s1;
    const bf16* c = cp + t * c0;
    const bf16* s = snp + t * c0;
    bf16* o = op + i * D;
#ifdef R1_AVX512
    if (half % 16 == 0) {
      for (int64_t d = 0; d < half; d += 16) {
        const __m512 x1 = r1::load16(xr + d), x2 = r1::load16(xr + d + half);
        const __m512 lo = _mm512_add_ps(r1::round_bf16(_mm512_mul_ps(x1, r1::load16(c + d))),
                                        r1::round_bf16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x2), r1::load16(s + d))));
        const __m512 hi = _mm512_add_ps(r1::round_bf16(_mm512_mul_ps(x2, r1::load16(c + d + half))),
                                        r1::round_bf16(_mm512_mul_ps(x1, r1::load16(s + d + half))));
        r1::store16(o + d, lo);
        r1::store16(o + d + half, hi);
      }
      return;
    }
#endif
    for (int64_t d = 0; d < D; ++d) {
      const float rot = d < half ? -static_cast<float>(xr[d + half]) : static_cast<float>(xr[d - half]);
      const bf16 a = bf16(static_cast<float>(xr[d]) * static_cast<float>(c[d]));
      const bf16 b = bf16(rot * static_cast<float>(s[d]));
      o[d] = bf16(static_cast<float>(a) + static_cast<float>(b));
    }
  });
  return out;
}

std::vector<at::Tensor> rotary(at::Tensor q, at::Tensor k, at::Tensor cos, at::Tensor sin) {
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 && cos.scalar_type() == at::kBFloat16, "bf16 only");
  cos = cos.contiguous(); sin = sin.contiguous();
  return {rotate(q, cos, sin), rotate(k, cos, sin)};
}

// SiLU(gate) * up for gate_up [T, 2I], rounded to bf16 after the SiLU and after the product, as PyTorch rounds.
at::Tensor silu_mul(at::Tensor gate_up) {
  TORCH_CHECK(gate_up.scalar_type() == at::kBFloat16, "bf16 only");
  gate_up = gate_up.contiguous();
  const int64_t I = gate_up.size(-1) / 2, T = gate_up.numel() / (2 * I);
  auto sizes = gate_up.sizes().vec();
  sizes.back() = I;
  auto out = at::empty(sizes, gate_up.options());
  const bf16* gp = gate_up.data_ptr<bf16>();
  bf16* op = out.data_ptr<bf16>();
  rows(T, 2 * I, [&](int64_t t) {
    const bf16* g = gp + t * 2 * I;
    bf16* o = op + t * I;
    int64_t i = 0;
#ifdef R1_AVX512
    for (; i + 16 <= I; i += 16) {
      const __m512 x = r1::load16(g + i);
      const __m512 e = r1::exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
      const __m512 sg = r1::round_bf16(_mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.f), e)));
      r1::store16(o + i, _mm512_mul_ps(sg, r1::load16(g + I + i)));
    }
#endif
    for (; i < I; ++i) {
      const float x = static_cast<float>(g[i]);
      const bf16 sg = bf16(x / (1.f + std::exp(-x)));
      o[i] = bf16(static_cast<float>(sg) * static_cast<float>(g[I + i]));
    }
  });
  return out;
}
"""

cpp_build.register("fused", _SOURCE, ["add_rms_norm", "rotary", "silu_mul"])
_module = cpp_build.module


def available() -> bool:
    """Builds the kernels on first call; True when they can be used."""
    return _module() is not None


def use(model: torch.nn.Module) -> int:
    """Point every module with an `ops` attribute at these kernels; returns how many."""
    n = 0
    for m in model.modules():
        if hasattr(m, "ops"):
            m.ops = _ops
            n += 1
    return n


def _eager(x: torch.Tensor) -> bool:
    return x.dtype == torch.bfloat16 and x.device.type == "cpu" and not torch.compiler.is_compiling()


class _ops:
    """kernels.py's interface, in C++ where it applies."""

    @staticmethod
    def rms_norm(x, weight, eps):
        return _ops.add_rms_norm(x, None, weight, eps)[0]

    @staticmethod
    def add_rms_norm(x, residual, weight, eps):
        if not _eager(x) or weight.dtype != torch.bfloat16:
            return kernels.add_rms_norm(x, residual, weight, eps)
        empty = x.new_empty(0)
        return tuple(_module().add_rms_norm(x, empty if residual is None else residual, weight, eps))

    @staticmethod
    def rotary(q, k, cos, sin):
        if not _eager(q) or cos.dtype != torch.bfloat16 or q.stride(-1) != 1 or k.stride(-1) != 1:
            return kernels.rotary(q, k, cos, sin)
        return tuple(_module().rotary(q, k, cos, sin))

    @staticmethod
    def silu_mul(gate_up):
        if not _eager(gate_up):
            return kernels.silu_mul(gate_up)
        return _module().silu_mul(gate_up)
