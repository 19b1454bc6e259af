/*
** test_kernels.c -- the C kernels against naive loops and hand-derived facts:
** element conversions, bit-plane packing, quantiser round trips (error bounds
** derived from the step size), gemv/gemm for every format, attention per head
** type and KV format, MoE routing and experts, the elementwise ops, the pool.
*/
#include "test.h"

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_int.h"
#include "kernels/cpu/kbench.h"
#include "store/measure.h"
#include "kernels/qcode.h"
#include "kernels/quant.h"
#include "kernels/qformat_traits.h"
#include "util/err.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <sqlite3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* fp32 accumulation over n terms: relative error of a sum of |terms| is at
** most about n * 2^-24; we allow 4x that (reordering, the factored scale). */
#define ACC_TOL(n) (4.0 * (n) * 5.96e-8)

static gsl_rng *rng(unsigned long seed) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  return r;
}

static float *gauss(gsl_rng *r, size_t n, double sd) {
  float *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = (float)gsl_ran_gaussian(r, sd);
  return v;
}

/* ---- element conversions ---------------------------------------------------- */

static void test_fp16(void) {
  CU_ASSERT_EQUAL(qsr_f32_to_f16(1.0f), 0x3c00);
  CU_ASSERT_EQUAL(qsr_f32_to_f16(-2.0f), 0xc000);
  CU_ASSERT_EQUAL(qsr_f32_to_f16(65504.0f), 0x7bff);
  CU_ASSERT_EQUAL(qsr_f32_to_f16(65520.0f), 0x7c00);         /* rounds to inf */
  CU_ASSERT_EQUAL(qsr_f32_to_f16(5.9604644775390625e-8f), 0x0001); /* 2^-24 */
  CU_ASSERT_EQUAL(qsr_f32_to_f16(2.98023223876953125e-8f), 0x0000); /* 2^-25: tie to even 0 */
  CU_ASSERT_EQUAL(qsr_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie, even stays */
  CU_ASSERT_EQUAL(qsr_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);   /* tie, odd rounds up */
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;       /* nan */
    if (qsr_f32_to_f16(qsr_f16_to_f32((uint16_t)h)) != h) bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(qsr_f32_to_bf16(1.0f), 0x3f80);
  CU_ASSERT_DOUBLE_EQUAL(qsr_bf16_to_f32(qsr_f32_to_bf16(3.14159f)), 3.140625, 1e-9);
}

static void test_e4m3(void) {
  CU_ASSERT_EQUAL(qsr_f32_to_e4m3(1.0f), 0x38);
  CU_ASSERT_EQUAL(qsr_f32_to_e4m3(448.0f), 0x7e);
  CU_ASSERT_EQUAL(qsr_f32_to_e4m3(1000.0f), 0x7e);           /* saturates */
  CU_ASSERT_EQUAL(qsr_f32_to_e4m3(-0.001953125f), 0x81);     /* -2^-9, smallest subnormal */
  CU_ASSERT_DOUBLE_EQUAL(qsr_e4m3_to_f32(0x08), 0.015625, 0); /* 2^-6 */
  int bad = 0;
  for (int c = 0; c < 256; c++) {
    if ((c & 0x7f) == 0x7f) continue;                         /* nan */
    if (qsr_f32_to_e4m3(qsr_e4m3_to_f32((uint8_t)c)) != c && (c & 0x7f)) bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
}

/* ---- bit planes ------------------------------------------------------------- */

static void test_planes(void) {
  static const int bits[] = { 2, 3, 4, 5, 6, 8 };
  gsl_rng *r = rng(1);
  for (size_t b = 0; b < sizeof bits / sizeof *bits; b++) {
    uint8_t blk[32] = { 0 }, codes[32], got[32];
    for (int i = 0; i < 32; i++) {
      codes[i] = (uint8_t)gsl_rng_uniform_int(r, 1ul << bits[b]);
      qsr_code_put(blk, bits[b], i, codes[i]);
    }
    qsr_cpu_unpack_block(blk, bits[b], got);
    for (int i = 0; i < 32; i++) {
      CU_ASSERT_EQUAL(qsr_code_get(blk, bits[b], i), codes[i]);
      CU_ASSERT_EQUAL(got[i], codes[i]);
    }
  }
  /* the documented layout: 3-bit code 5 = 0b101 at i = 9: low 2 bits (01) in
  ** plane 0 byte 2 at bit 2; high bit in plane 1 (from byte 8) byte 1 at bit 1 */
  uint8_t blk[12] = { 0 };
  qsr_code_put(blk, 3, 9, 5);
  CU_ASSERT_EQUAL(blk[2], 0x04);
  CU_ASSERT_EQUAL(blk[9], 0x02);
  for (int i = 0; i < 12; i++) if (i != 2 && i != 9) CU_ASSERT_EQUAL(blk[i], 0);
  gsl_rng_free(r);
}

/* the kernels' buffers are exactly the bytes the cost model counts */
static void test_layout_bytes(void) {
  static const int fmts[] = { QSR_WFMT_INT, QSR_WFMT_INT_SYM, QSR_WFMT_LOG, QSR_WFMT_LUT };
  static const int bits[] = { 2, 3, 4, 5, 6, 8 }, groups[] = { 0, 32, 64, 128 };
  qsr_qmatrix m = { 0 };
  for (int f = 0; f < 4; f++)
    for (int b = 0; b < 6; b++)
      for (int g = 0; g < 4; g++) {
        CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_layout(&m, fmts[f], bits[b], groups[g], 4096, 11008), 0);
        CU_ASSERT_EQUAL(qsr_qmatrix_bytes(&m), qsr_qweight_bytes(fmts[f], bits[b], groups[g], 4096, 11008));
      }
  CU_ASSERT_EQUAL(qsr_qmatrix_layout(&m, QSR_WFMT_FP8, 8, 0, 10, 100), 0);
  CU_ASSERT_EQUAL(qsr_qmatrix_bytes(&m), qsr_qweight_bytes(QSR_WFMT_FP8, 8, 0, 10, 100));
  CU_ASSERT_EQUAL(qsr_qmatrix_layout(&m, QSR_WFMT_INT, 7, 128, 10, 100), -1);
  CU_ASSERT_EQUAL(qsr_qmatrix_layout(&m, QSR_WFMT_INT, 4, 48, 10, 100), -1);
  /* 4-bit g128 LLaMA-7B q_proj: 4096 x 4096 codes / 2 + 4096 x 32 x 4 B */
  qsr_qmatrix_layout(&m, QSR_WFMT_INT, 4, 128, 4096, 4096);
  CU_ASSERT_EQUAL(qsr_qmatrix_bytes(&m), 4096ull * 4096 / 2 + 4096ull * 32 * 4);
}

/* ---- quantiser round trips ------------------------------------------------------ */

/* RMS error of a quantise/dequantise round trip of N(0,1) weights, relative. */
static double roundtrip_rms(int fmt, int bits, int group, double *max_rel_step) {
  gsl_rng *r = rng(7);
  uint32_t R = 64, C = 1000;
  float *w = gauss(r, (size_t)R * C, 1.0), *row = malloc(C * sizeof *row);
  qsr_qmatrix m;
  CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&m, fmt, bits, group, R, C, NULL), QSR_OK);
  qsr_quantize(&m, w);
  double worst = 0, rms = qsr_quant_error(&m, w);
  for (uint32_t i = 0; i < R; i++) {
    qsr_dequantize_row(&m, i, row);
    /* every error within half a step, plus the fp16 rounding of min (2^-11 |min|) and of
    ** scale (the top code moves by up to range * 2^-11): 2e-3 * (1 + |w|) covers both for
    ** N(0,1) groups, whose range stays below 8 */
    if (fmt == QSR_WFMT_INT) {
      for (uint32_t g = 0; g < m.groups_per_row; g++) {
        qsr_meta_int mi;
        memcpy(&mi, m.meta + i * m.row_meta_bytes + g * 4, 4);
        double step = qsr_f16_to_f32(mi.scale);
        for (uint32_t c = g * m.group_codes; c < (g + 1) * m.group_codes && c < C; c++) {
          double e = fabs(row[c] - w[(size_t)i * C + c]);
          double rel = e / (0.5 * step + 2e-3 * (1 + fabs(w[(size_t)i * C + c])));
          if (rel > worst) worst = rel;
        }
      }
    }
  }
  if (max_rel_step) *max_rel_step = worst;
  qsr_qmatrix_free(&m);
  free(w);
  free(row);
  gsl_rng_free(r);
  return rms;
}

