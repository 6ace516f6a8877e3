"""Paged decode attention for CPU as a small C++ kernel, built once with the machine's compiler.

Decode attention is most of a CPU decode step at serving batch sizes: 64 sequences x 200 tokens of context cost
about as much as every matmul of the layer. Neither PyTorch form is fast there: SDPA with a padding mask takes a
slow path in bf16, and inductor's loop over the block table runs at a few GFLOP/s. This kernel reads each
sequence's K/V rows in place through its block table, converts each row to fp32 once for all the query heads
that share it (GQA), and accumulates in fp32, one (sequence, KV head) pair per task across the torch threads.

It is built with torch.utils.cpp_extension on first use (about a minute, cached in torch's extension directory)
and registered as the custom op `r1stack::paged_decode_attention`, so the compiled decode step calls it too.
Where no compiler is found the build fails once, the log says so, and decoding keeps the PyTorch forms.
"""

from __future__ import annotations

import torch

from r1stack.engine import cpp_build

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>

static inline float to_float(float x) { return x; }
static inline float to_float(c10::BFloat16 x) {
  uint32_t bits = static_cast<uint32_t>(x.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
static inline float to_float(c10::Half x) { return static_cast<float>(x); }

template <typename T>
static inline void row_to_float(const T* src, float* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

template <typename T, int DC, int GC>
static void run(const at::Tensor& q, const at::Tensor& kc, const at::Tensor& vc, const at::Tensor& tables,
                const at::Tensor& lens, int64_t bs, double scale, at::Tensor& out) {
  // DC, GC > 0: head size and query heads per KV head known at compile time (the common shapes), so the loops
  // over them unroll and the G output accumulators stay in vector registers across the context.
  const int64_t D = DC > 0 ? DC : q.size(2);
  const int64_t B = q.size(0), H = q.size(1), Hkv = kc.size(1), W = tables.size(1);
  const int64_t G = GC > 0 ? GC : H / Hkv;
  constexpr int FIXED = (DC > 0 && GC > 0) ? DC * GC : 1;
  const T* qp = q.data_ptr<T>();
  const T* kp = kc.data_ptr<T>();
  const T* vp = vc.data_ptr<T>();
  const int64_t* tp = tables.data_ptr<int64_t>();
  const int64_t* lp = lens.data_ptr<int64_t>();
  T* op = out.data_ptr<T>();
  const float sc = static_cast<float>(scale);
  at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(G * D), acc_dyn(FIXED > 1 ? 1 : G * D), row(D), scores;
    float acc_fixed[FIXED];
    float* acc = FIXED > 1 ? acc_fixed : acc_dyn.data();
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / Hkv, h = i % Hkv;
      const int64_t L = std::min(lp[b], W * bs);
      scores.resize(G * L);
      for (int64_t g = 0; g < G; ++g) {
        row_to_float(qp + (b * H + h * G + g) * D, qf.data() + g * D, D);
        for (int64_t d = 0; d < D; ++d) qf[g * D + d] *= sc;
      }
      // scores[g, l] = q_g . k_l, each K row converted once for the G heads that read it
      for (int64_t l0 = 0; l0 < L; l0 += bs) {
        const T* kb = kp + (tp[b * W + l0 / bs] * bs * Hkv + h) * D;  // this block's first row of head h
        for (int64_t l = l0; l < std::min(L, l0 + bs); ++l) {
          row_to_float(kb + (l - l0) * Hkv * D, row.data(), D);
          for (int64_t g = 0; g < G; ++g) {
            const float* qg = qf.data() + g * D;
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (int64_t d = 0; d < D; ++d) s += qg[d] * row[d];
            scores[g * L + l] = s;
          }
        }
      }
      // softmax over l, per head
      for (int64_t g = 0; g < G; ++g) {
        float* sg = scores.data() + g * L;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t l = 0; l < L; ++l) mx = std::max(mx, sg[l]);
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t l = 0; l < L; ++l) {
          sg[l] = std::exp(sg[l] - mx);  // vectorised through libmvec (-fno-math-errno)
          sum += sg[l];
        }
        const float inv = 1.f / sum;
#pragma omp simd
        for (int64_t l = 0; l < L; ++l) sg[l] *= inv;
      }
      // out_g = sum_l p[g, l] v_l
      std::fill(acc, acc + G * D, 0.f);
      for (int64_t l0 = 0; l0 < L; l0 += bs) {
        const T* vb = vp + (tp[b * W + l0 / bs] * bs * Hkv + h) * D;
        for (int64_t l = l0; l < std::min(L, l0 + bs); ++l) {
          row_to_float(vb + (l - l0) * Hkv * D, row.data(), D);
          for (int64_t g = 0; g < G; ++g) {
            const float p = scores[g * L + l];
            float* ag = acc + g * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) ag[d] += p * row[d];
          }
        }
      }
      for (int64_t g = 0; g < G; ++g) {
        T* o = op + (b * H + h * G + g) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = static_cast<T>(acc[g * D + d]);
      }
    }
  });
}

