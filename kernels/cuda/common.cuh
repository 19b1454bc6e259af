/*
** common.cuh -- what every CUDA source of kernels/cuda shares: the error
** macros (STYLE R18), the C headers with C linkage, warp helpers, exact small conversions
** and the weight-matrix descriptor passed to kernels by value.
*/
#ifndef QSR_CUDA_COMMON_CUH
#define QSR_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "kernels/variants.h"
#include "util/err.h"
}
#include "kernels/cuda/qsr_cuda.h"
#include "kernels/qcode.h"
#include "kernels/qformat.h"
#include "kernels/qmatrix.h"

/* 32 fp16 values at p (16-byte aligned) into o[32] as fp32: four 16-byte
** loads through the read-only cache. Shared by the gemv activations and the
** fp16 KV cache. */
__device__ __forceinline__ void load_half32(const void *p, float *o) {
  const uint4 *q = (const uint4 *)p;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    uint4 v = __ldg(q + j);
    uint32_t w[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float2 f = __half22float2(*(const __half2 *)&w[k]);
      o[8 * j + 2 * k] = f.x;
      o[8 * j + 2 * k + 1] = f.y;
    }
  }
}

/* Formats *err as "file:line: function: statement: cuda error text (name)"
** and returns QSR_ERR_CUDA. Clears the non-sticky error state. */
int qsr_cuda_fail(const char *stmt, const char *fn, const char *file, int line, cudaError_t e,
                  char **err);

/* Every CUDA call: on failure return from the enclosing function (which has a
** `char **err` in scope) with QSR_ERR_CUDA; CUDA_OUT jumps to its `out:`
** label with `rc` set instead (for functions that must free first). */
#define CUDA_RET(x)                                                                   \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) return qsr_cuda_fail(#x, __func__, __FILE__, __LINE__, e_, err); \
  } while (0)
#define CUDA_OUT(x)                                                                   \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) {                                                          \
      rc = qsr_cuda_fail(#x, __func__, __FILE__, __LINE__, e_, err);                  \
      goto out;                                                                       \
    }                                                                                 \
  } while (0)
/* After a launch: configuration errors show up here, faults at the next sync. */
#define CUDA_LAUNCHED() CUDA_RET(cudaGetLastError())

/* Bad shapes: QSR_ERR_CONFIG with the entry point's name. */
#define CFG_FAIL(...) qsr_errf(err, QSR_ERR_CONFIG, __VA_ARGS__)

#define QSR_CUDA_STREAM(s) ((cudaStream_t)(s))

/* ---- warp and numeric helpers -------------------------------------------- */
#define QSR_FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(QSR_FULL_MASK, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(QSR_FULL_MASK, v, o));
  return v;
}

/* Sum within aligned groups of P lanes (P a power of two <= 32). */
template <int P>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = P / 2; o > 0; o >>= 1) v += __shfl_xor_sync(QSR_FULL_MASK, v, o);
  return v;
}

/* A non-negative integer code (< 2^23) as float without I2F: the bits of
** 2^23 + c minus 2^23, exact. Equal to (float)c. */
__device__ __forceinline__ float code_f32(uint32_t c) {
  return __int_as_float(0x4B000000u | c) - 8388608.0f;
}
/* (float)c - off, exact for c, off < 2^22: one FADD (int_sym levels). */
__device__ __forceinline__ float code_f32_minus(uint32_t c, float off) {
  return __int_as_float(0x4B000000u | c) - (8388608.0f + off);
}

/* fp16 bits <-> float. The hardware conversion is exact and equals
** qsr_f16_to_f32 for every non-nan input. */
__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }

__device__ __forceinline__ float silu_f(float g) { return g / (1.0f + expf(-g)); }
__device__ __forceinline__ float gelu_f(float x) {
  const float k0 = 0.7978845608028654f, k1 = 0.044715f; /* sqrt(2/pi) */
  return 0.5f * x * (1.0f + tanhf(k0 * (x + k1 * x * x * x)));
}

/* Streaming 16/8/4-byte loads that skip L1 (weights are read once per pass). */
__device__ __forceinline__ uint4 ld_stream_v4(const void *p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
__device__ __forceinline__ uint2 ld_stream_v2(const void *p) {
  uint2 r;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];"
               : "=r"(r.x), "=r"(r.y)
               : "l"(p));
  return r;
}
__device__ __forceinline__ uint32_t ld_stream_u32(const void *p) {
  uint32_t r;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}

/* ---- weight matrices ------------------------------------------------------- */
/* A qsr_qmatrix as kernels see it (by value). */
struct wdesc {
  int fmt, bits;
  uint32_t rows, cols;
  uint32_t bpr;            /* 32-code blocks per row (packed) */
  uint32_t group_codes;    /* codes per metadata group (packed) */
  uint64_t rdb, rmb;       /* row data / meta bytes */
  const uint8_t *data, *meta;
};

static inline wdesc wdesc_of(const qsr_qmatrix *m) {
  wdesc d;
  d.fmt = m->fmt;
  d.bits = m->bits;
  d.rows = m->rows;
  d.cols = m->cols;
  d.bpr = m->blocks_per_row;
  d.group_codes = m->group_codes;
  d.rdb = m->row_data_bytes;
  d.meta = m->meta;
  d.rmb = m->row_meta_bytes;
  d.data = m->data;
  return d;
}

/* Checks that m is a layout qsr_qmatrix_layout would have made (sizes agree)
** and that its device pointers are 16-byte aligned. 0 or QSR_ERR_CONFIG. */
int qsr_cuda_check_qmatrix(const qsr_qmatrix *m, const char *fn, char **err);

