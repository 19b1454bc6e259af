/*
** qformat.h -- the packed weight and KV-cache formats, defined once.
**
** Shared by the cost model (which reads every byte count from here), the C
** kernels and the CUDA kernels, so that predicted and executed bytes cannot
** drift apart. Plain C99 with static inline helpers; no libc beyond stdint.
**
** WEIGHT MATRIX LAYOUT (rows = output features, cols = input features)
**   A matrix of R x C weights in a sub-byte format is stored as
**     data: R rows, each ceil(C/32) blocks of QSR_QBLOCK = 32 codes
**     meta: R rows, each G groups of per-group metadata (G = C / group)
**   Columns are padded to a multiple of 32 with zero codes (kernels skip
**   them); group 0 means one group per row ("per channel").
**
** BIT PLANES (how a b-bit code is split; the seed's Algorithm A1 leaves this
** open and assumes b divides 8, which 3, 5 and 6 do not):
**   bits | planes (low bits first) | bytes per 32-code block
**     8  | 8                       | 32
**     6  | 4 + 2                   | 16 + 8  = 24
**     5  | 4 + 1                   | 16 + 4  = 20
**     4  | 4                       | 16
**     3  | 2 + 1                   |  8 + 4  = 12
**     2  | 2                       |  8
**   code = plane0 | (plane1 << width(plane0)).
**   Within a plane of width w, code i of the block sits in byte (i*w)/8 at
**   bit (i*w)%8, least-significant bits first. Reading only plane 0 of a
**   6-bit block yields its top-truncated 4-bit code's low part; the nested
**   bit-plane residency of the simulator reads planes separately.
**
** PER-GROUP METADATA
**   format  | code meaning                                  | meta per group
**   int     | w = scale * code + min (affine, unsigned code)| fp16 scale, fp16 min   (4 B)
**   int_sym | w = scale * (code - 2^(b-1))                  | fp16 scale             (2 B)
**   log     | sign bit (msb) + magnitude m: w = +-scale*2^-m,| fp16 scale             (2 B)
**           | m = 2^(b-1)-1 encodes zero                    |
**   lut     | w = codebook[code]                            | 2^b fp16 entries (2^(b+1) B)
**   fp16/bf16 | 2 bytes per weight, no metadata; fp8 (e4m3) 1 byte per weight and
**           | one fp32 scale per row (4 B per row).
**
** KV CACHE (per token, per KV head, per K or V vector of head_dim values)
**   fp16: 2*d bytes; int8: d codes + fp16 scale (symmetric, per vector);
**   int4: d/2 codes (4-bit plane as above) + fp16 scale and fp16 min per 32.
*/
#ifndef QSR_QFORMAT_H
#define QSR_QFORMAT_H

#include <stdint.h>

#define QSR_QBLOCK 32 /* codes per data block */

/* Stored in SQLite and deploy files: explicit numbers, never reused. */
enum qsr_wfmt {
  QSR_WFMT_FP16 = 0,
  QSR_WFMT_BF16 = 1,
  QSR_WFMT_FP8 = 2,
  QSR_WFMT_INT = 3,     /* affine: scale + min */
  QSR_WFMT_INT_SYM = 4, /* symmetric: scale only */
  QSR_WFMT_LOG = 5,     /* sign + power-of-two grid */
  QSR_WFMT_LUT = 6,     /* per-group codebook */
  QSR_WFMT_COUNT
};

enum qsr_kvfmt {
  QSR_KVFMT_FP16 = 0,
  QSR_KVFMT_INT8 = 1,
  QSR_KVFMT_INT4 = 2,
  QSR_KVFMT_COUNT
};

/* Data blocks, one type per bit width (plane widths as in the table). */
typedef struct { uint8_t p8[32]; } qsr_block_b8;
typedef struct { uint8_t p4[16]; uint8_t p2[8]; } qsr_block_b6;
typedef struct { uint8_t p4[16]; uint8_t p1[4]; } qsr_block_b5;
typedef struct { uint8_t p4[16]; } qsr_block_b4;
typedef struct { uint8_t p2[8]; uint8_t p1[4]; } qsr_block_b3;
typedef struct { uint8_t p2[8]; } qsr_block_b2;

