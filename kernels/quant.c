/*
** quant.c -- quantisers and dequantisers of the packed formats (host side),
** and the host KV cache. The rules are in quant.h; the layouts in qmatrix.h.
*/
#include "kernels/quant.h"

#include "kernels/qcode.h"
#include "util/err.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int qsr_qmatrix_alloc(qsr_qmatrix *m, int fmt, int bits, int group, uint32_t rows,
                      uint32_t cols, char **err) {
  memset(m, 0, sizeof *m);
  if (qsr_qmatrix_layout(m, fmt, bits, group, rows, cols))
    return qsr_errf(err, QSR_ERR_CONFIG, "weight format %d with %d bits, group %d, %ux%u: not defined",
                    fmt, bits, group, rows, cols);
  m->data = calloc(rows, m->row_data_bytes);
  m->meta = m->row_meta_bytes ? calloc(rows, m->row_meta_bytes) : NULL;
  if (!m->data || (m->row_meta_bytes && !m->meta)) {
    qsr_qmatrix_free(m);
    return qsr_errf(err, QSR_ERR_NOMEM, "out of memory for a %ux%u weight matrix", rows, cols);
  }
  return QSR_OK;
}

void qsr_qmatrix_free(qsr_qmatrix *m) {
  if (!m) return;
  free(m->data);
  free(m->meta);
  m->data = m->meta = NULL;
}

static float f16r(float x) { return qsr_f16_to_f32(qsr_f32_to_f16(x)); }

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Lloyd's 1-D k-means of n sorted values into K centres (fp16-rounded). */
static void kmeans_1d(const float *v, int n, int K, float *c) {
  if (n <= K) {
    for (int i = 0; i < K; i++) c[i] = v[i < n ? i : n - 1];
  } else {
    /* start from the uniform grid over [min, max]: Lloyd steps never raise
    ** the squared error, so the codebook is never worse than the int grid */
    for (int i = 0; i < K; i++) c[i] = v[0] + (v[n - 1] - v[0]) * (float)i / (float)(K - 1);
    for (int it = 0; it < 32; it++) {
      double sum[256] = { 0 };
      int cnt[256] = { 0 }, j = 0;
      for (int i = 0; i < n; i++) {      /* sorted values, sorted centres: sweep */
        while (j + 1 < K && fabsf(v[i] - c[j + 1]) <= fabsf(v[i] - c[j])) j++;
        sum[j] += v[i];
        cnt[j]++;
      }
      int moved = 0;
      for (int k = 0; k < K; k++)
        if (cnt[k] && (float)(sum[k] / cnt[k]) != c[k]) { c[k] = (float)(sum[k] / cnt[k]); moved = 1; }
      if (!moved) break;
      qsort(c, (size_t)K, sizeof *c, cmp_float);
    }
  }
  for (int i = 0; i < K; i++) c[i] = f16r(c[i]);
}

static uint32_t nearest(const float *c, int K, float w) {
  uint32_t best = 0;
  float bd = fabsf(w - c[0]);
  for (int k = 1; k < K; k++) {
    float d = fabsf(w - c[k]);
    if (d < bd) { bd = d; best = (uint32_t)k; }
  }
  return best;
}

static uint32_t log_code(float w, float scale, int bits) {
  uint32_t mmax = (1u << (bits - 1)) - 1u, sign = w < 0 ? 1u << (bits - 1) : 0;
  float r = scale > 0 ? fabsf(w) / scale : 0, best_d = r;  /* the zero code */
  uint32_t best = mmax;
  int e;
  frexpf(r, &e);                        /* r in [2^(e-1), 2^e) */
  for (int m = -e; m <= 1 - e; m++) {   /* 2^e above r, 2^(e-1) below */
    if (m < 0 || (uint32_t)m >= mmax) continue;
    float d = fabsf(r - ldexpf(1.0f, -m));
    if (d < best_d) { best_d = d; best = (uint32_t)m; }
  }
  return sign | best;
}