static void test_roundtrip(void) {
  static const int fmts[] = { QSR_WFMT_INT, QSR_WFMT_INT_SYM, QSR_WFMT_LOG, QSR_WFMT_LUT };
  static const int bits[] = { 2, 3, 4, 5, 6, 8 };
  double e[4][6];
  for (int f = 0; f < 4; f++)
    for (int b = 0; b < 6; b++) {
      double worst = 0;
      e[f][b] = roundtrip_rms(fmts[f], bits[b], 128, &worst);
      if (fmts[f] == QSR_WFMT_INT) CU_ASSERT(worst <= 1.0);
      /* more bits, less error; a power-of-two grid stops gaining at 4 bits:
      ** its gap between 1/2 and 1 (relative step 1/2) dominates */
      if (b && fmts[f] != QSR_WFMT_LOG) CU_ASSERT(e[f][b] < e[f][b - 1]);
      if (b && fmts[f] == QSR_WFMT_LOG) CU_ASSERT(e[f][b] <= e[f][b - 1] * 1.0001);
    }
  /* uniform grid: rms error = step / sqrt(12), step = range / (2^b - 1); a
  ** group of 128 N(0,1) values spans about 5.0 (expected range of 128
  ** normals), so 4-bit affine is near 5.0/15/3.46 = 0.096 */
  CU_ASSERT(e[0][2] > 0.07 && e[0][2] < 0.12);
  CU_ASSERT(e[0][5] < 0.01);
  /* a k-means codebook beats the uniform grid at the same bits */
  for (int b = 0; b < 5; b++) CU_ASSERT(e[3][b] < e[0][b]);
  /* smaller groups, smaller error */
  double g32 = roundtrip_rms(QSR_WFMT_INT, 4, 32, NULL), g0 = roundtrip_rms(QSR_WFMT_INT, 4, 0, NULL);
  CU_ASSERT(g32 < e[0][2] && e[0][2] < g0);
  /* plain formats: fp16 2^-11 relative, bf16 2^-8, fp8 e4m3 2^-4 */
  CU_ASSERT(roundtrip_rms(QSR_WFMT_FP16, 16, 0, NULL) < 0x1p-11);
  CU_ASSERT(roundtrip_rms(QSR_WFMT_BF16, 16, 0, NULL) < 0x1p-8);
  double f8 = roundtrip_rms(QSR_WFMT_FP8, 8, 0, NULL);
  CU_ASSERT(f8 < 0x1p-4 && f8 > 0x1p-7);
}