/* One element of a weight matrix, decoded as the C kernels do (qcode.h;
** explicit _rn operations so that nvcc does not contract s*c+m into an FMA
** the host never uses): the generic path of embedding. */
__device__ __forceinline__ float wdecode(const wdesc &w, uint32_t r, uint32_t c) {
  const uint8_t *row = w.data + (uint64_t)r * w.rdb;
  switch (w.fmt) {
  case QSR_WFMT_FP16: return h2f(((const uint16_t *)row)[c]);
  case QSR_WFMT_BF16: return qsr_bf16_to_f32(((const uint16_t *)row)[c]);
  case QSR_WFMT_FP8: return __fmul_rn(qsr_e4m3_to_f32(row[c]), *(const float *)(w.meta + 4ull * r));
  default: break;
  }
  /* a block of b-bit codes is 32*b/8 = 4b bytes (qsr_qblock_bytes, host-only) */
  const uint8_t *blk = row + (uint64_t)(c / QSR_QBLOCK) * (4u * (uint32_t)w.bits);
  uint32_t code = qsr_code_get(blk, w.bits, (int)(c % QSR_QBLOCK));
  uint32_t g = c / w.group_codes;
  const uint8_t *meta = w.meta + (uint64_t)r * w.rmb;
  switch (w.fmt) {
  case QSR_WFMT_INT: {
    const uint16_t *m = (const uint16_t *)(meta + 4ull * g);
    return __fadd_rn(__fmul_rn(h2f(m[0]), (float)code), h2f(m[1]));
  }
  case QSR_WFMT_INT_SYM: return __fmul_rn(h2f(((const uint16_t *)meta)[g]), qsr_int_sym_level(code, w.bits));
  case QSR_WFMT_LOG: return __fmul_rn(h2f(((const uint16_t *)meta)[g]), qsr_log_level(code, w.bits));
  default: return h2f(((const uint16_t *)(meta + (uint64_t)g * (2u << w.bits)))[code]);
  }
}

/* ---- linear kernels: shared launch arguments (linear.cuh, gemm.cu, moe.cu) -- */
enum lin_xmode {
  LIN_X_PLAIN = 0,   /* x row t = x + t * ldx, t < T */
  LIN_X_GATHER = 1,  /* MoE: pair i of expert e reads x row token[i] */
  LIN_X_PAIR = 2     /* MoE: pair i reads x row i (the per-pair intermediate) */
};
enum lin_epi {
  LIN_EPI_F16 = 0,   /* out16[o * ldo + r] = fp16(v) */
  LIN_EPI_F32 = 1,   /* out32[o * ldo + r] = v */
  LIN_EPI_SILU = 2,  /* out16 = fp16(silu(g32[o * ldo + r]) * v) */
  LIN_EPI_GELU = 3   /* out16 = fp16(gelu(v)) */
};

struct lin_args {
  wdesc w;                 /* shape; data/meta used for plain launches */
  const __half *x;
  int ldx;                 /* halves between x rows */
  int xvec;                /* x rows 16-byte aligned with cols % 8 == 0 */
  int T;                   /* plain: tokens */
  int xmode;               /* enum lin_xmode */
  const int *offset;       /* MoE plan (device): expert e's pairs offset[e]..[e+1] */
  const int *token;
  int epi;                 /* enum lin_epi */
  void *out;
  int ldo;
  const float *g32;        /* LIN_EPI_SILU: gate values, same indexing as out */
};

/* Per-expert weight pointers, by value (MoE launches only). */
struct lin_tab {
  const uint8_t *data[QSR_CUDA_MAX_EXPERTS];
  const uint8_t *meta[QSR_CUDA_MAX_EXPERTS];
};

__device__ __forceinline__ void lin_store(const lin_args &a, int orow, uint32_t r, float v) {
  size_t i = (size_t)orow * (size_t)a.ldo + r;
  switch (a.epi) {
  case LIN_EPI_F16: ((__half *)a.out)[i] = __float2half_rn(v); break;
  case LIN_EPI_F32: ((float *)a.out)[i] = v; break;
  case LIN_EPI_SILU: ((__half *)a.out)[i] = __float2half_rn(silu_f(a.g32[i]) * v); break;
  default: ((__half *)a.out)[i] = __float2half_rn(gelu_f(v)); break;
  }
}

/* Token slot v of a launch: returns the x row pointer (NULL if the slot is
** empty) and the output row in *orow. e: expert (MoE), ignored when plain. */
__device__ __forceinline__ const __half *lin_xrow(const lin_args &a, int e, int v, int *orow) {
  if (a.xmode == LIN_X_PLAIN) {
    if (v >= a.T) return nullptr;
    *orow = v;
    return a.x + (size_t)v * (size_t)a.ldx;
  }
  int i = a.offset[e] + v;
  if (i >= a.offset[e + 1]) return nullptr;
  *orow = i;
  int xr = a.xmode == LIN_X_GATHER ? a.token[i] : i;
  return a.x + (size_t)xr * (size_t)a.ldx;
}

/* Token slot v as an x row index (-1: empty) -- the same slots as lin_xrow. */
__device__ __forceinline__ int lin_xidx(const lin_args &a, int e, int v) {
  if (a.xmode == LIN_X_PLAIN) return v < a.T ? v : -1;
  int i = a.offset[e] + v;
  if (i >= a.offset[e + 1]) return -1;
  return a.xmode == LIN_X_GATHER ? a.token[i] : i;
}

/* Launchers shared between linear.cu, gemm.cu and moe.cu. `tab` NULL: plain
** (grid.y = token chunks); else grid.y = experts, grid.z = pair chunks of up
** to max_pairs pairs per expert. */
int qsr_cuda_gemv_launch(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                         cudaStream_t s, char **err);
int qsr_cuda_gemm_launch(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                         cudaStream_t s, char **err);

#endif
