"""int4 and int8 weight-only matmuls on CPUs with AVX512-VNNI, from one row (single-user decode) to prefill.

PyTorch's packed CPU kernels widen every weight to bf16 before multiplying: at one row that runs at a few
GMAC/s, and the int8 lm_head alone cost 4 ms a token on SmolLM2. Here, as llama.cpp does, the activations are
quantized to int8 per block of 32 (one scale each) and multiplied with the integer weights by `vpdpbusd`
(4 unsigned x signed byte products per 32-bit lane), 16 output rows per instruction, with the scales applied in
fp32 once per block. The weights are repacked at load into the order that instruction reads:

- int4: [N/16, K/4, 32] bytes, tile t, k-step j: byte i holds q[16t + i/4, 4j + i%4] in its low nibble and
  q[16t + 8 + i/4, 4j + i%4] in its high one (q in 0..15, w = (q - 8) * scale + zero per group);
- int8: [N/16, K/4, 64] bytes, byte i = q[16t + i/4, 4j + i%4] + 128 (w = q * scale per row).

At serving batch sizes int8 runs two tiles by four rows at a time, so that vpdpbusd rather than the loads sets
the pace (about 2x PyTorch's bf16 matmul per core), and the tiles split across torch's threads. The result differs
from the bf16 kernels by the activations' int8 rounding (about 0.4% of a block's largest value), the error
llama.cpp's Q8 activations carry too. The build is the engine's C++ build (cpp_build.py); without AVX512-VNNI or
a compiler, `available()` is False and the layers keep PyTorch's kernels.
"""

from __future__ import annotations

import torch

from r1stack.engine import cpp_build

TILE = 16  # output rows per vector
BLOCK = 32  # activations per int8 scale