static void test_kv_roundtrip(void) {
  gsl_rng *r = rng(3);
  float *x = gauss(r, 128, 2.0), y[128];
  uint8_t buf[300];
  for (int f = 0; f < QSR_KVFMT_COUNT; f++) {
    qsr_kv_encode(f, 128, x, buf);
    qsr_kv_decode(f, 128, buf, y);
    double amax = 0, worst = 0;
    for (int i = 0; i < 128; i++) amax = fmax(amax, fabs(x[i]));
    for (int i = 0; i < 128; i++) worst = fmax(worst, fabs(y[i] - x[i]));
    /* half a step: fp16 |x| 2^-11, int8 amax/127/2, int4 a block's range/15/2 */
    double bound = f == QSR_KVFMT_FP16 ? amax * 0x1p-11 : f == QSR_KVFMT_INT8 ? amax / 254 * 1.01
                                                                                : 2 * amax / 30 * 1.01;
    CU_ASSERT(worst <= bound);
    CU_ASSERT(worst > 0);
  }
  free(x);
  gsl_rng_free(r);
}

/* ---- linear ------------------------------------------------------------------------ */

/* naive y = x W^T in double from the reference dequantiser; returns the worst
** |got - ref| / (sum |w x| tolerance) */
static double linear_check(const qsr_qmatrix *m, const float *x, int T, const float *y) {
  float *row = malloc(m->cols * sizeof *row);
  double worst = 0;
  for (uint32_t r = 0; r < m->rows; r++) {
    qsr_dequantize_row(m, r, row);
    for (int t = 0; t < T; t++) {
      double s = 0, a = 0;
      for (uint32_t c = 0; c < m->cols; c++) {
        s += (double)row[c] * x[(size_t)t * m->cols + c];
        a += fabs((double)row[c] * x[(size_t)t * m->cols + c]);
      }
      double rel = fabs(y[(size_t)t * m->rows + r] - s) / (ACC_TOL(m->cols) * a + 1e-30);
      if (rel > worst) worst = rel;
    }
  }
  free(row);
  return worst;
}

static void test_linear(void) {
  static const struct { int fmt, bits, group; } f[] = {
    { QSR_WFMT_FP16, 16, 0 }, { QSR_WFMT_BF16, 16, 0 }, { QSR_WFMT_FP8, 8, 0 },
    { QSR_WFMT_INT, 2, 32 }, { QSR_WFMT_INT, 3, 64 }, { QSR_WFMT_INT, 4, 128 }, { QSR_WFMT_INT, 5, 0 },
    { QSR_WFMT_INT, 6, 32 }, { QSR_WFMT_INT, 8, 128 }, { QSR_WFMT_INT_SYM, 4, 128 },
    { QSR_WFMT_INT_SYM, 3, 0 }, { QSR_WFMT_LOG, 4, 64 }, { QSR_WFMT_LOG, 3, 128 },
    { QSR_WFMT_LUT, 4, 128 }, { QSR_WFMT_LUT, 2, 32 }, { QSR_WFMT_LUT, 8, 0 },
  };
  static const int Ts[] = { 1, 3, 16, 17, 40 };
  gsl_rng *r = rng(11);
  uint32_t R = 67, C = 200;   /* neither a multiple of 32; the last group is partial */
  float *w = gauss(r, (size_t)R * C, 0.05), *x = gauss(r, 40 * C, 1.0);
  float *y = malloc(40 * R * sizeof *y);
  qsr_pool *pool = qsr_pool_new(3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    qsr_qmatrix m;
    CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&m, f[i].fmt, f[i].bits, f[i].group, R, C, NULL), QSR_OK);
    qsr_quantize(&m, w);
    for (size_t k = 0; k < sizeof Ts / sizeof *Ts; k++) {
      int T = Ts[k];
      qsr_cpu_gemv(k % 2 ? pool : NULL, &m, x, T, y);
      double e1 = linear_check(&m, x, T, y);
      qsr_cpu_gemm(k % 2 ? NULL : pool, &m, x, T, y);
      double e2 = linear_check(&m, x, T, y);
      if (e1 > 1 || e2 > 1)
        fprintf(stderr, "\n  %s %d-bit g%d T=%d: gemv %.2f gemm %.2f of tolerance\n",
                qsr_wfmt_tab[f[i].fmt].name, f[i].bits, f[i].group, T, e1, e2);
      CU_ASSERT(e1 <= 1);
      CU_ASSERT(e2 <= 1);
    }
    /* fast dequantiser == reference, to fp32 rounding */
    float a[200], b[200];
    qsr_cpu_dequant_row(&m, 5, a);
    qsr_dequantize_row(&m, 5, b);
    for (uint32_t c = 0; c < C; c++) CU_ASSERT(fabsf(a[c] - b[c]) <= 1e-6f * (1 + fabsf(b[c])));
    qsr_qmatrix_free(&m);
  }
  qsr_pool_free(pool);
  free(w);
  free(x);
  free(y);
  gsl_rng_free(r);
}

/* ---- attention ------------------------------------------------------------------------ */

struct attn_fix {
  qsr_kvcache c;
  float *k, *v, *q;   /* fp32 inputs: [n][kv][d], [n][kv][d], [n][H][d] */
};

