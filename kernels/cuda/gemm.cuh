/*
** gemm.cuh -- gemm_<fmt>: y[T][rows] = x[T][cols] . W^T for many tokens.
**
** Included by the per-format lin_*.cu files, which instantiate it.
**
** Shape: 256 threads = 8 warps; a CTA computes a BM x BN = 64 tokens x 128
** weight rows tile of y, stepping over K in BK = 32 columns (one block of
** codes). Per step: x tile (64 x 32 fp16, one 16-byte load per thread) and
** weight tile (128 rows x 32 codes: warps 0-3 decode codes 0-15 of rows
** 0..127, warps 4-7 codes 16-31) are fetched into registers for step k+1
** while the tensor cores work on step k; the weights are dequantised to fp16
** (s*c+m etc. in fp32, rounded once; fp8 exact, its row scale applied in the
** epilogue; lut entries copied) into the other shared-memory buffer. Each
** warp owns a 32 x 32 sub-tile: 2 x 2 WMMA 16x16x16 fp16 fragments, fp32
** accumulators; the epilogue goes through shared memory to coalesced stores.
*/
#ifndef QSR_CUDA_GEMM_CUH
#define QSR_CUDA_GEMM_CUH

#include "kernels/cuda/common.cuh"

#include <mma.h>

#define GEMM_BM 64
#define GEMM_BN 128
#define GEMM_BK 32
#define GEMM_THREADS 256
#define GEMM_LDS (GEMM_BK + 8)  /* halves per shared row: 80 bytes, conflict-free */
#define GEMM_LDC (GEMM_BN + 4)  /* floats per epilogue row */

struct gemm_smem {
  union {
    struct {
      __half x[2][GEMM_BM][GEMM_LDS];
      __half w[2][GEMM_BN][GEMM_LDS];
    } ab;
    float c[GEMM_BM][GEMM_LDC];
  } u;
  int orow[GEMM_BM];       /* output row of each token slot, -1 = empty */
};

/* A thread's share of one K step: 8 activations and 16 codes of one row. */
template <int FMT, int BITS> struct gemm_regs {
  static constexpr bool FLOAT = FMT == QSR_WFMT_FP16 || FMT == QSR_WFMT_BF16 || FMT == QSR_WFMT_FP8;
  /* fp16/bf16: 16 values (32 B); fp8: 16 codes (16 B); packed: the whole block */
  static constexpr int WBYTES = FLOAT ? (FMT == QSR_WFMT_FP8 ? 16 : 32) : 4 * BITS;
  uint4 x;
  union {
    uint32_t w[WBYTES / 4];
    uint8_t b[WBYTES];
  } u;
  float s, m;              /* group scale and min (int), scale (int_sym, log) */
  const uint16_t *cb;      /* lut: the group's codebook */
};

