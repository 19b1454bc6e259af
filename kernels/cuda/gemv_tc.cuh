/*
** gemv_tc.cuh -- gemv_int / gemv_int_sym at 4 and 8 bits on the tensor cores
** (mma.sync m16n8k16, fp16 operands, fp32 accumulators; sm_80+).
**
** Why: at batch 1 a 4-bit weight is half a byte, so unpack + convert + FMA on
** the CUDA cores (gemv.cuh, about 5 instructions a weight) is as slow as the
** memory. Here the codes go straight into mma B fragments: a byte_perm, a
** lop3 (0x6400 magic: 1024 + code as fp16) and one HFMA2 make two exact fp16
** codes (about 0.75 instructions a code); the mma does the products.
**
** Shape: 256 threads = 8 warps; a CTA owns 16 weight rows (two n8 tiles) and
** 16 token slots (grid.y: token chunks, or MoE pair chunks); the warps split
** the row's 32-code blocks into 8 contiguous K ranges and add their partial
** sums through shared memory at the end (fixed order: deterministic).
** Fragments (PTX ISA, m16n8k16, g = lane/4, q = lane%4):
**   A (x, 16 tokens x 16 k):  a0 = (g, 2q..2q+1)   a1 = (g+8, 2q..)   a2 = (g, 2q+8..)   a3 = (g+8, 2q+8..)
**   B (codes, 16 k x 8 rows): b0 = (2q..2q+1, g)   b1 = (2q+8..2q+9, g)
**   C (16 tokens x 8 rows):   c0 = (g, 2q)  c1 = (g, 2q+1)  c2 = (g+8, 2q)  c3 = (g+8, 2q+1)
** A lane loads the whole block of its B row (16 or 32 bytes; the 4 lanes of
** a row load the same address: one transaction) and picks its bytes: for
** 4 bits, codes 16s+2q, +1 are byte q of word 2s, codes 16s+2q+8, +9 byte q
** of word 2s+1. The group scale is factored out: the tile accumulates
** sum(code * x) over a group, then acc += s * C (+ m * sum x for int; sum x
** comes from one more mma against a B of ones). Tensor-core fp32
** accumulation truncates instead of rounding: at most 1 ulp per add, inside
** the tests' accumulation bound.
*/
#ifndef QSR_CUDA_GEMV_TC_CUH
#define QSR_CUDA_GEMV_TC_CUH

#include "kernels/cuda/common.cuh"

#define GEMV_TC_WARPS 8
#define GEMV_TC_ROWS 16
#define GEMV_TC_SLOTS 16

template <int FMT, int BITS> struct gemv_tc_on {
  static constexpr bool value = (FMT == QSR_WFMT_INT || FMT == QSR_WFMT_INT_SYM) && (BITS == 4 || BITS == 8);
};

__device__ __forceinline__ void mma_16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *(const uint32_t *)&h; }

/* Byte q of w as two exact fp16 codes minus off: (low nibble, high nibble). */
__device__ __forceinline__ uint32_t nib2_f16(uint32_t w, int q, float off) {
  const uint32_t x = __byte_perm(w, 0, (uint32_t)q | 0x40u | ((uint32_t)q << 8) | 0x4000u);
  uint32_t y = (x & 0x00F0000Fu) | 0x64006400u; /* 1024 + lo, 1024 + 16 hi */
  const __half2 r = __hfma2(*(const __half2 *)&y, __halves2half2(__float2half(1.0f), __float2half(0.0625f)),
                            __halves2half2(__float2half(-1024.0f - off), __float2half(-64.0f - off)));
  return h2_bits(r);
}

/* Bytes 2h, 2h+1 of w as two exact fp16 codes minus off. */
__device__ __forceinline__ uint32_t byte2_f16(uint32_t w, int h, float off) {
  const uint32_t s = (uint32_t)(2 * h) | 0x40u | ((uint32_t)(2 * h + 1) << 8) | 0x4000u;
  uint32_t y = __byte_perm(w, 0x64646464u, s); /* 1024 + b, as fp16 */
  const __half2 r = __hsub2(*(const __half2 *)&y, __float2half2_rn(1024.0f + off));
  return h2_bits(r);
}

/* Two fp16 x values at column k of an x row (zeros past cols / for no row). */
__device__ __forceinline__ uint32_t x_pair(const __half *xr, uint32_t k, uint32_t cols, int xvec) {
  if (!xr) return 0;
  if (xvec) return k < cols ? __ldg((const unsigned int *)(xr + k)) : 0u;
  uint32_t lo = k < cols ? __half_as_ushort(xr[k]) : 0, hi = k + 1 < cols ? __half_as_ushort(xr[k + 1]) : 0;
  return lo | hi << 16;
}