static void attn_fix_make(struct attn_fix *f, int kvfmt, int H, int KV, int d, int n, int page,
                          unsigned long seed) {
  gsl_rng *r = rng(seed);
  CU_ASSERT_EQUAL_FATAL(qsr_kvcache_alloc(&f->c, kvfmt, KV, d, n, page, NULL), QSR_OK);
  f->k = gauss(r, (size_t)n * KV * d, 1.0);
  f->v = gauss(r, (size_t)n * KV * d, 1.0);
  f->q = gauss(r, (size_t)n * H * d, 1.0);
  CU_ASSERT_EQUAL(qsr_kvcache_append(&f->c, n, f->k, f->v), 0);
  gsl_rng_free(r);
}

static void attn_fix_free(struct attn_fix *f) {
  qsr_kvcache_free(&f->c);
  free(f->k);
  free(f->v);
  free(f->q);
}

/* Naive attention of one query over an explicit key set (mask[j] != 0). */
static void naive_attn(const qsr_kvcache *c, int kvh, const float *q, int n, const uint8_t *mask,
                       float scale, float *out) {
  int d = c->head_dim;
  double *p = calloc((size_t)n, sizeof *p), mx = -INFINITY, sum = 0;
  float *kv = malloc((size_t)d * sizeof *kv);
  for (int j = 0; j < n; j++) {
    if (!mask[j]) continue;
    qsr_kvcache_get(c, 0, kvh, j, kv);
    double s = 0;
    for (int e = 0; e < d; e++) s += (double)q[e] * kv[e];
    p[j] = s * scale;
    if (p[j] > mx) mx = p[j];
  }
  double *acc = calloc((size_t)d, sizeof *acc);
  for (int j = 0; j < n; j++) {
    if (!mask[j]) continue;
    double w = exp(p[j] - mx);
    sum += w;
    qsr_kvcache_get(c, 1, kvh, j, kv);
    for (int e = 0; e < d; e++) acc[e] += w * kv[e];
  }
  for (int e = 0; e < d; e++) out[e] = (float)(acc[e] / sum);
  free(p);
  free(kv);
  free(acc);
}

static int cmp_desc(const void *a, const void *b) {
  double x = ((const double *)a)[0], y = ((const double *)b)[0];
  if (x != y) return x < y ? 1 : -1;
  return ((const double *)a)[1] < ((const double *)b)[1] ? -1 : 1;
}

/* The key set a head type allows, built the obvious way (full sorts). */
static void naive_mask(const qsr_kvcache *c, const qsr_attn_cfg *cfg, int type, int kvh,
                       const float *q, int n, uint8_t *mask) {
  int lo = cfg->sliding_window > 0 && n > cfg->sliding_window ? n - cfg->sliding_window : 0;
  int d = c->head_dim;
  memset(mask, 0, (size_t)n);
  for (int j = lo; j < n; j++) mask[j] = type != QSR_HEAD_LOCAL || j > n - 1 - cfg->window;
  if (type != QSR_HEAD_TOPK) return;
  float *kv = malloc((size_t)d * sizeof *kv);
  if (!cfg->paged) {
    double(*s)[2] = malloc((size_t)n * sizeof *s);
    int m = 0;
    for (int j = lo; j < n; j++) {
      qsr_kvcache_get(c, 0, kvh, j, kv);
      double dot = 0;
      for (int e = 0; e < d; e++) dot += q[e] * kv[e];
      s[m][0] = (float)(cfg->scale * (float)dot);
      s[m++][1] = j;
    }
    qsort(s, (size_t)m, sizeof *s, cmp_desc);
    memset(mask, 0, (size_t)n);
    for (int i = 0; i < m && i < cfg->topk; i++) mask[(int)s[i][1]] = 1;
    free(s);
  } else {
    int P = c->page, last = (n - 1) / P, np = 0;
    double(*s)[2] = malloc((size_t)(last + 1) * sizeof *s);
    for (int pg = lo / P; pg < last; pg++) {
      double b = 0;
      for (int e = 0; e < d; e++) {
        size_t o = ((size_t)kvh * qsr_kvcache_pages(c) + pg) * d + e;
        b += fmax(q[e] * c->kmin[o], q[e] * c->kmax[o]);
      }
      s[np][0] = (float)b;
      s[np++][1] = pg;
    }
    qsort(s, (size_t)np, sizeof *s, cmp_desc);
    uint8_t *keep = calloc((size_t)last + 1, 1);
    for (int i = 0; i < np && i < (cfg->topk + P - 1) / P; i++) keep[(int)s[i][1]] = 1;
    keep[last] = 1;
    for (int j = lo; j < n; j++) mask[j] = keep[j / P];
    free(keep);
    free(s);
  }
  free(kv);
}

