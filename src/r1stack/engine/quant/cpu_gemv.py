"""int4 and int8 weight-only matmuls for a few rows (single-user decode) on CPUs with AVX512-VNNI.

PyTorch's packed CPU kernels widen every weight to bf16 before multiplying: at one row that runs at a few
GMAC/s, and the int8 lm_head alone cost 4 ms a token on SmolLM2. Here, as llama.cpp does, the activations are
quantized to int8 per block of 32 (one scale each) and multiplied with the integer weights by `vpdpbusd`
(4 unsigned x signed byte products per 32-bit lane), 16 output rows per instruction, with the scales applied in
fp32 once per block. The weights are repacked at load into the order that instruction reads:

- int4: [N/16, K/4, 32] bytes, tile t, k-step j: byte i holds q[16t + i/4, 4j + i%4] in its low nibble and
  q[16t + 8 + i/4, 4j + i%4] in its high one (q in 0..15, w = (q - 8) * scale + zero per group);
- int8: [N/16, K/4, 64] bytes, byte i = q[16t + i/4, 4j + i%4] + 128 (w = q * scale per row).

The result differs from the bf16 kernels by the activations' int8 rounding (about 0.4% of a block's largest
value), the error llama.cpp's Q8 activations carry too. The build is the engine's C++ build (cpp_build.py);
without AVX512-VNNI or a compiler, `available()` is False and the layers keep PyTorch's kernels.
"""

from __future__ import annotations

import torch

from r1stack.engine import cpp_build

TILE = 16  # output rows per vector
BLOCK = 32  # activations per int8 scale

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>
#ifdef __AVX512VNNI__
#include <immintrin.h>
#endif