template <int FMT, int BITS>
__device__ __forceinline__ void gemv_tc_body(const lin_args &a, const uint8_t *wd, const uint8_t *wm,
                                             int e, int chunk) {
  constexpr int BB = 4 * BITS;                 /* bytes per block */
  constexpr int U = BITS == 4 ? 4 : 2;         /* blocks per step, loads in flight */
  constexpr float OFF = FMT == QSR_WFMT_INT_SYM ? (float)(1 << (BITS - 1)) : 0.0f;
  __shared__ float red[GEMV_TC_WARPS][GEMV_TC_SLOTS][GEMV_TC_ROWS + 1];
  __shared__ int s_orow[GEMV_TC_SLOTS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
  const uint32_t rows = a.w.rows, cols = a.w.cols, r0 = blockIdx.x * GEMV_TC_ROWS;

  if (threadIdx.x < GEMV_TC_SLOTS) {
    int o = -1;
    if (!lin_xrow(a, e, chunk * GEMV_TC_SLOTS + threadIdx.x, &o)) o = -1;
    s_orow[threadIdx.x] = o;
  }
  __syncthreads();
  if (s_orow[0] < 0) return; /* uniform: slots fill from the first */

  /* this lane's x rows (tokens g, g+8) and B rows (r0 + 8j + g) */
  int dummy;
  const __half *xr0 = s_orow[g] >= 0 ? lin_xrow(a, e, chunk * GEMV_TC_SLOTS + g, &dummy) : nullptr;
  const __half *xr1 = s_orow[g + 8] >= 0 ? lin_xrow(a, e, chunk * GEMV_TC_SLOTS + g + 8, &dummy) : nullptr;
  const uint8_t *brow[2];
  bool bok[2];
  /* C rows of the lane: r0 + 8j + 2q + {0,1}; their metadata rows */
  const uint8_t *mrow[2][2];
  bool cok[2][2];
#pragma unroll
  for (int j = 0; j < 2; j++) {
    const uint32_t rb = r0 + 8 * j + g;
    bok[j] = rb < rows;
    brow[j] = wd + (uint64_t)(bok[j] ? rb : 0) * a.w.rdb;
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const uint32_t rc = r0 + 8 * j + 2 * q + i;
      cok[j][i] = rc < rows;
      mrow[j][i] = wm + (uint64_t)(cok[j][i] ? rc : 0) * a.w.rmb;
    }
  }

  const uint32_t nblk = a.w.bpr, bpg = a.w.group_codes / 32;
  const uint32_t per = (nblk + GEMV_TC_WARPS - 1) / GEMV_TC_WARPS;
  const uint32_t kb0 = warp * per, kb1 = min(nblk, kb0 + per);

  float acc[2][4], cg[2][4], xg[4];
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[j][i] = cg[j][i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; i++) xg[i] = 0.0f;
  const uint32_t ones = 0x3C003C00u; /* fp16 (1, 1) */
  uint32_t grp = kb0 / bpg, gpos = kb0 % bpg; /* group of block kb, and kb's place in it */

  for (uint32_t kb = kb0; kb < kb1; kb += U) {
    uint32_t w[U][2][BB / 4];
    uint32_t xa[U][2][4];
    /* issue the loads of U blocks */
#pragma unroll
    for (int u = 0; u < U; u++) {
      const uint32_t b = kb + u;
#pragma unroll
      for (int j = 0; j < 2; j++) {
        if (b < kb1 && bok[j]) {
#pragma unroll
          for (int v = 0; v < BB / 16; v++) {
            const uint4 t = ld_stream_v4(brow[j] + (uint64_t)b * BB + 16 * v);
            w[u][j][4 * v] = t.x;
            w[u][j][4 * v + 1] = t.y;
            w[u][j][4 * v + 2] = t.z;
            w[u][j][4 * v + 3] = t.w;
          }
        } else {
#pragma unroll
          for (int v = 0; v < BB / 4; v++) w[u][j][v] = 0;
        }
      }
#pragma unroll
      for (int s = 0; s < 2; s++) {
        const uint32_t k = 32 * b + 16 * s + 2 * q;
        const bool in = b < kb1;
        xa[u][s][0] = in ? x_pair(xr0, k, cols, a.xvec) : 0;
        xa[u][s][1] = in ? x_pair(xr1, k, cols, a.xvec) : 0;
        xa[u][s][2] = in ? x_pair(xr0, k + 8, cols, a.xvec) : 0;
        xa[u][s][3] = in ? x_pair(xr1, k + 8, cols, a.xvec) : 0;
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const uint32_t b = kb + u;
      if (b >= kb1) break; /* uniform over the warp */
#pragma unroll
      for (int s = 0; s < 2; s++) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
          uint32_t b0, b1;
          if constexpr (BITS == 4) {
            b0 = nib2_f16(w[u][j][2 * s], q, OFF);
            b1 = nib2_f16(w[u][j][2 * s + 1], q, OFF);
          } else {
            const int hw = q & 1;
            b0 = byte2_f16((q & 2) ? w[u][j][4 * s + 1] : w[u][j][4 * s], hw, OFF);
            b1 = byte2_f16((q & 2) ? w[u][j][4 * s + 3] : w[u][j][4 * s + 2], hw, OFF);
          }
          mma_16816(cg[j], xa[u][s], b0, b1);
        }
        if constexpr (FMT == QSR_WFMT_INT) mma_16816(xg, xa[u][s], ones, ones);
      }
      /* end of a group or of this warp's range: fold in the group's scale */
      const bool gend = ++gpos == bpg;
      if (gend || b + 1 == kb1) {
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
          for (int i = 0; i < 2; i++) {
            float sc = 0.0f, mn = 0.0f;
            if (cok[j][i]) {
              if constexpr (FMT == QSR_WFMT_INT) {
                const uint32_t mv = __ldg((const unsigned int *)(mrow[j][i] + 4ull * grp));
                sc = h2f((uint16_t)(mv & 0xffffu));
                mn = h2f((uint16_t)(mv >> 16));
              } else {
                sc = h2f(__ldg((const unsigned short *)mrow[j][i] + grp));
              }
            }
            /* c_i: token g, c_{i+2}: token g+8 (row 2q+i) */
            acc[j][i] = fmaf(sc, cg[j][i], fmaf(mn, xg[0], acc[j][i]));
            acc[j][i + 2] = fmaf(sc, cg[j][i + 2], fmaf(mn, xg[2], acc[j][i + 2]));
            cg[j][i] = cg[j][i + 2] = 0.0f;
          }
#pragma unroll
        for (int i = 0; i < 4; i++) xg[i] = 0.0f;
        if (gend) {
          grp++;
          gpos = 0;
        }
      }
    }
  }

  /* add the warps' K ranges in a fixed order */
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int i = 0; i < 2; i++) {
      red[warp][g][8 * j + 2 * q + i] = acc[j][i];
      red[warp][g + 8][8 * j + 2 * q + i] = acc[j][i + 2];
    }
  __syncthreads();
  for (int idx = threadIdx.x; idx < GEMV_TC_SLOTS * GEMV_TC_ROWS; idx += GEMV_TC_WARPS * 32) {
    const int t = idx / GEMV_TC_ROWS, n = idx % GEMV_TC_ROWS;
    const int o = s_orow[t];
    if (o < 0 || r0 + n >= rows) continue;
    float v = 0.0f;
#pragma unroll
    for (int w8 = 0; w8 < GEMV_TC_WARPS; w8++) v += red[w8][t][n];
    lin_store(a, o, r0 + n, v);
  }
}