static double attn_compare(int kvfmt, int H, int KV, int d, int n, int T, const uint8_t *types,
                           int window, int topk, int paged, int page, int sliding) {
  struct attn_fix f;
  attn_fix_make(&f, kvfmt, H, KV, d, n, page, 5u + (unsigned)n);
  qsr_attn_cfg cfg = { H, KV, d, types, window, topk, paged, sliding, 1.0f / sqrtf((float)d) };
  qsr_pool *pool = qsr_pool_new(2);
  float *scratch = malloc(qsr_cpu_attn_scratch(pool, &cfg, n) * sizeof *scratch);
  float *out = malloc((size_t)T * H * d * sizeof *out), *ref = malloc((size_t)d * sizeof *ref);
  uint8_t *mask = malloc((size_t)n);
  const float *q = f.q + (size_t)(n - T) * H * d;
  if (T == 1) qsr_cpu_attn_decode(pool, &cfg, &f.c, q, out, scratch);
  else qsr_cpu_attn_prefill(pool, &cfg, &f.c, T, q, out, scratch);
  double worst = 0;
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      int pos = n - T + t, kvh = h / (H / KV);
      const float *qh = q + ((size_t)t * H + h) * d;
      naive_mask(&f.c, &cfg, types ? types[h] : 0, kvh, qh, pos + 1, mask);
      naive_attn(&f.c, kvh, qh, pos + 1, mask, cfg.scale, ref);
      for (int e = 0; e < d; e++) worst = fmax(worst, fabs(out[((size_t)t * H + h) * d + e] - ref[e]));
    }
  free(scratch);
  free(out);
  free(ref);
  free(mask);
  qsr_pool_free(pool);
  attn_fix_free(&f);
  return worst;
}

static void test_attention_vs_naive(void) {
  uint8_t types[8] = { QSR_HEAD_DENSE, QSR_HEAD_LOCAL, QSR_HEAD_TOPK, QSR_HEAD_TOPK,
                       QSR_HEAD_LOCAL, QSR_HEAD_DENSE, QSR_HEAD_TOPK, QSR_HEAD_LOCAL };
  /* outputs are convex combinations of values |v| < ~5; fp32 softmax over up
  ** to 300 keys: 1e-5 absolute is ~100 ulps of slack */
  const double tol = 1e-5;
  for (int kv = 0; kv < QSR_KVFMT_COUNT; kv++) {
    CU_ASSERT(attn_compare(kv, 8, 2, 64, 300, 1, types, 40, 16, 0, 0, 0) < tol);
    CU_ASSERT(attn_compare(kv, 8, 2, 64, 300, 1, types, 40, 48, 1, 16, 0) < tol);
    CU_ASSERT(attn_compare(kv, 8, 8, 32, 150, 37, types, 20, 8, 0, 0, 0) < tol);
    CU_ASSERT(attn_compare(kv, 8, 4, 32, 150, 37, types, 20, 24, 1, 8, 0) < tol);
  }
  CU_ASSERT(attn_compare(QSR_KVFMT_FP16, 8, 2, 64, 300, 1, NULL, 0, 0, 0, 0, 100) < tol);  /* model window */
  CU_ASSERT(attn_compare(QSR_KVFMT_FP16, 8, 2, 64, 200, 50, types, 16, 8, 0, 0, 64) < tol);
}

/* Closed forms: one key gives its value; a window as long as the context, or
** k as large as it, is dense; a local head ignores keys before its window;
** prefill equals successive decodes. */
static void test_attention_facts(void) {
  int H = 4, KV = 2, d = 32, n = 64;
  struct attn_fix f;
  attn_fix_make(&f, QSR_KVFMT_FP16, H, KV, d, n, 8, 99);
  qsr_attn_cfg cfg = { H, KV, d, NULL, 0, 0, 0, 0, 0.17f };
  float *scratch = malloc(qsr_cpu_attn_scratch(NULL, &cfg, n) * sizeof *scratch);
  float dense[4 * 32], other[4 * 32], v0[32];
  const float *q = f.q + (size_t)(n - 1) * H * d;

  qsr_kvcache one = f.c;
  one.len = 1;
  qsr_cpu_attn_decode(NULL, &cfg, &one, f.q, dense, scratch);
  qsr_kvcache_get(&f.c, 1, 1, 0, v0);
  for (int e = 0; e < d; e++) CU_ASSERT_DOUBLE_EQUAL(dense[3 * d + e], v0[e], 1e-6);

  qsr_cpu_attn_decode(NULL, &cfg, &f.c, q, dense, scratch);
  uint8_t loc[4] = { 2, 2, 2, 2 }, topk[4] = { 1, 1, 1, 1 };
  cfg.head_type = loc;
  cfg.window = n;
  qsr_cpu_attn_decode(NULL, &cfg, &f.c, q, other, scratch);
  for (int i = 0; i < H * d; i++) CU_ASSERT_DOUBLE_EQUAL(other[i], dense[i], 1e-6);
  cfg.head_type = topk;
  cfg.topk = n;
  qsr_cpu_attn_decode(NULL, &cfg, &f.c, q, other, scratch);
  for (int i = 0; i < H * d; i++) CU_ASSERT_DOUBLE_EQUAL(other[i], dense[i], 1e-6);
  cfg.paged = 1;
  qsr_cpu_attn_decode(NULL, &cfg, &f.c, q, other, scratch);
  for (int i = 0; i < H * d; i++) CU_ASSERT_DOUBLE_EQUAL(other[i], dense[i], 1e-6);

  /* window 10: scrambling the values of keys 0..53 changes nothing */
  cfg.head_type = loc;
  cfg.paged = 0;
  cfg.window = 10;
  qsr_cpu_attn_decode(NULL, &cfg, &f.c, q, dense, scratch);
  memset(f.c.v, 0x3c, (size_t)(n - 10) * f.c.vec_bytes);          /* KV head 0 */
  memset(f.c.v + (size_t)f.c.max_ctx * f.c.vec_bytes, 0x3c, (size_t)(n - 10) * f.c.vec_bytes);
  qsr_cpu_attn_decode(NULL, &cfg, &f.c, q, other, scratch);
  for (int i = 0; i < H * d; i++) CU_ASSERT_EQUAL(other[i], dense[i]);

  /* prefill of the last 20 = 20 decodes at growing length (paged top-k too) */
  uint8_t mix[4] = { 0, 1, 2, 1 };
  cfg.head_type = mix;
  cfg.topk = 12;
  cfg.paged = 1;
  float *pre = malloc(20 * (size_t)H * d * sizeof *pre);
  qsr_cpu_attn_prefill(NULL, &cfg, &f.c, 20, f.q + (size_t)(n - 20) * H * d, pre, scratch);
  int bad = 0;
  for (int t = 0; t < 20; t++) {
    qsr_kvcache part = f.c;
    part.len = n - 20 + t + 1;
    qsr_cpu_attn_decode(NULL, &cfg, &part, f.q + (size_t)(n - 20 + t) * H * d, other, scratch);
    for (int i = 0; i < H * d; i++) bad += other[i] != pre[(size_t)t * H * d + i];
  }
  CU_ASSERT_EQUAL(bad, 0);
  free(pre);
  free(scratch);
  attn_fix_free(&f);
}