bool has_vnni() {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  return true;
#else
  return false;
#endif
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// One row of activations as int8 per block of 32: values q, scale d, sum of q (for the weights' offset), and the
// exact float sum per weight group (for the int4 zero points).
struct QRow {
  std::vector<int8_t> q; std::vector<float> d; std::vector<int32_t> s; std::vector<float> gsum;
};

static inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
static inline __m512 load16(const at::BFloat16* p) {  // bf16 -> fp32 is exact: the bits shifted up
  __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

// Vectorised: at prefill sizes the scalar loop was a tenth of the matmul's time.
template <typename T>
static void quantize(const T* x_in, int64_t K, int64_t group, QRow& r) {
  const int64_t nb = K / 32;
  r.q.resize(K); r.d.resize(nb); r.s.resize(nb);
  if (group > 0) r.gsum.assign(K / group, 0.f);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 x0 = load16(x_in + b * 32), x1 = load16(x_in + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float d = amax / 127.f, id = d > 0.f ? 1.f / d : 0.f;
    // the default rounding mode (to nearest, ties to even), as lrintf rounds
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(r.q.data() + b * 32), _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(r.q.data() + b * 32 + 16), _mm512_cvtepi32_epi8(i1));
    r.d[b] = d;
    r.s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    if (group > 0) r.gsum[b * 32 / group] += _mm512_reduce_add_ps(_mm512_add_ps(x0, x1));
  }
}

static inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
static inline void store16(at::BFloat16* p, __m512 v) {
#ifdef __AVX512BF16__
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
#else
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  for (int j = 0; j < 16; ++j) p[j] = static_cast<at::BFloat16>(t[j]);
#endif
}

static inline __m512i bcast4(const int8_t* p) { int32_t v; std::memcpy(&v, p, 4); return _mm512_set1_epi32(v); }

// 16 outputs of one tile for R quantized rows at once: each k-step's weights are loaded and unpacked once for
// all R rows (prefill), and the R accumulator chains hide vpdpbusd's latency. BITS 4: w = (q - 8) * scale + zero
// per group; BITS 8: weights stored as q + 128, w = q * scale per row.
static inline __m512 half16(const at::Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// int4: sc4/zr are the tile's fp16 scales and zeros [G, 16]; int8: sc is the tile's 16 fp32 row scales.
template <int BITS, int R, typename TO>
static inline void tile(const uint8_t* w, const at::Half* sc4, const float* sc, const at::Half* zr, int64_t K,
                        int64_t group, const QRow* x, TO* y, int64_t ldy) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  constexpr int STEP = BITS == 4 ? 32 : 64;  // bytes per k-step of 4
  constexpr float OFFSET = BITS == 4 ? 8.f : 128.f;
  __m512 out[R];
  for (int r = 0; r < R; ++r) out[r] = _mm512_setzero_ps();
  const int64_t per_group = BITS == 4 ? group / 32 : 1;
  for (int64_t b = 0; b < K / 32; ++b) {
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    const uint8_t* wb = w + b * 8 * STEP;
    for (int j = 0; j < 8; ++j) {
      __m512i wv;
      if constexpr (BITS == 4) {
        __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + j * STEP));
        wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(p, m4)),
                                _mm256_and_si256(_mm256_srli_epi16(p, 4), m4), 1);
      } else {
        wv = _mm512_loadu_si512(wb + j * STEP);
      }
      for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], wv, bcast4(x[r].q.data() + b * 32 + j * 4));
    }
    // sum (q - offset) * xq = sum q * xq - offset * sum xq; then the block's activation scale (and the group's
    // weight scale for int4; int8's per-row scale is applied once at the end)
    const __m512 ws = BITS == 4 ? half16(sc4 + (b / per_group) * 16) : _mm512_set1_ps(1.f);
    for (int r = 0; r < R; ++r) {
      __m512 f = _mm512_sub_ps(_mm512_cvtepi32_ps(acc[r]), _mm512_set1_ps(OFFSET * x[r].s[b]));
      out[r] = _mm512_fmadd_ps(f, _mm512_mul_ps(ws, _mm512_set1_ps(x[r].d[b])), out[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if constexpr (BITS == 4) {
      for (int64_t g = 0; g < K / group; ++g)
        out[r] = _mm512_fmadd_ps(half16(zr + g * 16), _mm512_set1_ps(x[r].gsum[g]), out[r]);
    } else {
      out[r] = _mm512_mul_ps(out[r], _mm512_loadu_ps(sc));
    }
    store16(y + r * ldy, out[r]);
  }
}

// Every row of one tile, its 16 outputs written in the output's dtype.
template <int BITS, typename TO>
static void rows_of_tile(const uint8_t* w, const at::Half* sc4, const float* sc, const at::Half* zr, int64_t K,
                         int64_t group, const std::vector<QRow>& rows, TO* y, int64_t N) {
  const int64_t M = rows.size();
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) tile<BITS, 4, TO>(w, sc4, sc, zr, K, group, rows.data() + m, y + m * N, N);
  for (; m < M; ++m) tile<BITS, 1, TO>(w, sc4, sc, zr, K, group, rows.data() + m, y + m * N, N);
}
template <typename TI, typename TO>
static void gemv_rows(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales, const at::Tensor& zeros,
                int64_t group, int64_t bits, at::Tensor& y) {
  const int64_t M = x.size(0), K = x.size(1), T = packed.size(0), N = T * 16;
  std::vector<QRow> rows(M);
  for (int64_t m = 0; m < M; ++m) quantize(x.data_ptr<TI>() + m * K, K, bits == 4 ? group : 0, rows[m]);
  TO* yp = y.data_ptr<TO>();
  const uint8_t* wp = packed.data_ptr<uint8_t>();
  const int64_t tile_bytes = packed.size(1) * packed.size(2), G = bits == 4 ? K / group : 0;
  const at::Half* s4 = bits == 4 ? scales.data_ptr<at::Half>() : nullptr;
  const at::Half* zp = bits == 4 ? zeros.data_ptr<at::Half>() : nullptr;
  const float* s8 = bits == 8 ? scales.data_ptr<float>() : nullptr;
  at::parallel_for(0, T, 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {  // the tile stays in L1 across the rows
      if (bits == 4)
        rows_of_tile<4, TO>(wp + t * tile_bytes, s4 + t * G * 16, nullptr, zp + t * G * 16, K, group, rows,
                            yp + t * 16, N);
      else
        rows_of_tile<8, TO>(wp + t * tile_bytes, nullptr, s8 + t * 16, nullptr, K, group, rows, yp + t * 16, N);
    }
  });
}
#endif