typedef struct { uint16_t scale, min; } qsr_meta_int;   /* fp16 bits */
typedef struct { uint16_t scale; } qsr_meta_sym;         /* int_sym, log */

#define QSR_STATIC_ASSERT(c, m) typedef char qsr_static_assert_##m[(c) ? 1 : -1]
QSR_STATIC_ASSERT(sizeof(qsr_block_b8) == QSR_QBLOCK * 8 / 8, b8_size);
QSR_STATIC_ASSERT(sizeof(qsr_block_b6) == QSR_QBLOCK * 6 / 8, b6_size);
QSR_STATIC_ASSERT(sizeof(qsr_block_b5) == QSR_QBLOCK * 5 / 8, b5_size);
QSR_STATIC_ASSERT(sizeof(qsr_block_b4) == QSR_QBLOCK * 4 / 8, b4_size);
QSR_STATIC_ASSERT(sizeof(qsr_block_b3) == QSR_QBLOCK * 3 / 8, b3_size);
QSR_STATIC_ASSERT(sizeof(qsr_block_b2) == QSR_QBLOCK * 2 / 8, b2_size);
QSR_STATIC_ASSERT(sizeof(qsr_meta_int) == 4, meta_int_size);
QSR_STATIC_ASSERT(sizeof(qsr_meta_sym) == 2, meta_sym_size);

/* Bytes of one 32-code data block of a b-bit code (0 if b unsupported). */
static inline uint32_t qsr_qblock_bytes(int bits) {
  switch (bits) {
  case 8: return sizeof(qsr_block_b8);
  case 6: return sizeof(qsr_block_b6);
  case 5: return sizeof(qsr_block_b5);
  case 4: return sizeof(qsr_block_b4);
  case 3: return sizeof(qsr_block_b3);
  case 2: return sizeof(qsr_block_b2);
  default: return 0;
  }
}

/* Metadata bytes of one group. */
static inline uint32_t qsr_qmeta_bytes(int fmt, int bits) {
  switch (fmt) {
  case QSR_WFMT_INT: return sizeof(qsr_meta_int);
  case QSR_WFMT_INT_SYM:
  case QSR_WFMT_LOG: return sizeof(qsr_meta_sym);
  case QSR_WFMT_LUT: return (uint32_t)(2u << bits);
  default: return 0;
  }
}

/* Is (fmt, bits, group) a format the kernels define? group 0 = per row. */
static inline int qsr_qformat_valid(int fmt, int bits, int group) {
  if (group < 0 || group % QSR_QBLOCK) return 0;
  switch (fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16: return bits == 16;
  case QSR_WFMT_FP8: return bits == 8;
  case QSR_WFMT_INT:
  case QSR_WFMT_INT_SYM:
  case QSR_WFMT_LOG:
  case QSR_WFMT_LUT: return qsr_qblock_bytes(bits) != 0;
  default: return 0;
  }
}

/* Exact stored bytes of a rows x cols weight matrix in this format. */
static inline uint64_t qsr_qweight_bytes(int fmt, int bits, int group,
                                         uint64_t rows, uint64_t cols) {
  switch (fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16: return rows * cols * 2u;
  case QSR_WFMT_FP8: return rows * cols + rows * 4u;
  default: break;
  }
  uint64_t cpad = (cols + QSR_QBLOCK - 1) / QSR_QBLOCK * QSR_QBLOCK;
  uint64_t data = rows * (cpad / QSR_QBLOCK) * qsr_qblock_bytes(bits);
  uint64_t ngroups = group ? (cpad + (uint64_t)group - 1) / (uint64_t)group : 1;
  return data + rows * ngroups * qsr_qmeta_bytes(fmt, bits);
}

/* Bytes of one K (or V) vector of head_dim values in the cache. */
static inline uint32_t qsr_kv_vec_bytes(int kvfmt, uint32_t head_dim) {
  switch (kvfmt) {
  case QSR_KVFMT_INT8: return head_dim + 2u;
  case QSR_KVFMT_INT4:
    return (head_dim + 1u) / 2u + (head_dim + QSR_QBLOCK - 1) / QSR_QBLOCK * 4u;
  default: return head_dim * 2u;
  }
}

#endif