/* ---- MoE -------------------------------------------------------------------------------- */

static void test_router(void) {
  /* gating weights = identity on the first 4 of 32 features, so logits = x */
  int E = 4, D = 32, T = 6, k = 2;
  float wg[4 * 32] = { 0 }, x[6 * 32] = { 0 }, logits[6 * 4];
  for (int e = 0; e < E; e++) wg[e * D + e] = 1;
  static const float lx[6][4] = { { 3, 1, 0, 0 }, { 3, 0, 2, 0 }, { 3, 0, 0, 1 },
                                  { 0, 1, 1, 0 }, { 0, 0, 0, 2 }, { 2, 0, 0, 3 } };
  for (int t = 0; t < T; t++) for (int e = 0; e < E; e++) x[t * D + e] = lx[t][e];
  qsr_qmatrix m;
  qsr_moe_plan pl;
  CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&m, QSR_WFMT_FP16, 16, 0, (uint32_t)E, (uint32_t)D, NULL), QSR_OK);
  qsr_quantize(&m, wg);
  CU_ASSERT_EQUAL_FATAL(qsr_moe_plan_alloc(&pl, T, E, k, NULL), QSR_OK);
  qsr_cpu_moe_router(NULL, &m, x, T, k, 0, &pl, logits);
  /* token 0: experts 0 then 1, weights e^3/(e^3+e^1) and e^1/(e^3+e^1) */
  CU_ASSERT_EQUAL(pl.choice[0], 0);
  CU_ASSERT_EQUAL(pl.choice[1], 1);
  CU_ASSERT_EQUAL(pl.choice[3 * 2], 1);          /* token 3: tie 1 = 2 -> lower first */
  CU_ASSERT_EQUAL(pl.choice[3 * 2 + 1], 2);
  CU_ASSERT_EQUAL(pl.choice[4 * 2 + 1], 0);      /* token 4: 3 first, then tie 0,1,2 -> 0 */
  CU_ASSERT_EQUAL(pl.dropped, 0);
  CU_ASSERT_EQUAL(pl.offset[E], T * k);
  double w0 = exp(3.0) / (exp(3.0) + exp(1.0));
  CU_ASSERT_DOUBLE_EQUAL(pl.weight[0], w0, 1e-6);  /* expert 0's first row is token 0 */
  CU_ASSERT_EQUAL(pl.offset[1] - pl.offset[0], 5); /* tokens 0,1,2,4,5 pick expert 0 */
  /* capacity 2: expert 0 keeps tokens 0 and 1, drops 2, 4 and 5 */
  qsr_cpu_moe_router(NULL, &m, x, T, k, 2, &pl, logits);
  CU_ASSERT_EQUAL(pl.offset[1] - pl.offset[0], 2);
  CU_ASSERT_EQUAL(pl.token[0], 0);
  CU_ASSERT_EQUAL(pl.token[1], 1);
  /* picks: e0 x5, e1 {0,3}, e2 {1,3}, e3 {2,4,5}: over capacity 3 + 1 */
  CU_ASSERT_EQUAL(pl.dropped, 4);
  CU_ASSERT_EQUAL(pl.offset[E], T * k - 4);
  qsr_moe_plan_free(&pl);
  qsr_qmatrix_free(&m);
}