_SOURCE = r"""
bool has_vnni() {
#if defined(R1_AVX512) && defined(__AVX512VNNI__)
  return true;
#else
  return false;
#endif
}

#if defined(R1_AVX512) && defined(__AVX512VNNI__)
// Rows of activations as int8 per block of 32, in one buffer each: values q [M, K], scales d [M, K/32], sums of q
// s [M, K/32] (for the weights' offset), and per row the int8 offset term off = 128 * sum_b d_b s_b and, for int4,
// the exact float sums per weight group gsum [M, K/group] (for the zero points).
struct QRows {
  int64_t K = 0, nb = 0, G = 0;
  std::vector<int8_t> q; std::vector<float> d; std::vector<int32_t> s; std::vector<float> off, gsum;
  const int8_t* qr(int64_t m) const { return q.data() + m * K; }
  const float* dr(int64_t m) const { return d.data() + m * nb; }
  const int32_t* sr(int64_t m) const { return s.data() + m * nb; }
};

// Vectorised: at prefill sizes the scalar loop was a tenth of the matmul's time.
template <typename T>
static void quantize_row(const T* x_in, QRows& r, int64_t m, int64_t group) {
  int8_t* q = r.q.data() + m * r.K;
  float* d = r.d.data() + m * r.nb;
  int32_t* s = r.s.data() + m * r.nb;
  float* gs = group > 0 ? r.gsum.data() + m * r.G : nullptr;
  if (gs) std::fill(gs, gs + r.G, 0.f);
  float off = 0.f;
  for (int64_t b = 0; b < r.nb; ++b) {
    const __m512 x0 = r1::load16(x_in + b * 32), x1 = r1::load16(x_in + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float db = amax / 127.f, id = db > 0.f ? 1.f / db : 0.f;
    // the default rounding mode (to nearest, ties to even), as lrintf rounds
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32), _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 32 + 16), _mm512_cvtepi32_epi8(i1));
    d[b] = db;
    s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    off += 128.f * db * static_cast<float>(s[b]);
    if (gs) gs[b * 32 / group] += _mm512_reduce_add_ps(_mm512_add_ps(x0, x1));
  }
  r.off[m] = off;
}

template <typename T>
static void quantize(const T* x, int64_t M, int64_t K, int64_t group, QRows& r) {
  r.K = K; r.nb = K / 32; r.G = group > 0 ? K / group : 0;
  r.q.resize(M * K); r.d.resize(M * r.nb); r.s.resize(M * r.nb); r.off.resize(M); r.gsum.resize(M * r.G);
  // threads only for prefill-sized inputs: at decode sizes waking them costs more than the work
  at::parallel_for(0, M, std::max<int64_t>(1, 131072 / K), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) quantize_row(x + m * K, r, m, group);
  });
}

static inline __m512i bcast4(const int8_t* p) { int32_t v; std::memcpy(&v, p, 4); return _mm512_set1_epi32(v); }
static inline __m512 half16(const at::Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// int8: NT tiles of 16 outputs for R rows. Per k-step the NT weight vectors are loaded once for R rows and each
// row's 4 activations once for NT tiles: 2 x 4 keeps vpdpbusd, not the loads, the limit. Weights are stored as
// q + 128 (vpdpbusd multiplies unsigned by signed), so each block sums d_b (sum q x + 128 s_b); the 128 s_b part
// comes off once per row at the end (QRows::off), and the per-row weight scale is applied there too.
template <int R, int NT, typename TO>
static inline void tile8(const uint8_t* w, int64_t tile_bytes, const float* sc, const QRows& x, int64_t m0, TO* y,
                         int64_t ldy) {
  __m512 out[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) out[r][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < x.nb; ++b) {
    __m512i acc[R][NT];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_si512();
    const uint8_t* wb = w + b * 8 * 64;
    for (int j = 0; j < 8; ++j) {
      __m512i wv[NT];
      for (int t = 0; t < NT; ++t) wv[t] = _mm512_loadu_si512(wb + t * tile_bytes + j * 64);
      for (int r = 0; r < R; ++r) {
        const __m512i xv = bcast4(x.qr(m0 + r) + b * 32 + j * 4);
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], wv[t], xv);
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m512 d = _mm512_set1_ps(x.dr(m0 + r)[b]);
      for (int t = 0; t < NT; ++t) out[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][t]), d, out[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) {
      const __m512 v = _mm512_sub_ps(out[r][t], _mm512_set1_ps(x.off[m0 + r]));
      r1::store16(y + r * ldy + t * 16, _mm512_mul_ps(v, _mm512_loadu_ps(sc + t * 16)));
    }
}

// int4: one tile for R rows; w = (q - 8) * scale + zero per group, sc4/zr the tile's fp16 scales and zeros [G, 16].
template <int R, typename TO>
static inline void tile4(const uint8_t* w, const at::Half* sc4, const at::Half* zr, int64_t group, const QRows& x,
                         int64_t m0, TO* y, int64_t ldy) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m512 out[R];
  for (int r = 0; r < R; ++r) out[r] = _mm512_setzero_ps();
  const int64_t per_group = group / 32;
  for (int64_t b = 0; b < x.nb; ++b) {
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    const uint8_t* wb = w + b * 8 * 32;
    for (int j = 0; j < 8; ++j) {
      const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + j * 32));
      const __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(p, m4)),
                                            _mm256_and_si256(_mm256_srli_epi16(p, 4), m4), 1);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], wv, bcast4(x.qr(m0 + r) + b * 32 + j * 4));
    }
    // sum (q - 8) * xq = sum q * xq - 8 * sum xq; then the block's activation scale and the group's weight scale
    const __m512 ws = half16(sc4 + (b / per_group) * 16);
    for (int r = 0; r < R; ++r) {
      const __m512 f = _mm512_sub_ps(_mm512_cvtepi32_ps(acc[r]), _mm512_set1_ps(8.f * x.sr(m0 + r)[b]));
      out[r] = _mm512_fmadd_ps(f, _mm512_mul_ps(ws, _mm512_set1_ps(x.dr(m0 + r)[b])), out[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float* gs = x.gsum.data() + (m0 + r) * x.G;
    for (int64_t g = 0; g < x.G; ++g) out[r] = _mm512_fmadd_ps(half16(zr + g * 16), _mm512_set1_ps(gs[g]), out[r]);
    r1::store16(y + r * ldy, out[r]);
  }
}

// NT tiles from tile t for rows [c0, c1): four rows at a time, then one.
template <int NT, typename TO>
static void tiles8(const uint8_t* wp, int64_t tile_bytes, const float* s8, const QRows& rows, int64_t t, int64_t c0,
                   int64_t c1, TO* yp, int64_t N) {
  const uint8_t* w = wp + t * tile_bytes;
  TO* y = yp + t * 16;
  int64_t m = c0;
  for (; m + 4 <= c1; m += 4) tile8<4, NT, TO>(w, tile_bytes, s8 + t * 16, rows, m, y + m * N, N);
  for (; m < c1; ++m) tile8<1, NT, TO>(w, tile_bytes, s8 + t * 16, rows, m, y + m * N, N);
}

// Rows in chunks that stay in L2 while the weights stream past them; within a chunk, tiles split across threads.
constexpr int64_t ROW_CHUNK = 128;

template <typename TI, typename TO>
static void gemv_rows(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales, const at::Tensor& zeros,
                      int64_t group, int64_t bits, at::Tensor& y) {
  const int64_t M = x.size(0), K = x.size(1), T = packed.size(0), N = T * 16;
  QRows rows;
  quantize(x.data_ptr<TI>(), M, K, bits == 4 ? group : 0, rows);
  TO* yp = y.data_ptr<TO>();
  const uint8_t* wp = packed.data_ptr<uint8_t>();
  const int64_t tile_bytes = packed.size(1) * packed.size(2), G = bits == 4 ? K / group : 0;
  for (int64_t c0 = 0; c0 < M; c0 += ROW_CHUNK) {
    const int64_t c1 = std::min(M, c0 + ROW_CHUNK);
    if (bits == 8) {
      const float* s8 = scales.data_ptr<float>();
      // a few rows (single-user decode): one tile at a time streams the weights best; more rows: pairs of tiles
      const int64_t nt = c1 - c0 < 4 ? 1 : 2;
      at::parallel_for(0, T / nt, 8 / nt, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          if (nt == 1) tiles8<1, TO>(wp, tile_bytes, s8, rows, p, c0, c1, yp, N);
          else tiles8<2, TO>(wp, tile_bytes, s8, rows, 2 * p, c0, c1, yp, N);
        }
      });
      if (nt == 2 && T % 2) tiles8<1, TO>(wp, tile_bytes, s8, rows, T - 1, c0, c1, yp, N);
    } else {
      const at::Half* s4 = scales.data_ptr<at::Half>();
      const at::Half* zp = zeros.data_ptr<at::Half>();
      at::parallel_for(0, T, 8, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {  // the tile stays in L1 across the rows
          const uint8_t* w = wp + t * tile_bytes;
          int64_t m = c0;
          for (; m + 4 <= c1; m += 4) tile4<4, TO>(w, s4 + t * G * 16, zp + t * G * 16, group, rows, m, yp + m * N + t * 16, N);
          for (; m < c1; ++m) tile4<1, TO>(w, s4 + t * G * 16, zp + t * G * 16, group, rows, m, yp + m * N + t * 16, N);
        }
      });
    }
  }
}
#endif

// x [M, K] float32 or bf16, contiguous; int4: packed [N/16, K/4, 32] uint8, scales/zeros [N/16, K/group, 16]
// float16; int8: packed [N/16, K/4, 64] uint8, scales [N] float32. Returns [M, N] in x's dtype.
at::Tensor gemv(at::Tensor x, at::Tensor packed, at::Tensor scales, at::Tensor zeros, int64_t group, int64_t bits) {
#if defined(R1_AVX512) && defined(__AVX512VNNI__)
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
