/*
** qcode.h -- element-level encode/decode of the formats in qformat.h.
**
** Shared, bit for bit, by the C kernels and the CUDA kernels: every function
** is `static inline` and marked QSR_HD, which is `__host__ __device__` under
** nvcc. A code decoded here on the host and on the device gives the same
** float, so CUDA-vs-C tests only see accumulation-order differences.
**
**   qsr_f16_to_f32 / qsr_f32_to_f16   IEEE binary16, round to nearest even
**   qsr_bf16_to_f32 / qsr_f32_to_bf16 bfloat16, round to nearest even
**   qsr_e4m3_to_f32 / qsr_f32_to_e4m3 OCP fp8 e4m3fn (max 448, no inf)
**   qsr_code_get / qsr_code_put       code i of a 32-code block (bit planes)
**   qsr_log_level                     the log grid's value for a code, unscaled
**   qsr_int_sym_level                 code - 2^(b-1)
*/
#ifndef QSR_QCODE_H
#define QSR_QCODE_H

#include "kernels/qformat.h"

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define QSR_HD __host__ __device__
#else
#define QSR_HD
#endif

QSR_HD static inline float qsr_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

QSR_HD static inline uint32_t qsr_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

QSR_HD static inline float qsr_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return qsr_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, nan */
  if (exp == 0) {                                   /* zero, subnormal: man * 2^-24 */
    float f = (float)man * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return qsr_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

QSR_HD static inline uint16_t qsr_f32_to_f16(float f) {
  uint32_t u = qsr_f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
  if (a < 0x38800000u) {                             /* below 2^-14: subnormal or zero */
    if (a < 0x33000000u) return sign;                /* below 2^-25 rounds to 0 */
    uint32_t man = (a & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(a >> 23);                /* 14..24 */
    uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t q = ((a >> 13) - (112u << 10)), rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
  return (uint16_t)(sign | q);
}

QSR_HD static inline float qsr_bf16_to_f32(uint16_t b) { return qsr_bits_f32((uint32_t)b << 16); }

QSR_HD static inline uint16_t qsr_f32_to_bf16(float f) {
  uint32_t u = qsr_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; 0x7f/0xff are nan; max 448. */
QSR_HD static inline float qsr_e4m3_to_f32(uint8_t c) {
  uint32_t exp = (c >> 3) & 0xfu, man = c & 7u;
  float f;
  if (exp == 0) f = (float)man * 0.001953125f;        /* man * 2^-9 */
  else f = qsr_bits_f32(((exp + 120u) << 23) | (man << 20));
  if ((c & 0x7fu) == 0x7fu) f = qsr_bits_f32(0x7fc00000u);
  return (c & 0x80u) ? -f : f;
}

QSR_HD static inline uint8_t qsr_f32_to_e4m3(float f) {
  uint32_t u = qsr_f32_bits(f);
  uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
  float a = qsr_bits_f32(u & 0x7fffffffu);
  if (!(a == a)) return (uint8_t)(sign | 0x7fu);
  if (a >= 464.0f) return (uint8_t)(sign | 0x7eu);    /* saturate (464 = 448 + half step) */
  if (a < 0.015625f) {                                /* subnormal grid: 2^-9 steps */
    float q = a * 512.0f;
    uint32_t n = (uint32_t)q;
    float r = q - (float)n;
    if (r > 0.5f || (r == 0.5f && (n & 1u))) n++;
    return (uint8_t)(sign | n);                       /* n == 8 is exactly 2^-6 */
  }
  uint32_t b = qsr_f32_bits(a), exp = (b >> 23) - 120u, man = (b >> 20) & 7u, rem = b & 0xfffffu;
  uint32_t q = (exp << 3) | man;
  if (rem > 0x80000u || (rem == 0x80000u && (q & 1u))) q++;
  if (q > 0x7eu) q = 0x7eu;
  return (uint8_t)(sign | q);
}

/* Plane widths of a b-bit code: w0 low bits in plane 0, w1 high bits in plane 1. */
QSR_HD static inline int qsr_plane0_bits(int bits) { return bits >= 4 ? (bits == 8 ? 8 : 4) : 2; }
QSR_HD static inline int qsr_plane1_bits(int bits) { return bits - qsr_plane0_bits(bits); }

/* Code i (0..31) of a 32-code block of `bits` bits. */
QSR_HD static inline uint32_t qsr_code_get(const uint8_t *blk, int bits, int i) {
  int w0 = qsr_plane0_bits(bits), w1 = bits - w0;
  int o0 = i * w0;
  uint32_t c = (uint32_t)(blk[o0 >> 3] >> (o0 & 7)) & ((1u << w0) - 1u);
  if (w1) {
    int o1 = i * w1;
    const uint8_t *p1 = blk + QSR_QBLOCK * w0 / 8;
    c |= ((uint32_t)(p1[o1 >> 3] >> (o1 & 7)) & ((1u << w1) - 1u)) << w0;
  }
  return c;
}

/* Sets code i of a block; the block must start zeroed (bits are or-ed in). */
QSR_HD static inline void qsr_code_put(uint8_t *blk, int bits, int i, uint32_t code) {
  int w0 = qsr_plane0_bits(bits), w1 = bits - w0;
  int o0 = i * w0;
  blk[o0 >> 3] |= (uint8_t)((code & ((1u << w0) - 1u)) << (o0 & 7));
  if (w1) {
    int o1 = i * w1;
    uint8_t *p1 = blk + QSR_QBLOCK * w0 / 8;
    p1[o1 >> 3] |= (uint8_t)(((code >> w0) & ((1u << w1) - 1u)) << (o1 & 7));
  }
}

/* Log grid: msb = sign, magnitude m = the rest; w = +-2^-m, the largest m is 0. */
QSR_HD static inline float qsr_log_level(uint32_t code, int bits) {
  uint32_t mmax = (1u << (bits - 1)) - 1u, m = code & mmax;
  if (m == mmax) return 0.0f;
  float v = qsr_bits_f32((127u - m) << 23);           /* 2^-m, m <= 126 */
  return (code >> (bits - 1)) ? -v : v;
}

QSR_HD static inline float qsr_int_sym_level(uint32_t code, int bits) {
  return (float)((int)code - (1 << (bits - 1)));
}

#endif