static void test_experts(void) {
  int E = 4, H = 64, F = 96, T = 20, k = 2;
  gsl_rng *r = rng(21);
  float *x = gauss(r, (size_t)T * H, 1.0), *wg = gauss(r, (size_t)E * H, 1.0);
  qsr_qmatrix g[4], u[4], dn[4], mg;
  for (int e = 0; e < E; e++) {
    float *a = gauss(r, (size_t)F * H, 0.1), *b = gauss(r, (size_t)F * H, 0.1), *c = gauss(r, (size_t)H * F, 0.1);
    qsr_qmatrix_alloc(&g[e], QSR_WFMT_INT, 4, 32, (uint32_t)F, (uint32_t)H, NULL);
    qsr_qmatrix_alloc(&u[e], QSR_WFMT_LUT, 3, 32, (uint32_t)F, (uint32_t)H, NULL);
    qsr_qmatrix_alloc(&dn[e], QSR_WFMT_INT_SYM, 8, 0, (uint32_t)H, (uint32_t)F, NULL);
    qsr_quantize(&g[e], a);
    qsr_quantize(&u[e], b);
    qsr_quantize(&dn[e], c);
    free(a); free(b); free(c);
  }
  qsr_qmatrix_alloc(&mg, QSR_WFMT_FP16, 16, 0, (uint32_t)E, (uint32_t)H, NULL);
  qsr_quantize(&mg, wg);
  qsr_moe_plan pl;
  qsr_moe_plan_alloc(&pl, T, E, k, NULL);
  float logits[20 * 4], *y = calloc((size_t)T * H, sizeof *y);
  float *scratch = malloc(qsr_cpu_moe_scratch(&pl, F, H) * sizeof *scratch);
  qsr_pool *pool = qsr_pool_new(2);
  qsr_cpu_moe_router(pool, &mg, x, T, k, 7, &pl, logits);
  qsr_cpu_moe_experts(pool, g, u, dn, &pl, x, y, scratch);
  /* naive: per kept (token, expert) pair, the dense FFN in double */
  double *ref = calloc((size_t)T * H, sizeof *ref), *hh = malloc((size_t)F * sizeof *hh);
  float *rg = malloc((size_t)H * sizeof *rg), *ru = malloc((size_t)H * sizeof *ru), *rd = malloc((size_t)F * sizeof *rd);
  for (int e = 0; e < E; e++)
    for (int i = pl.offset[e]; i < pl.offset[e + 1]; i++) {
      const float *xt = x + (size_t)pl.token[i] * H;
      for (int f = 0; f < F; f++) {
        double a = 0, b = 0;
        qsr_dequantize_row(&g[e], (uint32_t)f, rg);
        qsr_dequantize_row(&u[e], (uint32_t)f, ru);
        for (int c = 0; c < H; c++) { a += rg[c] * xt[c]; b += ru[c] * xt[c]; }
        hh[f] = a / (1 + exp(-a)) * b;
      }
      for (int c = 0; c < H; c++) {
        double s = 0;
        qsr_dequantize_row(&dn[e], (uint32_t)c, rd);
        for (int f = 0; f < F; f++) s += rd[f] * hh[f];
        ref[(size_t)pl.token[i] * H + c] += pl.weight[i] * s;
      }
    }
  double worst = 0, mag = 0;
  for (int i = 0; i < T * H; i++) { worst = fmax(worst, fabs(y[i] - ref[i])); mag = fmax(mag, fabs(ref[i])); }
  CU_ASSERT(mag > 0.01);
  CU_ASSERT(worst < 1e-5 * (1 + mag));
  CU_ASSERT(pl.dropped > 0);   /* 40 picks over 4 experts at capacity 7 must drop */
  CU_ASSERT_EQUAL(pl.offset[E] + pl.dropped, T * k);
  qsr_pool_free(pool);
  for (int e = 0; e < E; e++) { qsr_qmatrix_free(&g[e]); qsr_qmatrix_free(&u[e]); qsr_qmatrix_free(&dn[e]); }
  qsr_qmatrix_free(&mg);
  qsr_moe_plan_free(&pl);
  free(x); free(wg); free(y); free(scratch); free(ref); free(hh); free(rg); free(ru); free(rd);
  gsl_rng_free(r);
}

/* ---- elementwise, embedding, pool --------------------------------------------------------- */