/* Quantises one group of n values (v) of a packed-format row. */
static void quantize_group(qsr_qmatrix *m, uint8_t *rowdata, uint8_t *meta, uint32_t c0,
                           const float *v, int n, float *tmp) {
  int b = m->bits;
  uint32_t bb = qsr_qblock_bytes(b), qmax = (1u << b) - 1u;
  float lo = FLT_MAX, hi = -FLT_MAX, amax = 0;
  for (int i = 0; i < n; i++) {
    lo = fminf(lo, v[i]);
    hi = fmaxf(hi, v[i]);
    amax = fmaxf(amax, fabsf(v[i]));
  }
  float scale = 0, mn = 0, book[256];
  switch (m->fmt) {
  case QSR_WFMT_INT: {
    mn = f16r(lo);
    scale = f16r((hi - mn) / (float)qmax);
    qsr_meta_int mi = { qsr_f32_to_f16(scale), qsr_f32_to_f16(mn) };
    memcpy(meta, &mi, sizeof mi);
    break;
  }
  case QSR_WFMT_INT_SYM:
  case QSR_WFMT_LOG: {
    scale = f16r(m->fmt == QSR_WFMT_LOG ? amax : amax / (float)((1 << (b - 1)) - 1));
    uint16_t h = qsr_f32_to_f16(scale);
    memcpy(meta, &h, 2);
    break;
  }
  case QSR_WFMT_LUT: {
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_float);
    kmeans_1d(tmp, n, 1 << b, book);
    for (int k = 0; k < (1 << b); k++) {
      uint16_t h = qsr_f32_to_f16(book[k]);
      memcpy(meta + 2 * k, &h, 2);
    }
    break;
  }
  }
  for (int i = 0; i < n; i++) {
    float w = v[i];
    uint32_t code = 0;
    switch (m->fmt) {
    case QSR_WFMT_INT:
      code = scale > 0 ? (uint32_t)fminf(fmaxf(roundf((w - mn) / scale), 0), (float)qmax) : 0;
      break;
    case QSR_WFMT_INT_SYM: {
      float half = (float)(1 << (b - 1));
      code = scale > 0 ? (uint32_t)(fminf(fmaxf(roundf(w / scale), 1 - half), half - 1) + half)
                       : (uint32_t)half;
      break;
    }
    case QSR_WFMT_LOG: code = log_code(w, scale, b); break;
    case QSR_WFMT_LUT: code = nearest(book, 1 << b, w); break;
    }
    uint32_t c = c0 + (uint32_t)i;
    qsr_code_put(rowdata + (c / QSR_QBLOCK) * bb, b, (int)(c % QSR_QBLOCK), code);
  }
}

void qsr_quantize(qsr_qmatrix *m, const float *w) {
  memset(m->data, 0, m->rows * m->row_data_bytes);
  for (uint32_t r = 0; r < m->rows; r++) {
    const float *wr = w + (uint64_t)r * m->cols;
    uint8_t *d = m->data + r * m->row_data_bytes;
    switch (m->fmt) {
    case QSR_WFMT_FP16:
    case QSR_WFMT_BF16:
      for (uint32_t c = 0; c < m->cols; c++) {
        uint16_t h = m->fmt == QSR_WFMT_FP16 ? qsr_f32_to_f16(wr[c]) : qsr_f32_to_bf16(wr[c]);
        memcpy(d + 2 * c, &h, 2);
      }
      break;
    case QSR_WFMT_FP8: {
      float amax = 0;
      for (uint32_t c = 0; c < m->cols; c++) amax = fmaxf(amax, fabsf(wr[c]));
      float s = amax > 0 ? amax / 448.0f : 1.0f;
      memcpy(m->meta + 4 * r, &s, 4);
      for (uint32_t c = 0; c < m->cols; c++) d[c] = qsr_f32_to_e4m3(wr[c] / s);
      break;
    }
    default: {
      float *buf = malloc((size_t)m->group_codes * sizeof *buf);
      QSR_ASSERT(buf);
      uint8_t *meta = m->meta + r * m->row_meta_bytes;
      uint32_t mb = qsr_qmeta_bytes(m->fmt, m->bits);
      for (uint32_t g = 0; g < m->groups_per_row; g++) {
        uint32_t c0 = g * m->group_codes;
        int n = c0 + m->group_codes <= m->cols ? (int)m->group_codes : (int)(m->cols - c0);
        if (n > 0) quantize_group(m, d, meta + g * mb, c0, wr + c0, n, buf);
      }
      free(buf);
    }
    }
  }
}