template <typename T>
static void dispatch(const at::Tensor& q, const at::Tensor& kc, const at::Tensor& vc, const at::Tensor& tables,
                     const at::Tensor& lens, int64_t bs, double scale, at::Tensor& out) {
  const int64_t d = q.size(2), g = q.size(1) / kc.size(1);
#define R1_CASE(DD, GG) \
  if (d == DD && g == GG) return run<T, DD, GG>(q, kc, vc, tables, lens, bs, scale, out);
#define R1_CASES(DD) R1_CASE(DD, 1) R1_CASE(DD, 2) R1_CASE(DD, 3) R1_CASE(DD, 4) \
                     R1_CASE(DD, 5) R1_CASE(DD, 6) R1_CASE(DD, 7) R1_CASE(DD, 8)
  R1_CASES(64)
  R1_CASES(128)
  run<T, 0, 0>(q, kc, vc, tables, lens, bs, scale, out);
}

at::Tensor paged_decode_attention(at::Tensor q, at::Tensor k_cache, at::Tensor v_cache, at::Tensor block_tables,
                                  at::Tensor context_lens, int64_t block_size, double scale) {
  TORCH_CHECK(q.dim() == 3 && k_cache.dim() == 3 && v_cache.dim() == 3, "q [B,H,D], caches [slots,Hkv,D]");
  TORCH_CHECK(q.scalar_type() == k_cache.scalar_type() && q.scalar_type() == v_cache.scalar_type(),
              "q and the caches must share a dtype");
  TORCH_CHECK(q.size(1) % k_cache.size(1) == 0, "query heads must be a multiple of KV heads");
  q = q.contiguous();
  auto tables = block_tables.to(at::kLong).contiguous();
  auto lens = context_lens.to(at::kLong).contiguous();
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "the KV caches must be contiguous");
  auto out = at::empty_like(q);
  switch (q.scalar_type()) {
    case at::kFloat: dispatch<float>(q, k_cache, v_cache, tables, lens, block_size, scale, out); break;
    case at::kBFloat16: dispatch<c10::BFloat16>(q, k_cache, v_cache, tables, lens, block_size, scale, out); break;
    case at::kHalf: dispatch<c10::Half>(q, k_cache, v_cache, tables, lens, block_size, scale, out); break;
    default: TORCH_CHECK(false, "unsupported dtype for paged decode attention");
  }
  return out;
}
"""

cpp_build.register("attention", _SOURCE, ["paged_decode_attention"])


def _build():
    """The compiled extension module, or None when it cannot be built here."""
    return cpp_build.module()


def available() -> bool:
    """Builds the kernel on first call; True when it can be used."""
    return _build() is not None


def ready() -> bool:
    """True once built: the attention functions ask this (no lock, so compiled code can read it too)."""
    return cpp_build.ready()


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    block_size: int,
    scale: float,
) -> torch.Tensor:
    """q [B, H, D]; caches [slots, Hkv, D]; block_tables [B, W]; context_lens [B]. Returns [B, H, D]."""
    if torch.compiler.is_compiling():  # traced: the custom op, which the compiled graph can hold
        return _paged_decode_attention_op(q, k_cache, v_cache, block_tables, context_lens, block_size, scale)
    # eager: straight to C++; a custom op's Python dispatch costs ~20 us a call, 0.6 ms of a 30-layer token
    return _build().paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size, scale)


@torch.library.custom_op("r1stack::paged_decode_attention", mutates_args=())
def _paged_decode_attention_op(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    block_size: int,
    scale: float,
) -> torch.Tensor:
    return _build().paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size, scale)


@_paged_decode_attention_op.register_fake
def _(q, k_cache, v_cache, block_tables, context_lens, block_size, scale):
    return torch.empty_like(q)