template <int FMT, int BITS>
__device__ __forceinline__ void gemm_fetch(gemm_regs<FMT, BITS> &g, const lin_args &a,
                                           const __half *xrow, const uint8_t *wrow,
                                           const uint8_t *mrow, bool rok, uint32_t kt, int h) {
  typedef gemm_regs<FMT, BITS> G;
  const uint32_t cols = a.w.cols;
  const int q = threadIdx.x & 3;
  /* x: 8 halves at column 32*kt + 8q */
  uint32_t c0 = GEMM_BK * kt + 8 * q;
  if (!xrow) {
    g.x = make_uint4(0, 0, 0, 0);
  } else if (a.xvec && c0 + 8 <= cols) {
    g.x = __ldg((const uint4 *)(xrow + c0));
  } else {
    uint16_t hv[8];
#pragma unroll
    for (int i = 0; i < 8; i++) hv[i] = c0 + i < cols ? __half_as_ushort(xrow[c0 + i]) : 0;
    g.x = make_uint4(hv[0] | (uint32_t)hv[1] << 16, hv[2] | (uint32_t)hv[3] << 16,
                     hv[4] | (uint32_t)hv[5] << 16, hv[6] | (uint32_t)hv[7] << 16);
  }
  /* weights */
#pragma unroll
  for (int i = 0; i < G::WBYTES / 4; i++) g.u.w[i] = 0;
  g.s = 1.0f;
  g.m = 0.0f;
  g.cb = nullptr;
  if (!rok) return;
  if constexpr (G::FLOAT) {
    constexpr int ES = FMT == QSR_WFMT_FP8 ? 1 : 2;   /* bytes per element */
    uint32_t e0 = GEMM_BK * kt + 16 * h;              /* first column */
    const uint8_t *p = wrow + (uint64_t)e0 * ES;
    bool vec = (FMT == QSR_WFMT_FP8 ? cols % 16 == 0 : cols % 8 == 0) && e0 + 16 <= cols;
    if (vec) {
#pragma unroll
      for (int i = 0; i < G::WBYTES / 16; i++) {
        uint4 v = ld_stream_v4(p + 16 * i);
        g.u.w[4 * i] = v.x;
        g.u.w[4 * i + 1] = v.y;
        g.u.w[4 * i + 2] = v.z;
        g.u.w[4 * i + 3] = v.w;
      }
    } else if constexpr (FMT == QSR_WFMT_FP8) {
#pragma unroll
      for (int i = 0; i < 16; i++) g.u.b[i] = e0 + i < cols ? p[i] : 0;
    } else {
      const uint16_t *hp = (const uint16_t *)p;
#pragma unroll
      for (int i = 0; i < 8; i++) {
        uint32_t lo = e0 + 2 * i < cols ? hp[2 * i] : 0;
        uint32_t hi = e0 + 2 * i + 1 < cols ? hp[2 * i + 1] : 0;
        g.u.w[i] = lo | hi << 16;
      }
    }
  } else {
    const uint8_t *p = wrow + (uint64_t)kt * G::WBYTES;
    if constexpr (G::WBYTES % 16 == 0) {
#pragma unroll
      for (int i = 0; i < G::WBYTES / 16; i++) {
        uint4 v = ld_stream_v4(p + 16 * i);
        g.u.w[4 * i] = v.x;
        g.u.w[4 * i + 1] = v.y;
        g.u.w[4 * i + 2] = v.z;
        g.u.w[4 * i + 3] = v.w;
      }
    } else if constexpr (G::WBYTES % 8 == 0) {
#pragma unroll
      for (int i = 0; i < G::WBYTES / 8; i++) {
        uint2 v = ld_stream_v2(p + 8 * i);
        g.u.w[2 * i] = v.x;
        g.u.w[2 * i + 1] = v.y;
      }
    } else {
#pragma unroll
      for (int i = 0; i < G::WBYTES / 4; i++) g.u.w[i] = ld_stream_u32(p + 4 * i);
    }
    uint32_t grp = GEMM_BK * kt / a.w.group_codes;
    if constexpr (FMT == QSR_WFMT_INT) {
      uint32_t mv = __ldg((const unsigned int *)(mrow + 4ull * grp));
      g.s = h2f((uint16_t)(mv & 0xffffu));
      g.m = h2f((uint16_t)(mv >> 16));
    } else if constexpr (FMT == QSR_WFMT_INT_SYM || FMT == QSR_WFMT_LOG) {
      g.s = h2f(__ldg((const unsigned short *)mrow + grp));
    } else {
      g.cb = (const uint16_t *)(mrow + (uint64_t)grp * (2u << BITS));
    }
  }
}

/* Dequantise codes H*16 .. H*16+15 into dst[16] (fp16). */
template <int FMT, int BITS, int H>
__device__ __forceinline__ void gemm_dequant(const gemm_regs<FMT, BITS> &g, __half *dst) {
  uint32_t o[8];
  if constexpr (FMT == QSR_WFMT_FP16) {
#pragma unroll
    for (int i = 0; i < 8; i++) o[i] = g.u.w[i];
  } else if constexpr (FMT == QSR_WFMT_BF16) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      uint32_t lo = f2h(qsr_bf16_to_f32((uint16_t)(g.u.w[i] & 0xffffu)));
      uint32_t hi = f2h(qsr_bf16_to_f32((uint16_t)(g.u.w[i] >> 16)));
      o[i] = lo | hi << 16;
    }
  } else if constexpr (FMT == QSR_WFMT_FP8) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      uint32_t lo = f2h(qsr_e4m3_to_f32(g.u.b[2 * i]));
      uint32_t hi = f2h(qsr_e4m3_to_f32(g.u.b[2 * i + 1]));
      o[i] = lo | hi << 16;
    }
  } else {
    uint16_t hv[16];
#pragma unroll
    for (int i = 0; i < 16; i++) {
      uint32_t c = qsr_code_get(g.u.b, BITS, 16 * H + i);
      if constexpr (FMT == QSR_WFMT_INT) hv[i] = f2h(fmaf(g.s, code_f32(c), g.m));
      else if constexpr (FMT == QSR_WFMT_INT_SYM)
        hv[i] = f2h(g.s * code_f32_minus(c, (float)(1 << (BITS - 1))));
      else if constexpr (FMT == QSR_WFMT_LOG) hv[i] = f2h(g.s * qsr_log_level(c, BITS));
      else hv[i] = g.cb ? __ldg(g.cb + c) : 0;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) o[i] = hv[2 * i] | (uint32_t)hv[2 * i + 1] << 16;
  }
  uint4 *d = (uint4 *)dst;
  d[0] = make_uint4(o[0], o[1], o[2], o[3]);
  d[1] = make_uint4(o[4], o[5], o[6], o[7]);
}

