/*
** gemv.cuh -- gemv_<fmt>: y[T][rows] = x[T][cols] . W^T for few tokens.
**
** Included by the per-format lin_*.cu files, which instantiate it.
**
** Shape: 128 threads = 4 warps; a warp owns R weight rows; lane l reads the
** 32-column blocks l, l+32, ... of its rows with 16-, 8- or 4-byte loads that
** bypass L1 (a warp reads 32 consecutive blocks of a row: coalesced), BU
** blocks per row in flight. x (fp16) comes through L1 with 16-byte loads and
** is shared by the R rows. Per block and token the 32 products are summed
** with the group scale factored out (int: s*sum(c*x) + m*sum(x); int_sym,
** log: s*sum(level*x)), then a warp reduction per (row, token).
**   TMAX | R | BU   tokens per CTA (grid.y chunks), rows per warp, blocks in flight
**     1  | 2 | 2
**     4  | 2 | 1
**    16  | 1 | 1
** Codes are decoded with qcode.h (qsr_code_get, qsr_log_level, qsr_e4m3_to_f32,
** qsr_bf16_to_f32) on bytes held in registers.
** int and int_sym at 4 and 8 bits take the tensor-core kernel of gemv_tc.cuh
** instead (unless built with -DQSR_CUDA_GEMV_FFMA_ONLY).
*/
#ifndef QSR_CUDA_GEMV_CUH
#define QSR_CUDA_GEMV_CUH

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemv_tc.cuh"

#define GEMV_WARPS 4

template <int TMAX> struct gemv_shape {
  static constexpr int R = TMAX >= 16 ? 1 : 2;
  static constexpr int BU = TMAX == 1 ? 2 : 1;
};

/* One 32-column block of a row as raw bytes, held in registers. */
template <int FMT, int BITS> struct wblk {
  static constexpr bool FLOAT = FMT == QSR_WFMT_FP16 || FMT == QSR_WFMT_BF16 || FMT == QSR_WFMT_FP8;
  static constexpr int BYTES =
      (FMT == QSR_WFMT_FP16 || FMT == QSR_WFMT_BF16) ? 64 : (FMT == QSR_WFMT_FP8 ? 32 : 4 * BITS);
  static constexpr int ALIGN = BYTES % 16 == 0 ? 16 : (BYTES % 8 == 0 ? 8 : 4);
  union {
    uint32_t w[BYTES / 4];
    uint8_t b[BYTES];
  } u;
};