template <int FMT, int BITS>
static __global__ void __launch_bounds__(GEMV_TC_WARPS * 32) gemv_tc_plain(const lin_args a) {
  gemv_tc_body<FMT, BITS>(a, a.w.data, a.w.meta, 0, (int)blockIdx.y);
}

template <int FMT, int BITS>
static __global__ void __launch_bounds__(GEMV_TC_WARPS * 32)
    gemv_tc_moe(const lin_args a, const __grid_constant__ lin_tab tab) {
  const int e = (int)blockIdx.y;
  gemv_tc_body<FMT, BITS>(a, tab.data[e], tab.meta[e], e, (int)blockIdx.z);
}

/* Plain: grid (rows/16, T/16); MoE: grid (rows/16, experts, max_pairs/16). */
template <int FMT, int BITS>
static void gemv_tc_launch(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                           cudaStream_t s) {
  const unsigned nr = (a.w.rows + GEMV_TC_ROWS - 1) / GEMV_TC_ROWS;
  if (tab) {
    const dim3 grid(nr, (unsigned)experts, (unsigned)((max_pairs + GEMV_TC_SLOTS - 1) / GEMV_TC_SLOTS));
    gemv_tc_moe<FMT, BITS><<<grid, GEMV_TC_WARPS * 32, 0, s>>>(a, *tab);
  } else {
    const dim3 grid(nr, (unsigned)((a.T + GEMV_TC_SLOTS - 1) / GEMV_TC_SLOTS));
    gemv_tc_plain<FMT, BITS><<<grid, GEMV_TC_WARPS * 32, 0, s>>>(a);
  }
}

#endif