// x [M, K] float32 or bf16, contiguous; int4: packed [N/16, K/4, 32] uint8, scales/zeros [N/16, K/group, 16]
// float16; int8: packed [N/16, K/4, 64] uint8, scales [N] float32. Returns [M, N] in x's dtype.
at::Tensor gemv(at::Tensor x, at::Tensor packed, at::Tensor scales, at::Tensor zeros, int64_t group, int64_t bits) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  TORCH_CHECK(x.dim() == 2 && packed.dim() == 3, "x [M, K], packed [N/16, K/4, bytes]");
  if (!x.is_contiguous()) x = x.contiguous();
  const int64_t K = x.size(1);
  TORCH_CHECK(K % 32 == 0 && packed.size(1) * 4 == K, "K must be a multiple of 32 and match the weights");
  TORCH_CHECK(bits == 4 ? (group % 32 == 0 && K % group == 0) : true, "group must be a multiple of 32");
  auto y = at::empty({x.size(0), packed.size(0) * 16}, x.options());
  if (x.scalar_type() == at::kBFloat16) gemv_rows<at::BFloat16, at::BFloat16>(x, packed, scales, zeros, group, bits, y);
  else if (x.scalar_type() == at::kFloat) gemv_rows<float, float>(x, packed, scales, zeros, group, bits, y);
  else TORCH_CHECK(false, "x must be float32 or bfloat16");
  return y;
#else
  TORCH_CHECK(false, "built without AVX512-VNNI");
#endif
}
"""

cpp_build.register("gemv", _SOURCE, ["gemv", "has_vnni"])
_module = cpp_build.module


def _cpu_has_vnni() -> bool:
    return {"avx512f", "avx512bw", "avx512_vnni"} <= set(cpp_build.cpu_flags().split())


_usable: bool | None = None


def available() -> bool:
    """True when this CPU has AVX512-VNNI and the kernel is built (building it on first call)."""
    global _usable
    if _usable is None:
        _usable = _cpu_has_vnni() and _module() is not None and bool(_module().has_vnni())
    return _usable


def fits(n: int, k: int, group: int | None = None) -> bool:
    return n % TILE == 0 and k % BLOCK == 0 and (group is None or (group % BLOCK == 0 and k % group == 0))


def pack_int4(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor):
    """q [N, K] uint8 0..15, scale/zero [N, G] -> (packed [N/16, K/4, 32] uint8, fp16 scales, zeros [N/16, G, 16])."""
    n, k = q.shape
    t = q.to(torch.uint8).view(n // TILE, TILE, k // 4, 4).permute(0, 2, 1, 3).reshape(n // TILE, k // 4, 64)
    packed = t[..., :32] | (t[..., 32:] << 4)
    # fp16, as GGUF and AWQ store them: a sixth less to read per token than fp32 at group 32
    per_tile = lambda v: v.half().view(n // TILE, TILE, -1).transpose(1, 2).contiguous()  # noqa: E731
    return packed.contiguous(), per_tile(scale), per_tile(zero)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """pack_int4's q back, [N, K] uint8."""
    t, steps, _ = packed.shape
    both = torch.cat([packed & 15, packed >> 4], dim=-1)  # [T, K/4, 64]: lanes 0-7 then 8-15
    return both.view(t, steps, TILE, 4).permute(0, 2, 1, 3).reshape(t * TILE, steps * 4)


def pack_int8(q: torch.Tensor) -> torch.Tensor:
    """q [N, K] int8 -> [N/16, K/4, 64] uint8 holding q + 128."""
    n, k = q.shape
    u = (q.to(torch.int16) + 128).to(torch.uint8)
    return u.view(n // TILE, TILE, k // 4, 4).permute(0, 2, 1, 3).reshape(n // TILE, k // 4, 64).contiguous()


def unpack_int8(packed: torch.Tensor) -> torch.Tensor:
    """pack_int8's q back, [N, K] int16 (so that widening to bf16 is one more step)."""
    t, steps, _ = packed.shape
    u = packed.view(t, steps, TILE, 4).permute(0, 2, 1, 3).reshape(t * TILE, steps * 4)
    return u.to(torch.int16) - 128


def qgemv(
    x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group: int, bits: int
):
    """x [M, K] -> [M, N] in x's dtype through the packed int4 (bits=4) or int8 (bits=8) weights."""
    if torch.compiler.is_compiling():  # traced: the custom op, which the compiled graph can hold
        return _qgemv_op(x, packed, scales, zeros, group, bits)
    # eager: straight to C++; a custom op's Python dispatch costs ~20 us a call, 2.4 ms of a SmolLM2 token
    return _module().gemv(x, packed, scales, zeros, group, bits)


@torch.library.custom_op("r1stack::qgemv", mutates_args=())
def _qgemv_op(
    x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group: int, bits: int
) -> torch.Tensor:
    return _module().gemv(x, packed, scales, zeros, group, bits)


@_qgemv_op.register_fake
def _(x, packed, scales, zeros, group, bits):
    return x.new_empty((x.shape[0], packed.shape[0] * TILE))