template <int FMT, int BITS>
__device__ __forceinline__ void gemm_body(const lin_args &a, const uint8_t *wd, const uint8_t *wm,
                                          int e, int mtile) {
  using namespace nvcuda;
  __shared__ __align__(128) gemm_smem sm;
  const int tid = threadIdx.x, warp = tid >> 5;
  const uint32_t rows = a.w.rows;
  const uint32_t n0 = blockIdx.x * GEMM_BN;

  if (tid < GEMM_BM) {
    int o = -1;
    if (lin_xrow(a, e, mtile * GEMM_BM + tid, &o) == nullptr) o = -1;
    sm.orow[tid] = o;
  }
  __syncthreads();
  if (sm.orow[0] < 0) return; /* no token in this tile (uniform) */

  /* this thread's x row (slot tid/4) and weight row (tid & 127, half tid >> 7) */
  const int xm = tid >> 2;
  int dummy = 0;
  const __half *xrow = sm.orow[xm] >= 0 ? lin_xrow(a, e, mtile * GEMM_BM + xm, &dummy) : nullptr;
  const int wn = tid & (GEMM_BN - 1), h = tid >> 7;
  const bool rok = n0 + wn < rows;
  const uint8_t *wrow = wd + (uint64_t)(rok ? n0 + wn : 0) * a.w.rdb;
  const uint8_t *mrow = wm ? wm + (uint64_t)(rok ? n0 + wn : 0) * a.w.rmb : nullptr;
  const uint32_t nk = (a.w.cols + GEMM_BK - 1) / GEMM_BK;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
  const int wm0 = (warp >> 2) * 32, wn0 = (warp & 3) * 32;

  gemm_regs<FMT, BITS> g;
  gemm_fetch<FMT, BITS>(g, a, xrow, wrow, mrow, rok, 0, h);
  *(uint4 *)&sm.u.ab.x[0][xm][8 * (tid & 3)] = g.x;
  if (h == 0) gemm_dequant<FMT, BITS, 0>(g, &sm.u.ab.w[0][wn][0]);
  else gemm_dequant<FMT, BITS, 1>(g, &sm.u.ab.w[0][wn][16]);
  __syncthreads();

  for (uint32_t kt = 0; kt < nk; kt++) {
    const int buf = kt & 1;
    if (kt + 1 < nk) gemm_fetch<FMT, BITS>(g, a, xrow, wrow, mrow, rok, kt + 1, h);
#pragma unroll
    for (int kk = 0; kk < GEMM_BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; i++)
        wmma::load_matrix_sync(fa[i], &sm.u.ab.x[buf][wm0 + 16 * i][kk], GEMM_LDS);
#pragma unroll
      for (int j = 0; j < 2; j++)
        wmma::load_matrix_sync(fb[j], &sm.u.ab.w[buf][wn0 + 16 * j][kk], GEMM_LDS);
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    if (kt + 1 < nk) {
      *(uint4 *)&sm.u.ab.x[buf ^ 1][xm][8 * (tid & 3)] = g.x;
      if (h == 0) gemm_dequant<FMT, BITS, 0>(g, &sm.u.ab.w[buf ^ 1][wn][0]);
      else gemm_dequant<FMT, BITS, 1>(g, &sm.u.ab.w[buf ^ 1][wn][16]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(&sm.u.c[wm0 + 16 * i][wn0 + 16 * j], acc[i][j], GEMM_LDC,
                              wmma::mem_row_major);
  __syncthreads();
  for (int idx = tid; idx < GEMM_BM * GEMM_BN; idx += GEMM_THREADS) {
    const int m = idx / GEMM_BN, n = idx % GEMM_BN;
    const int o = sm.orow[m];
    if (o < 0 || n0 + n >= rows) continue;
    float v = sm.u.c[m][n];
    if constexpr (FMT == QSR_WFMT_FP8) v *= __ldg((const float *)(wm + (uint64_t)(n0 + n) * a.w.rmb));
    lin_store(a, o, n0 + n, v);
  }
}

template <int FMT, int BITS>
static __global__ void __launch_bounds__(GEMM_THREADS) gemm_plain(const lin_args a) {
  gemm_body<FMT, BITS>(a, a.w.data, a.w.meta, 0, (int)blockIdx.y);
}

template <int FMT, int BITS>
static __global__ void __launch_bounds__(GEMM_THREADS)
    gemm_moe(const lin_args a, const __grid_constant__ lin_tab tab) {
  int e = (int)blockIdx.y;
  gemm_body<FMT, BITS>(a, tab.data[e], tab.meta[e], e, (int)blockIdx.z);
}

/* Launcher: plain grid (row tiles, token tiles); MoE grid (row tiles,
** experts, pair tiles of up to max_pairs pairs per expert). */
template <int FMT, int BITS>
static void gemm_launch_fb(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                           cudaStream_t s) {
  const unsigned nt = (a.w.rows + GEMM_BN - 1) / GEMM_BN;
  if (tab) {
    const dim3 grid(nt, (unsigned)experts, (unsigned)((max_pairs + GEMM_BM - 1) / GEMM_BM));
    gemm_moe<FMT, BITS><<<grid, GEMM_THREADS, 0, s>>>(a, *tab);
  } else {
    const dim3 grid(nt, (unsigned)((a.T + GEMM_BM - 1) / GEMM_BM));
    gemm_plain<FMT, BITS><<<grid, GEMM_THREADS, 0, s>>>(a);
  }
}

#endif