void qsr_dequantize_row(const qsr_qmatrix *m, uint32_t r, float *out) {
  const uint8_t *d = m->data + r * m->row_data_bytes;
  const uint8_t *meta = m->meta ? m->meta + r * m->row_meta_bytes : NULL;
  switch (m->fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16:
    for (uint32_t c = 0; c < m->cols; c++) {
      uint16_t h;
      memcpy(&h, d + 2 * c, 2);
      out[c] = m->fmt == QSR_WFMT_FP16 ? qsr_f16_to_f32(h) : qsr_bf16_to_f32(h);
    }
    return;
  case QSR_WFMT_FP8: {
    float s;
    memcpy(&s, meta, 4);
    for (uint32_t c = 0; c < m->cols; c++) out[c] = s * qsr_e4m3_to_f32(d[c]);
    return;
  }
  }
  int b = m->bits;
  uint32_t bb = qsr_qblock_bytes(b), mb = qsr_qmeta_bytes(m->fmt, b);
  for (uint32_t c = 0; c < m->cols; c++) {
    const uint8_t *g = meta + (c / m->group_codes) * mb;
    uint32_t code = qsr_code_get(d + (c / QSR_QBLOCK) * bb, b, (int)(c % QSR_QBLOCK));
    uint16_t h0, h1;
    memcpy(&h0, g, 2);
    switch (m->fmt) {
    case QSR_WFMT_INT:
      memcpy(&h1, g + 2, 2);
      out[c] = qsr_f16_to_f32(h0) * (float)code + qsr_f16_to_f32(h1);
      break;
    case QSR_WFMT_INT_SYM: out[c] = qsr_f16_to_f32(h0) * qsr_int_sym_level(code, b); break;
    case QSR_WFMT_LOG: out[c] = qsr_f16_to_f32(h0) * qsr_log_level(code, b); break;
    default:
      memcpy(&h1, g + 2 * code, 2);
      out[c] = qsr_f16_to_f32(h1);
    }
  }
}

double qsr_quant_error(const qsr_qmatrix *m, const float *w) {
  float *row = malloc(m->cols * sizeof *row);
  QSR_ASSERT(row);
  double se = 0, sw = 0;
  for (uint32_t r = 0; r < m->rows; r++) {
    const float *wr = w + (uint64_t)r * m->cols;
    qsr_dequantize_row(m, r, row);
    for (uint32_t c = 0; c < m->cols; c++) {
      se += ((double)row[c] - wr[c]) * ((double)row[c] - wr[c]);
      sw += (double)wr[c] * wr[c];
    }
  }
  free(row);
  return sw > 0 ? sqrt(se / sw) : 0;
}

/* ---- KV vectors ------------------------------------------------------------ */

void qsr_kv_encode(int kvfmt, int d, const float *x, uint8_t *dst) {
  switch (kvfmt) {
  case QSR_KVFMT_INT8: {
    float amax = 0;
    for (int i = 0; i < d; i++) amax = fmaxf(amax, fabsf(x[i]));
    float s = f16r(amax / 127.0f);
    for (int i = 0; i < d; i++) {
      float q = s > 0 ? roundf(x[i] / s) : 0;
      dst[i] = (uint8_t)(int8_t)fminf(fmaxf(q, -127), 127);
    }
    uint16_t h = qsr_f32_to_f16(s);
    memcpy(dst + d, &h, 2);
    return;
  }
  case QSR_KVFMT_INT4: {
    uint8_t *meta = dst + d / 2;
    memset(dst, 0, (size_t)d / 2);
    for (int b0 = 0; b0 < d; b0 += QSR_QBLOCK) {
      float lo = FLT_MAX, hi = -FLT_MAX;
      for (int i = 0; i < QSR_QBLOCK; i++) { lo = fminf(lo, x[b0 + i]); hi = fmaxf(hi, x[b0 + i]); }
      float mn = f16r(lo), s = f16r((hi - mn) / 15.0f);
      for (int i = 0; i < QSR_QBLOCK; i++) {
        uint32_t q = s > 0 ? (uint32_t)fminf(fmaxf(roundf((x[b0 + i] - mn) / s), 0), 15) : 0;
        qsr_code_put(dst + b0 / 2, 4, i, q);
      }
      qsr_meta_int mi = { qsr_f32_to_f16(s), qsr_f32_to_f16(mn) };
      memcpy(meta + (b0 / QSR_QBLOCK) * 4, &mi, 4);
    }
    return;
  }
  default:
    for (int i = 0; i < d; i++) {
      uint16_t h = qsr_f32_to_f16(x[i]);
      memcpy(dst + 2 * i, &h, 2);
    }
  }
}

