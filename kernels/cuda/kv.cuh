/*
** kv.cuh -- decoding KV-cache vectors (qmatrix.h layout) on the device, the
** same arithmetic as quant.c's qsr_kv_decode (explicit _rn operations: no
** FMA contraction, so decoded keys equal the host's bit for bit).
**   fp16: d halves                        v = half
**   int8: d int8 codes, fp16 scale        v = scale * code
**   int4: d/2 bytes of 4-bit codes (one qformat.h 4-bit plane per 32 values),
**         then per 32 values fp16 scale, fp16 min       v = scale * code + min
** Alignment of a vector: fp16 2d bytes (64-byte multiple), int8 d + 2 (2),
** int4 5d/8 (a multiple of 4), so loads are 16, 2 and 4 bytes wide.
*/
#ifndef QSR_CUDA_KV_CUH
#define QSR_CUDA_KV_CUH

#include "kernels/cuda/common.cuh"

/* Values 32c .. 32c+31 of a vector of d values into o[32]. */
template <int KVF>
__device__ __forceinline__ void kv_load32(const uint8_t *vec, int d, int c, float *o) {
  if constexpr (KVF == QSR_KVFMT_FP16) {
    load_half32(vec + 64 * c, o);
  } else if constexpr (KVF == QSR_KVFMT_INT8) {
    const unsigned short *p = (const unsigned short *)(vec + 32 * c);
    const float s = h2f(__ldg((const unsigned short *)(vec + d)));
#pragma unroll
    for (int j = 0; j < 16; j++) {
      uint32_t two = __ldg(p + j);
      o[2 * j] = __fmul_rn(s, code_f32_minus((two & 0xffu) ^ 0x80u, 128.0f));
      o[2 * j + 1] = __fmul_rn(s, code_f32_minus((two >> 8) ^ 0x80u, 128.0f));
    }
  } else {
    union {
      uint32_t w[4];
      uint8_t b[16];
    } u;
    const unsigned int *p = (const unsigned int *)(vec + 16 * c);
#pragma unroll
    for (int j = 0; j < 4; j++) u.w[j] = __ldg(p + j);
    const uint32_t m = __ldg((const unsigned int *)(vec + d / 2 + 4 * c));
    const float s = h2f((uint16_t)(m & 0xffffu)), mn = h2f((uint16_t)(m >> 16));
#pragma unroll
    for (int i = 0; i < 32; i++) o[i] = __fadd_rn(__fmul_rn(s, code_f32(qsr_code_get(u.b, 4, i))), mn);
  }
}

/* Value i of a vector (the generic path: summaries). */
__device__ __forceinline__ float kv_elem(int kvf, const uint8_t *vec, int d, int i) {
  switch (kvf) {
  case QSR_KVFMT_INT8: {
    float s = h2f(*(const uint16_t *)(vec + d));
    return __fmul_rn(s, (float)(int8_t)vec[i]);
  }
  case QSR_KVFMT_INT4: {
    const uint8_t *blk = vec + 16 * (i / 32);
    const uint16_t *m = (const uint16_t *)(vec + d / 2 + 4 * (i / 32));
    return __fadd_rn(__fmul_rn(h2f(m[0]), (float)qsr_code_get(blk, 4, i % 32)), h2f(m[1]));
  }
  default: return h2f(((const uint16_t *)vec)[i]);
  }
}

#endif