static void test_elementwise(void) {
  float x[8] = { 2, 2, 2, 2, -2, -2, -2, -2 }, res[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
  float w[8] = { 1, 2, 3, 4, 1, 1, 1, 1 }, out[8];
  /* rms of (3,3,3,3,-1,-1,-1,-1) is sqrt(5); out = v / sqrt(5) * w */
  qsr_cpu_rmsnorm_add(x, res, w, 0, 1, 8, out);
  CU_ASSERT_DOUBLE_EQUAL(res[0], 3, 0);
  CU_ASSERT_DOUBLE_EQUAL(out[3], 12 / sqrt(5.0), 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(out[7], -1 / sqrt(5.0), 1e-6);
  /* layernorm of (3,3,3,3,-1,-1,-1,-1): mean 1, sd 2 -> +-1 */
  float ones[8] = { 1, 1, 1, 1, 1, 1, 1, 1 }, b[8] = { 0.5f, 0, 0, 0, 0, 0, 0, 0 };
  qsr_cpu_layernorm_add(res, NULL, ones, b, 0, 1, 8, out);
  CU_ASSERT_DOUBLE_EQUAL(out[0], 1.5, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(out[5], -1, 1e-6);
  float g[3] = { 0, 1, -20 }, u[3] = { 5, 2, 1 }, o[3];
  qsr_cpu_silu_gate(g, u, 3, o);
  CU_ASSERT_DOUBLE_EQUAL(o[0], 0, 0);
  CU_ASSERT_DOUBLE_EQUAL(o[1], 2 / (1 + exp(-1.0)), 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(o[2], -20 / (1 + exp(20.0)), 1e-9);
  float gx[3] = { 0, 1, -3 };
  qsr_cpu_gelu(gx, 3, o);
  CU_ASSERT_DOUBLE_EQUAL(o[0], 0, 0);
  CU_ASSERT_DOUBLE_EQUAL(o[1], 0.8411920, 1e-6);   /* tanh form at 1 */
  CU_ASSERT_DOUBLE_EQUAL(o[2], -0.0036373, 1e-6);
}

static void test_embedding(void) {
  gsl_rng *r = rng(4);
  float *t = gauss(r, 100 * 64, 1.0), out[3 * 64], row[64];
  qsr_qmatrix m;
  qsr_qmatrix_alloc(&m, QSR_WFMT_INT, 4, 32, 100, 64, NULL);
  qsr_quantize(&m, t);
  int32_t ids[3] = { 99, 0, 42 };
  qsr_cpu_embedding(&m, ids, 3, out);
  for (int i = 0; i < 3; i++) {
    qsr_dequantize_row(&m, (uint32_t)ids[i], row);
    for (int c = 0; c < 64; c++) CU_ASSERT_DOUBLE_EQUAL(out[i * 64 + c], row[c], 1e-6 * (1 + fabs(row[c])));
  }
  qsr_qmatrix_free(&m);
  free(t);
  gsl_rng_free(r);
}

struct pool_probe { int *hits; int *worker_seen; };

static void probe(void *arg, int i, int worker) {
  struct pool_probe *p = arg;
  __atomic_fetch_add(&p->hits[i], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&p->worker_seen[worker], 1, __ATOMIC_RELAXED);
}

static void test_pool(void) {
  qsr_pool *p = qsr_pool_new(4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL(qsr_pool_threads(p), 4);
  int hits[1000], seen[4];
  struct pool_probe pr = { hits, seen };
  for (int run = 0; run < 50; run++) {
    memset(hits, 0, sizeof hits);
    memset(seen, 0, sizeof seen);
    qsr_pool_run(p, 1000, probe, &pr);
    int once = 1, total = 0;
    for (int i = 0; i < 1000; i++) once &= hits[i] == 1;
    for (int w = 0; w < 4; w++) total += seen[w];
    CU_ASSERT(once);
    CU_ASSERT_EQUAL(total, 1000);
  }
  qsr_pool_free(p);
  qsr_pool_free(NULL);
  CU_ASSERT_EQUAL(qsr_pool_threads(NULL), 1);
}


/* ---- host figures and the measurements table ------------------------------------------------ */

static void test_host_figures(void) {
  qsr_pool *p = qsr_pool_new(2);
  double gbps = qsr_kbench_copy_gbps(p), gflops = qsr_kbench_fma_gflops(p);
  /* any machine that runs this: between a Raspberry Pi 1 and a full HBM GPU */
  CU_ASSERT(gbps > 0.5 && gbps < 5000);
  CU_ASSERT(gflops > 0.5 && gflops < 100000);
  qsr_pool_free(p);
}

static void test_measurements_table(void) {
  sqlite3 *db = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_open(":memory:", &db), SQLITE_OK);
  CU_ASSERT_EQUAL(qsr_measure_schema(db, ":memory:", NULL), QSR_OK);
  CU_ASSERT_EQUAL(qsr_measure_schema(db, ":memory:", NULL), QSR_OK);  /* idempotent */
  struct qsr_meas m;
  qsr_meas_clear(&m);
  m.kernel = "gemv_int";
  m.wfmt = "int";
  m.bits = 4;
  m.grp = 128;
  m.tokens = 1;
  m.rows = 4096;
  m.cols = 4096;
  m.median_us = 123.5;
  m.split = "fit";
  CU_ASSERT_EQUAL(qsr_measure_put(db, ":memory:", &m, NULL), QSR_OK);
  m.kernel = NULL;                                   /* kernel is NOT NULL */
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_measure_put(db, ":memory:", &m, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NOT_NULL(err);
  free(err);
  sqlite3_stmt *q = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, "SELECT count(*), kernel, bits, grp, median_us, ctx IS NULL,"
                                               " flops IS NULL FROM measurements", -1, &q, NULL), SQLITE_OK);
  CU_ASSERT_EQUAL(sqlite3_step(q), SQLITE_ROW);
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 0), 1);
  CU_ASSERT_STRING_EQUAL((const char *)sqlite3_column_text(q, 1), "gemv_int");
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 2), 4);
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 3), 128);
  CU_ASSERT_DOUBLE_EQUAL(sqlite3_column_double(q, 4), 123.5, 0);
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 5), 1);      /* unset numbers are NULL */
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 6), 1);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

void tst_register_kernels(void) {
  CU_pSuite s = CU_add_suite("kernels", NULL, NULL);
  CU_add_test(s, "fp16 and bf16 conversions", test_fp16);
  CU_add_test(s, "fp8 e4m3 conversions", test_e4m3);
  CU_add_test(s, "bit planes", test_planes);
  CU_add_test(s, "buffer bytes = cost model bytes", test_layout_bytes);
  CU_add_test(s, "quantiser round trips", test_roundtrip);
  CU_add_test(s, "kv vector round trips", test_kv_roundtrip);
  CU_add_test(s, "gemv and gemm vs naive, every format", test_linear);
  CU_add_test(s, "attention vs naive, head types x kv formats", test_attention_vs_naive);
  CU_add_test(s, "attention closed forms", test_attention_facts);
  CU_add_test(s, "moe router: top-k, ties, capacity", test_router);
  CU_add_test(s, "moe experts vs naive", test_experts);
  CU_add_test(s, "norms and activations", test_elementwise);
  CU_add_test(s, "embedding", test_embedding);
  CU_add_test(s, "thread pool", test_pool);
  CU_add_test(s, "host copy bandwidth and fma peak", test_host_figures);
  CU_add_test(s, "measurements table", test_measurements_table);
}
