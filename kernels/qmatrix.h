/*
** qmatrix.h -- a packed weight matrix and a layer's KV cache: the layouts the
** C and CUDA kernels share. The structs only describe memory; host code owns
** host pointers (kernels/cpu), device code owns device pointers (kernels/cuda),
** and both fill the sizes with the same qsr_qmatrix_layout / qsr_kvcache_layout.
**
** qsr_qmatrix (rows = output features, cols = input features):
**   fp16, bf16 | data: rows*cols 2-byte values, row-major     | meta: none
**   fp8        | data: rows*cols e4m3 codes                    | meta: fp32 scale per row
**   int, int_sym, log, lut
**              | data: rows x blocks_per_row 32-code blocks    | meta: rows x groups_per_row
**              |  (qformat.h bit planes; padding codes are 0)  |  group records (qformat.h)
**
** qsr_kvcache (one layer; K and V alike):
**   k, v:  [kv_heads][max_ctx][vec_bytes]   one vector per token and KV head:
**     fp16: d fp16 values
**     int8: d int8 codes, then fp16 scale;        v = scale * code
**     int4: d/2 bytes of 4-bit codes (one 4-bit plane per 32 values, as in
**           qformat.h), then per 32 values fp16 scale, fp16 min; v = scale*code + min
**   kmin, kmax: [kv_heads][max_pages][head_dim] fp32 per-channel min and max of
**     the keys in each page of `page` tokens (Quest-style summaries for paged
**     top-k selection); NULL when page == 0.
*/
#ifndef QSR_QMATRIX_H
#define QSR_QMATRIX_H

#include "kernels/qformat.h"

#include <stdint.h>

typedef struct qsr_qmatrix {
  int fmt;                   /* enum qsr_wfmt */
  int bits;                  /* 16 (fp16, bf16), 8 (fp8), 2..8 (packed) */
  int group;                 /* codes per metadata group; 0 = one per row */
  uint32_t rows, cols;       /* logical shape */
  uint32_t blocks_per_row;   /* packed: ceil(cols/32) */
  uint32_t groups_per_row;   /* packed: metadata records per row */
  uint32_t group_codes;      /* packed: codes per group (cols padded if group 0) */
  uint64_t row_data_bytes;   /* bytes of one row of data */
  uint64_t row_meta_bytes;   /* bytes of one row of metadata */
  uint8_t *data;             /* rows * row_data_bytes; owner: whoever allocated */
  uint8_t *meta;             /* rows * row_meta_bytes, NULL if 0 */
} qsr_qmatrix;

/* Fills the sizes of m (pointers untouched). Returns 0, or -1 when the format,
** bits and group are not one qformat.h defines. */
static inline int qsr_qmatrix_layout(qsr_qmatrix *m, int fmt, int bits, int group,
                                     uint32_t rows, uint32_t cols) {
  if (!qsr_qformat_valid(fmt, bits, group) || rows == 0 || cols == 0) return -1;
  m->fmt = fmt;
  m->bits = bits;
  m->group = group;
  m->rows = rows;
  m->cols = cols;
  m->blocks_per_row = (cols + QSR_QBLOCK - 1) / QSR_QBLOCK;
  m->groups_per_row = 0;
  m->group_codes = 0;
  m->row_meta_bytes = 0;
  switch (fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16: m->row_data_bytes = 2ull * cols; break;
  case QSR_WFMT_FP8: m->row_data_bytes = cols; m->row_meta_bytes = 4; break;
  default: {
    uint32_t cpad = m->blocks_per_row * QSR_QBLOCK;
    m->group_codes = group ? (uint32_t)group : cpad;
    m->groups_per_row = (cpad + m->group_codes - 1) / m->group_codes;
    m->row_data_bytes = (uint64_t)m->blocks_per_row * qsr_qblock_bytes(bits);
    m->row_meta_bytes = (uint64_t)m->groups_per_row * qsr_qmeta_bytes(fmt, bits);
  }
  }
  return 0;
}

static inline uint64_t qsr_qmatrix_bytes(const qsr_qmatrix *m) {
  return (uint64_t)m->rows * (m->row_data_bytes + m->row_meta_bytes);
}

typedef struct qsr_kvcache {
  int kvfmt;                 /* enum qsr_kvfmt */
  int kv_heads, head_dim;    /* head_dim: a multiple of 32 */
  int max_ctx;               /* token slots */
  int page;                  /* tokens per page for summaries, 0 = none */
  int len;                   /* tokens stored */
  uint32_t vec_bytes;        /* qsr_kv_vec_bytes(kvfmt, head_dim) */
  uint8_t *k, *v;            /* [kv_heads][max_ctx][vec_bytes] */
  float *kmin, *kmax;        /* [kv_heads][max_pages][head_dim], or NULL */
} qsr_kvcache;

static inline int qsr_kvcache_layout(qsr_kvcache *c, int kvfmt, int kv_heads, int head_dim,
                                     int max_ctx, int page) {
  if (kvfmt < 0 || kvfmt >= QSR_KVFMT_COUNT || kv_heads <= 0 || head_dim <= 0 ||
      head_dim % QSR_QBLOCK || max_ctx <= 0 || page < 0)
    return -1;
  c->kvfmt = kvfmt;
  c->kv_heads = kv_heads;
  c->head_dim = head_dim;
  c->max_ctx = max_ctx;
  c->page = page;
  c->len = 0;
  c->vec_bytes = qsr_kv_vec_bytes(kvfmt, (uint32_t)head_dim);
  return 0;
}

static inline int qsr_kvcache_pages(const qsr_kvcache *c) {
  return c->page ? (c->max_ctx + c->page - 1) / c->page : 0;
}

/* Attention head types, as the cost model numbers them. */
enum qsr_head {
  QSR_HEAD_DENSE = 0,        /* all keys (within the model's own window) */
  QSR_HEAD_TOPK = 1,         /* the k best-scoring keys */
  QSR_HEAD_LOCAL = 2,        /* the last `window` keys */
  QSR_HEAD_COUNT
};

/* One attention layer's shape and per-head sparsity. */
typedef struct qsr_attn_cfg {
  int heads;                 /* query heads */
  int kv_heads;              /* heads / kv_heads queries share a KV head (GQA) */
  int head_dim;
  const uint8_t *head_type;  /* [heads] enum qsr_head; NULL = all dense */
  int window;                /* local heads: keys at positions > pos - window */
  int topk;                  /* top-k heads: keys kept per query */
  int paged;                 /* top-k heads: 1 = select pages by summary bound */
  int sliding_window;        /* the model's own window for dense heads, 0 = none */
  float scale;               /* softmax scale, usually 1/sqrt(head_dim) */
} qsr_attn_cfg;

#endif
