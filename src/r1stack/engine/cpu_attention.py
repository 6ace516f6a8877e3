"""Paged decode attention for CPU as a small C++ kernel, built once with the machine's compiler.

Decode attention is most of a CPU decode step at serving batch sizes: 64 sequences x 200 tokens of context cost
about as much as every matmul of the layer. Neither PyTorch form is fast there: SDPA with a padding mask takes a
slow path in bf16, and inductor's loop over the block table runs at a few GFLOP/s. This kernel reads each
sequence's K/V rows in place through its block table, once for all the query heads that share them (GQA), and
accumulates in fp32, one (sequence, KV head) pair per task across the torch threads. For bf16 caches on AVX-512
(the serving case) q.k runs 16 keys at a time on vdpbf16ps, exp is vectorised and each next block is prefetched:
at 64 sequences the cache is read from memory every step, and waiting on it was most of the kernel's time.

It is built with torch.utils.cpp_extension on first use (about a minute, cached in torch's extension directory)
and registered as the custom op `r1stack::paged_decode_attention`, so the compiled decode step calls it too.
Where no compiler is found the build fails once, the log says so, and decoding keeps the PyTorch forms.
"""

from __future__ import annotations

import torch

from r1stack.engine import cpp_build

_SOURCE = r"""
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

#if defined(R1_AVX512) && defined(__AVX512BF16__)
// Lane i of the result = the sum of v[i]'s 16 lanes: a transposing tree, 45 instructions for 16 dot products,
// where 16 separate horizontal sums would take about 130.
static inline __m512 sum16(const __m512* v) {
  __m512 t[8], u[4], z[2];
  for (int j = 0; j < 8; ++j)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
    t[j] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * j], v[2 * j + 1]), _mm512_unpackhi_ps(v[2 * j], v[2 * j + 1]));
  for (int j = 0; j < 4; ++j) {  // per 128-bit lane: one partial sum of each of 4 rows
    const __m512d a = _mm512_castps_pd(t[2 * j]), b = _mm512_castps_pd(t[2 * j + 1]);
    u[j] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  for (int j = 0; j < 2; ++j)
    z[j] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// The next 16 rows of one head, into L2: the scattered blocks are too short for the hardware prefetcher, and
// without this the kernel waited on memory for most of its time at serving batch sizes.
template <int D>
static inline void prefetch(const c10::BFloat16* first, int64_t stride) {
  for (int j = 0; j < 16; ++j)
    for (int c = 0; c < D * 2; c += 64) _mm_prefetch(reinterpret_cast<const char*>(first + j * stride) + c, _MM_HINT_T1);
}

// bf16 caches, head size D (a multiple of 32), G query heads per KV head, block size a multiple of 16: the
// serving case, about ten times faster than the generic loop. q.k by vdpbf16ps (exact bf16 products, fp32 sums)
// for 16 keys at once, reduced by sum16; softmax and p.v in fp32.
template <int D, int G>
static void run_bf16(const at::Tensor& q, const at::Tensor& kc, const at::Tensor& vc, const at::Tensor& tables,
                     const at::Tensor& lens, int64_t bs, double scale, at::Tensor& out) {
  using T = c10::BFloat16;
  constexpr int C = D / 32, V = D / 16;
  constexpr int GB = G * V <= 16 ? G : (16 / V > 0 ? 16 / V : 1);  // heads whose p.v sums fit in registers
  const int64_t B = q.size(0), H = q.size(1), Hkv = kc.size(1), W = tables.size(1), stride = Hkv * D;
  const T* qp = q.data_ptr<T>();
  const T* kp = kc.data_ptr<T>();
  const T* vp = vc.data_ptr<T>();
  const int64_t* tp = tables.data_ptr<int64_t>();
  const int64_t* lp = lens.data_ptr<int64_t>();
  T* op = out.data_ptr<T>();
  const __m512 sc = _mm512_set1_ps(static_cast<float>(scale));
  at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / Hkv, h = i % Hkv;
      const int64_t L = std::min(lp[b], W * bs), Lp = (L + 15) / 16 * 16;
      if (L <= 0) {
        std::memset(op + (b * H + h * G) * D, 0, sizeof(T) * G * D);
        continue;
      }
      scores.resize(G * Lp);
      const int64_t* table = tp + b * W;
      // the first row of key l0's block (no division per key: it cost as much as the arithmetic)
      auto block = [&](const T* cache, int64_t l0) { return cache + table[l0 / bs] * bs * stride + h * D; };
      const T* qh = qp + (b * H + h * G) * D;
      for (int64_t l0 = 0; l0 < L; l0 += 16) {  // 16 keys, all in one block
        const T* k[16];
        const T* kb = block(kp, l0) + (l0 % bs) * stride;
        for (int j = 0; j < 16; ++j) k[j] = kb + std::min<int64_t>(j, L - 1 - l0) * stride;  // past the end: unused
        if (l0 == 0) prefetch<D>(kb, stride);  // all 16 rows requested at once, not as each is read
        if (l0 + 16 < L) prefetch<D>(block(kp, l0 + 16) + ((l0 + 16) % bs) * stride, stride);
        prefetch<D>(block(vp, l0) + (l0 % bs) * stride, stride);  // for the p.v pass: in L2 by then
        for (int g = 0; g < G; ++g) {
          __m512bh qv[C];
          for (int c = 0; c < C; ++c) qv[c] = (__m512bh)_mm512_loadu_si512(qh + g * D + 32 * c);
          __m512 part[16];
          for (int j = 0; j < 16; ++j) {
            __m512 acc = _mm512_setzero_ps();
            for (int c = 0; c < C; ++c) acc = _mm512_dpbf16_ps(acc, qv[c], (__m512bh)_mm512_loadu_si512(k[j] + 32 * c));
            part[j] = acc;
          }
          _mm512_storeu_ps(scores.data() + g * Lp + l0, _mm512_mul_ps(sum16(part), sc));
        }
      }
      float inv[G];
      for (int g = 0; g < G; ++g) {  // softmax over the L real keys; 1/sum is applied to the output
        float* sg = scores.data() + g * Lp;
        auto tail = [&](int64_t l0) -> __mmask16 { return L - l0 >= 16 ? 0xFFFF : (1u << (L - l0)) - 1; };
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t l0 = 0; l0 < L; l0 += 16) mx = _mm512_mask_max_ps(mx, tail(l0), mx, _mm512_loadu_ps(sg + l0));
        const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (int64_t l0 = 0; l0 < L; l0 += 16) {
          const __m512 e = _mm512_maskz_mov_ps(tail(l0), r1::exp16(_mm512_sub_ps(_mm512_loadu_ps(sg + l0), m)));
          _mm512_storeu_ps(sg + l0, e);
          sum = _mm512_add_ps(sum, e);
        }
        inv[g] = 1.f / _mm512_reduce_add_ps(sum);
      }
      for (int g0 = 0; g0 < G; g0 += GB) {
        constexpr int N = GB;
        const int n = std::min<int>(N, G - g0);
        __m512 acc[N][V];
        for (int g = 0; g < N; ++g)
          for (int c = 0; c < V; ++c) acc[g][c] = _mm512_setzero_ps();
        for (int64_t l0 = 0; l0 < L; l0 += bs) {
          const T* vb = block(vp, l0);
          for (int64_t l = l0; l < std::min(L, l0 + bs); ++l) {
            const T* v = vb + (l - l0) * stride;
            __m512 vv[V];
            for (int c = 0; c < V; ++c) vv[c] = r1::load16(v + 16 * c);
            for (int g = 0; g < N; ++g) {
              if (g >= n) break;
              const __m512 p = _mm512_set1_ps(scores[(g0 + g) * Lp + l]);
              for (int c = 0; c < V; ++c) acc[g][c] = _mm512_fmadd_ps(p, vv[c], acc[g][c]);
            }
          }
        }
        for (int g = 0; g < n; ++g) {
          T* o = op + (b * H + h * G + g0 + g) * D;
          for (int c = 0; c < V; ++c) r1::store16(o + 16 * c, _mm512_mul_ps(acc[g][c], _mm512_set1_ps(inv[g0 + g])));
        }
      }
    }
  });
}
#endif

template <typename T>
static void dispatch(const at::Tensor& q, const at::Tensor& kc, const at::Tensor& vc, const at::Tensor& tables,
                     const at::Tensor& lens, int64_t bs, double scale, at::Tensor& out) {
  const int64_t d = q.size(2), g = q.size(1) / kc.size(1);
#if defined(R1_AVX512) && defined(__AVX512BF16__)
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (bs % 16 == 0) {
#define R1_BF16(DD, GG) \
  if (d == DD && g == GG) return run_bf16<DD, GG>(q, kc, vc, tables, lens, bs, scale, out);
#define R1_BF16S(DD) R1_BF16(DD, 1) R1_BF16(DD, 2) R1_BF16(DD, 3) R1_BF16(DD, 4) \
                     R1_BF16(DD, 5) R1_BF16(DD, 6) R1_BF16(DD, 7) R1_BF16(DD, 8)
      R1_BF16S(64)
      R1_BF16S(128)
    }
  }
#endif
#define R1_CASE(DD, GG) \
  if (d == DD && g == GG) return run<T, DD, GG>(q, kc, vc, tables, lens, bs, scale, out);
#define R1_CASES(DD) R1_CASE(DD, 1) R1_CASE(DD, 2) R1_CASE(DD, 3) R1_CASE(DD, 4) \
                     R1_CASE(DD, 5) R1_CASE(DD, 6) R1_CASE(DD, 7) R1_CASE(DD, 8)
  R1_CASES(64)
  R1_CASES(128)
  run<T, 0, 0>(q, kc, vc, tables, lens, bs, scale, out);
}

// k_cache[slots[i]] = k[i], v_cache[slots[i]] = v[i]: index_copy_'s result for the decode step's few rows, in a
// microsecond instead of its ~35 (k, v [T, Hkv, D] with contiguous heads: v is a view into the qkv output).
void store_kv(at::Tensor k_cache, at::Tensor v_cache, at::Tensor slots, at::Tensor k, at::Tensor v) {
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "the KV caches must be contiguous");
  TORCH_CHECK(k.scalar_type() == k_cache.scalar_type() && v.scalar_type() == v_cache.scalar_type(), "dtypes differ");
  const int64_t T = k.size(0), row = k_cache.stride(0);
  TORCH_CHECK(v.size(0) == T && slots.numel() == T && k.numel() == T * row && v.numel() == T * row, "shapes differ");
  auto s = slots.to(at::kLong).contiguous();
  const int64_t* sp = s.data_ptr<int64_t>();
  const int64_t n_slots = k_cache.size(0), bytes = row * k.element_size();
  for (const at::Tensor* t : {&k, &v})
    TORCH_CHECK(t->stride(-1) == 1 && t->stride(-2) == t->size(-1), "K/V heads must be contiguous within a row");
  auto* kc = static_cast<char*>(k_cache.data_ptr());
  auto* vc = static_cast<char*>(v_cache.data_ptr());
  for (int64_t i = 0; i < T; ++i) {
    TORCH_CHECK(sp[i] >= 0 && sp[i] < n_slots, "slot out of range");
    std::memcpy(kc + sp[i] * bytes, static_cast<const char*>(k.data_ptr()) + i * k.stride(0) * k.element_size(), bytes);
    std::memcpy(vc + sp[i] * bytes, static_cast<const char*>(v.data_ptr()) + i * v.stride(0) * v.element_size(), bytes);
  }
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

cpp_build.register("attention", _SOURCE, ["paged_decode_attention", "store_kv"])


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