void qsr_kv_decode(int kvfmt, int d, const uint8_t *src, float *out) {
  switch (kvfmt) {
  case QSR_KVFMT_INT8: {
    uint16_t h;
    memcpy(&h, src + d, 2);
    float s = qsr_f16_to_f32(h);
    for (int i = 0; i < d; i++) out[i] = s * (float)(int8_t)src[i];
    return;
  }
  case QSR_KVFMT_INT4: {
    const uint8_t *meta = src + d / 2;
    for (int b0 = 0; b0 < d; b0 += QSR_QBLOCK) {
      qsr_meta_int mi;
      memcpy(&mi, meta + (b0 / QSR_QBLOCK) * 4, 4);
      float s = qsr_f16_to_f32(mi.scale), mn = qsr_f16_to_f32(mi.min);
      for (int i = 0; i < QSR_QBLOCK; i++) {
        uint8_t byte = src[(b0 + i) / 2];
        out[b0 + i] = s * (float)((i & 1) ? byte >> 4 : byte & 15) + mn;
      }
    }
    return;
  }
  default:
    for (int i = 0; i < d; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      out[i] = qsr_f16_to_f32(h);
    }
  }
}

/* ---- KV cache ---------------------------------------------------------------- */

int qsr_kvcache_alloc(qsr_kvcache *c, int kvfmt, int kv_heads, int head_dim, int max_ctx,
                      int page, char **err) {
  memset(c, 0, sizeof *c);
  if (qsr_kvcache_layout(c, kvfmt, kv_heads, head_dim, max_ctx, page))
    return qsr_errf(err, QSR_ERR_CONFIG,
                    "kv cache: format %d, %d heads of %d (a multiple of 32), %d tokens, page %d: not valid",
                    kvfmt, kv_heads, head_dim, max_ctx, page);
  size_t n = (size_t)kv_heads * (size_t)max_ctx * c->vec_bytes;
  size_t ns = (size_t)kv_heads * (size_t)qsr_kvcache_pages(c) * (size_t)head_dim;
  c->k = calloc(n, 1);
  c->v = calloc(n, 1);
  if (ns) {
    c->kmin = calloc(ns, sizeof *c->kmin);
    c->kmax = calloc(ns, sizeof *c->kmax);
  }
  if (!c->k || !c->v || (ns && (!c->kmin || !c->kmax))) {
    qsr_kvcache_free(c);
    return qsr_errf(err, QSR_ERR_NOMEM, "out of memory for a kv cache of %d tokens", max_ctx);
  }
  return QSR_OK;
}

void qsr_kvcache_free(qsr_kvcache *c) {
  if (!c) return;
  free(c->k);
  free(c->v);
  free(c->kmin);
  free(c->kmax);
  c->k = c->v = NULL;
  c->kmin = c->kmax = NULL;
}

void qsr_kvcache_get(const qsr_kvcache *c, int which, int h, int t, float *out) {
  const uint8_t *base = which ? c->v : c->k;
  qsr_kv_decode(c->kvfmt, c->head_dim,
                base + ((size_t)h * (size_t)c->max_ctx + (size_t)t) * c->vec_bytes, out);
}

int qsr_kvcache_append(qsr_kvcache *c, int n, const float *k, const float *v) {
  if (n < 0 || c->len + n > c->max_ctx) return -1;
  int d = c->head_dim;
  float *dec = malloc((size_t)d * sizeof *dec);
  QSR_ASSERT(dec);
  for (int i = 0; i < n; i++) {
    int t = c->len + i;
    for (int h = 0; h < c->kv_heads; h++) {
      size_t off = ((size_t)h * (size_t)c->max_ctx + (size_t)t) * c->vec_bytes;
      const float *src = (size_t)(i * c->kv_heads + h) * (size_t)d + k;
      qsr_kv_encode(c->kvfmt, d, src, c->k + off);
      qsr_kv_encode(c->kvfmt, d, (size_t)(i * c->kv_heads + h) * (size_t)d + v, c->v + off);
      if (!c->page) continue;
      qsr_kv_decode(c->kvfmt, d, c->k + off, dec);  /* summaries bound what is stored */
      size_t s = ((size_t)h * (size_t)qsr_kvcache_pages(c) + (size_t)(t / c->page)) * (size_t)d;
      for (int j = 0; j < d; j++) {
        if (t % c->page == 0) c->kmin[s + j] = c->kmax[s + j] = dec[j];
        else {
          c->kmin[s + j] = fminf(c->kmin[s + j], dec[j]);
          c->kmax[s + j] = fmaxf(c->kmax[s + j], dec[j]);
        }
      }
    }
  }
  c->len += n;
  free(dec);
  return 0;
}