/* Aligned load of a whole block (p aligned to B::ALIGN). */
template <class B> __device__ __forceinline__ void wblk_load(B &blk, const uint8_t *p) {
  if constexpr (B::ALIGN == 16) {
#pragma unroll
    for (int i = 0; i < B::BYTES / 16; i++) {
      uint4 v = ld_stream_v4(p + 16 * i);
      blk.u.w[4 * i] = v.x;
      blk.u.w[4 * i + 1] = v.y;
      blk.u.w[4 * i + 2] = v.z;
      blk.u.w[4 * i + 3] = v.w;
    }
  } else if constexpr (B::ALIGN == 8) {
#pragma unroll
    for (int i = 0; i < B::BYTES / 8; i++) {
      uint2 v = ld_stream_v2(p + 8 * i);
      blk.u.w[2 * i] = v.x;
      blk.u.w[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < B::BYTES / 4; i++) blk.u.w[i] = ld_stream_u32(p + 4 * i);
  }
}

/* fp16/bf16/fp8 block that is partial (cols % 32) or not 16-byte aligned:
** element loads, zeros past cols. p points at column 0 of the block. */
template <class B, int FMT>
__device__ __forceinline__ void wblk_load_slow(B &blk, const uint8_t *p, int n) {
  if constexpr (FMT == QSR_WFMT_FP8) {
#pragma unroll
    for (int i = 0; i < 32; i++) blk.u.b[i] = i < n ? p[i] : 0;
  } else {
    const uint16_t *h = (const uint16_t *)p;
#pragma unroll
    for (int i = 0; i < 16; i++) {
      uint32_t lo = 2 * i < n ? h[2 * i] : 0, hi = 2 * i + 1 < n ? h[2 * i + 1] : 0;
      blk.u.w[i] = lo | (hi << 16);
    }
  }
}

/* The 32 weight levels of a block (before the group scale, which the caller
** applies to the dot product): int: code; int_sym: code - 2^(b-1); log:
** +-2^-m or 0; lut: codebook entry; fp16/bf16/fp8: the value (fp8 without its
** row scale). lut: cb = the group's codebook. */
template <int FMT, int BITS>
__device__ __forceinline__ void wblk_levels(const wblk<FMT, BITS> &blk, const uint16_t *cb,
                                            float *lv) {
  if constexpr (FMT == QSR_WFMT_FP16) {
#pragma unroll
    for (int i = 0; i < 16; i++) {
      lv[2 * i] = h2f((uint16_t)(blk.u.w[i] & 0xffffu));
      lv[2 * i + 1] = h2f((uint16_t)(blk.u.w[i] >> 16));
    }
  } else if constexpr (FMT == QSR_WFMT_BF16) {
#pragma unroll
    for (int i = 0; i < 16; i++) {
      lv[2 * i] = qsr_bf16_to_f32((uint16_t)(blk.u.w[i] & 0xffffu));
      lv[2 * i + 1] = qsr_bf16_to_f32((uint16_t)(blk.u.w[i] >> 16));
    }
  } else if constexpr (FMT == QSR_WFMT_FP8) {
#pragma unroll
    for (int i = 0; i < 32; i++) lv[i] = qsr_e4m3_to_f32(blk.u.b[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 32; i++) {
      uint32_t c = qsr_code_get(blk.u.b, BITS, i);
      if constexpr (FMT == QSR_WFMT_INT) lv[i] = code_f32(c);
      else if constexpr (FMT == QSR_WFMT_INT_SYM) lv[i] = code_f32_minus(c, (float)(1 << (BITS - 1)));
      else if constexpr (FMT == QSR_WFMT_LOG) lv[i] = qsr_log_level(c, BITS);
      else lv[i] = h2f(__ldg(cb + c));
    }
  }
}

/* 32 activations from column c0 of an fp16 row (zeros past cols). */
__device__ __forceinline__ void load_x32(const __half *xr, uint32_t c0, uint32_t cols, int xvec,
                                         float *xv) {
  if (xvec && c0 + 32 <= cols) {
    load_half32(xr + c0, xv);
  } else {
#pragma unroll
    for (int i = 0; i < 32; i++) xv[i] = c0 + i < cols ? __half2float(xr[c0 + i]) : 0.0f;
  }
}

template <int FMT, int BITS, int TMAX>
__device__ __forceinline__ void gemv_body(const lin_args &a, const uint8_t *wd, const uint8_t *wm,
                                          int e, int chunk) {
  typedef wblk<FMT, BITS> B;
  constexpr int R = gemv_shape<TMAX>::R, BU = gemv_shape<TMAX>::BU;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint32_t rows = a.w.rows, cols = a.w.cols;
  const uint32_t row0 = (blockIdx.x * GEMV_WARPS + warp) * R;
  if (row0 >= rows) return;
  const uint32_t nblk = B::FLOAT ? (cols + 31) / 32 : a.w.bpr;
  /* fp16/bf16 rows are 16-byte aligned when cols % 8 == 0, fp8 when % 16 == 0 */
  const bool fvec = FMT == QSR_WFMT_FP8 ? cols % 16 == 0 : cols % 8 == 0;

  /* x row of each token slot; the valid slots are a prefix of nt */
  int xi[TMAX];
  int nt = 0;
#pragma unroll
  for (int t = 0; t < TMAX; t++) {
    xi[t] = lin_xidx(a, e, chunk * TMAX + t);
    nt += xi[t] >= 0;
  }
  if (nt == 0) return;

  const uint8_t *wrow[R];
  const uint8_t *mrow[R];
  bool rok[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    rok[r] = row0 + r < rows;
    uint32_t rr = rok[r] ? row0 + r : row0;
    wrow[r] = wd + (uint64_t)rr * a.w.rdb;
    mrow[r] = wm ? wm + (uint64_t)rr * a.w.rmb : nullptr;
  }

  float acc[R][TMAX];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int t = 0; t < TMAX; t++) acc[r][t] = 0.0f;

  for (uint32_t b0 = lane; b0 < nblk; b0 += 32 * BU) {
    B blk[BU][R];
    float ms[BU][R], mm[BU][R];
    const uint16_t *cb[BU][R];
    /* issue every load first */
#pragma unroll
    for (int u = 0; u < BU; u++) {
      uint32_t b = b0 + 32 * u;
#pragma unroll
      for (int r = 0; r < R; r++) {
        ms[u][r] = 1.0f;
        mm[u][r] = 0.0f;
        cb[u][r] = nullptr;
        if (b >= nblk || !rok[r]) {
#pragma unroll
          for (int i = 0; i < B::BYTES / 4; i++) blk[u][r].u.w[i] = 0;
          continue;
        }
        if constexpr (B::FLOAT) {
          if (fvec && 32 * b + 32 <= cols) wblk_load(blk[u][r], wrow[r] + (uint64_t)b * B::BYTES);
          else
            wblk_load_slow<B, FMT>(blk[u][r], wrow[r] + (uint64_t)b * B::BYTES,
                                   (int)(cols - 32 * b));
        } else {
          wblk_load(blk[u][r], wrow[r] + (uint64_t)b * B::BYTES);
          uint32_t g = 32 * b / a.w.group_codes;
          if constexpr (FMT == QSR_WFMT_INT) {
            uint32_t m = __ldg((const unsigned int *)(mrow[r] + 4ull * g));
            ms[u][r] = h2f((uint16_t)(m & 0xffffu));
            mm[u][r] = h2f((uint16_t)(m >> 16));
          } else if constexpr (FMT == QSR_WFMT_INT_SYM || FMT == QSR_WFMT_LOG) {
            ms[u][r] = h2f(__ldg((const unsigned short *)mrow[r] + g));
          } else {
            cb[u][r] = (const uint16_t *)(mrow[r] + (uint64_t)g * (2u << BITS));
          }
        }
      }
    }
#pragma unroll
    for (int u = 0; u < BU; u++) {
      uint32_t b = b0 + 32 * u;
      if (b >= nblk) break;
      float lv[R][32];
#pragma unroll
      for (int r = 0; r < R; r++) {
        if constexpr (FMT == QSR_WFMT_LUT) {
          if (!rok[r]) {
#pragma unroll
            for (int i = 0; i < 32; i++) lv[r][i] = 0.0f;
            continue;
          }
        }
        wblk_levels<FMT, BITS>(blk[u][r], cb[u][r], lv[r]);
      }
#pragma unroll
      for (int t = 0; t < TMAX; t++) {
        if (t >= nt) break;
        float xv[32];
        load_x32(a.x + (size_t)xi[t] * (size_t)a.ldx, 32 * b, cols, a.xvec, xv);
        float xs = 0.0f;
        if constexpr (FMT == QSR_WFMT_INT) {
#pragma unroll
          for (int i = 0; i < 32; i++) xs += xv[i];
        }
#pragma unroll
        for (int r = 0; r < R; r++) {
          float d0 = 0.0f, d1 = 0.0f;
#pragma unroll
          for (int i = 0; i < 32; i += 2) {
            d0 = fmaf(lv[r][i], xv[i], d0);
            d1 = fmaf(lv[r][i + 1], xv[i + 1], d1);
          }
          float d = d0 + d1;
          if constexpr (FMT == QSR_WFMT_INT) acc[r][t] += fmaf(ms[u][r], d, mm[u][r] * xs);
          else if constexpr (FMT == QSR_WFMT_INT_SYM || FMT == QSR_WFMT_LOG)
            acc[r][t] = fmaf(ms[u][r], d, acc[r][t]);
          else acc[r][t] += d;
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < R; r++) {
    float rs = 1.0f;
    if constexpr (FMT == QSR_WFMT_FP8) rs = rok[r] ? __ldg((const float *)mrow[r]) : 0.0f;
#pragma unroll
    for (int t = 0; t < TMAX; t++) {
      if (t >= nt) break;
      float v = warp_sum(acc[r][t]) * rs;
      if (lane == ((r * TMAX + t) & 31) && rok[r]) {
        int o = 0;
        lin_xrow(a, e, chunk * TMAX + t, &o);
        lin_store(a, o, row0 + r, v);
      }
    }
  }
}

template <int FMT, int BITS, int TMAX>
static __global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_plain(const lin_args a) {
  gemv_body<FMT, BITS, TMAX>(a, a.w.data, a.w.meta, 0, (int)blockIdx.y);
}

template <int FMT, int BITS, int TMAX>
static __global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_moe(const lin_args a, const __grid_constant__ lin_tab tab) {
  int e = (int)blockIdx.y;
  gemv_body<FMT, BITS, TMAX>(a, tab.data[e], tab.meta[e], e, (int)blockIdx.z);
}

#define GEMV_MOE_TMAX 4

template <int FMT, int BITS, int TM>
static void gemv_launch_plain(const lin_args &a, cudaStream_t s) {
  constexpr int ROWS = GEMV_WARPS * gemv_shape<TM>::R;
  const dim3 grid((a.w.rows + ROWS - 1) / ROWS, (unsigned)((a.T + TM - 1) / TM));
  gemv_plain<FMT, BITS, TM><<<grid, GEMV_WARPS * 32, 0, s>>>(a);
}

/* Launcher: plain (tab NULL): TMAX by T, grid (row tiles, token chunks);
** MoE: TMAX = GEMV_MOE_TMAX, grid (row tiles, experts, pair chunks). */
template <int FMT, int BITS>
static void gemv_launch_fb(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                           cudaStream_t s) {
#ifndef QSR_CUDA_GEMV_FFMA_ONLY /* -D it to run every format on the CUDA cores */
  if constexpr (gemv_tc_on<FMT, BITS>::value) {
    gemv_tc_launch<FMT, BITS>(a, tab, experts, max_pairs, s);
    return;
  }
#endif
  if (tab) {
    constexpr int TM = GEMV_MOE_TMAX, ROWS = GEMV_WARPS * gemv_shape<TM>::R;
    const dim3 grid((a.w.rows + ROWS - 1) / ROWS, (unsigned)experts,
                    (unsigned)((max_pairs + TM - 1) / TM));
    gemv_moe<FMT, BITS, TM><<<grid, GEMV_WARPS * 32, 0, s>>>(a, *tab);
  } else if (a.T == 1) gemv_launch_plain<FMT, BITS, 1>(a, s);
  else if (a.T <= 4) gemv_launch_plain<FMT, BITS, 4>(a, s);
  else gemv_launch_plain<FMT, BITS, 16>(a, s);
}

#endif
