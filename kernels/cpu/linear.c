/*
** linear.c -- gemv_<fmt> and gemm_<fmt> on the CPU: y[T][rows] = x[T][cols] . W^T.
**
** Both walk W once per call in 32-code blocks. gemv keeps T partial sums per
** row and, for the affine and symmetric formats, multiplies the raw codes and
** applies the group's scale (and min times the group's x sum) once per group,
** so the inner loop is code * x only. gemm dequantises a tile of rows to fp32
** once and then runs T x tile dot products over column chunks that stay in
** cache. Rows are split over the pool.
*/
#include "kernels/cpu/cpu.h"

#include "kernels/cpu/cpu_int.h"
#include "kernels/qcode.h"
#include "kernels/variants.h"
#include "util/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GEMV_ROWS 32  /* rows per task */
#define GEMM_ROWS 16  /* rows per dequantised tile */
#define GEMM_KC 512   /* columns per cache chunk */

/* The fp32 value of each code of a log or lut group: levels times scale, or
** the decoded codebook. */
static void group_levels(const qsr_qmatrix *w, const uint8_t *meta, float *lv) {
  int n = 1 << w->bits;
  uint16_t h;
  switch (w->fmt) {
  case QSR_WFMT_LOG:
    memcpy(&h, meta, 2);
    for (int c = 0; c < n; c++) lv[c] = qsr_f16_to_f32(h) * qsr_log_level((uint32_t)c, w->bits);
    break;
  case QSR_WFMT_LUT:
    for (int c = 0; c < n; c++) { memcpy(&h, meta + 2 * c, 2); lv[c] = qsr_f16_to_f32(h); }
    break;
  default: QSR_ASSERT(0);
  }
}

static float dot(const float *restrict a, const float *restrict b, int n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

/* Byte -> the fp32 codes it holds, per plane width (8 KiB + 4 + 2 + 1 in
** all, L1-resident): unpacking a block is then 8..32 small copies instead of
** shifts, masks and int-to-float conversions per code. */
static float lut8[256], lut4[256][2], lut2[256][4], lut1[256][8], lut_e4m3[256];
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void) {
  for (int b = 0; b < 256; b++) {
    lut8[b] = (float)b;
    lut_e4m3[b] = qsr_e4m3_to_f32((uint8_t)b);
    for (int s = 0; s < 2; s++) lut4[b][s] = (float)((b >> (4 * s)) & 15);
    for (int s = 0; s < 4; s++) lut2[b][s] = (float)((b >> (2 * s)) & 3);
    for (int s = 0; s < 8; s++) lut1[b][s] = (float)((b >> s) & 1);
  }
}

#define QSR_INLINE static inline __attribute__((always_inline))

/* 32 codes of a full block to fp32 (bits is a constant at each call site). */
QSR_INLINE void unpack_f32(const uint8_t *blk, int bits, float *cf) {
  int w0 = bits >= 4 ? (bits == 8 ? 8 : 4) : 2, w1 = bits - w0;
  if (w0 == 8) for (int j = 0; j < 32; j++) cf[j] = lut8[blk[j]];
  else if (w0 == 4) for (int j = 0; j < 16; j++) memcpy(cf + 2 * j, lut4[blk[j]], 8);
  else for (int j = 0; j < 8; j++) memcpy(cf + 4 * j, lut2[blk[j]], 16);
  if (!w1) return;
  const uint8_t *p1 = blk + QSR_QBLOCK * w0 / 8;
  float hi[QSR_QBLOCK], mul = (float)(1 << w0);
  if (w1 == 2) for (int j = 0; j < 8; j++) memcpy(hi + 4 * j, lut2[p1[j]], 16);
  else for (int j = 0; j < 4; j++) memcpy(hi + 8 * j, lut1[p1[j]], 32);
  for (int i = 0; i < QSR_QBLOCK; i++) cf[i] += mul * hi[i];
}

/* The 32 codes of one block as bytes (the tests' view of unpack_f32). */
void qsr_cpu_unpack_block(const uint8_t *blk, int bits, uint8_t *codes) {
  float cf[QSR_QBLOCK];
  pthread_once(&lut_once, lut_init);
  unpack_f32(blk, bits, cf);
  for (int i = 0; i < QSR_QBLOCK; i++) codes[i] = (uint8_t)cf[i];
}

/* An int or int_sym group's weight = scale * code + add. */
static void group_affine(const qsr_qmatrix *w, const uint8_t *gm, float *scale, float *add) {
  uint16_t h;
  memcpy(&h, gm, 2);
  *scale = qsr_f16_to_f32(h);
  if (w->fmt == QSR_WFMT_INT) { memcpy(&h, gm + 2, 2); *add = qsr_f16_to_f32(h); }
  else *add = -*scale * (float)(1 << (w->bits - 1));
}

void qsr_cpu_dequant_row(const qsr_qmatrix *w, uint32_t r, float *out) {
  const uint8_t *d = w->data + r * w->row_data_bytes;
  switch (w->fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16: {
    const uint16_t *h = (const uint16_t *)d;
    if (w->fmt == QSR_WFMT_FP16) for (uint32_t c = 0; c < w->cols; c++) out[c] = qsr_f16_to_f32(h[c]);
    else for (uint32_t c = 0; c < w->cols; c++) out[c] = qsr_bf16_to_f32(h[c]);
    return;
  }
  case QSR_WFMT_FP8: {
    float s;
    memcpy(&s, w->meta + 4 * r, 4);
    pthread_once(&lut_once, lut_init);
    for (uint32_t c = 0; c < w->cols; c++) out[c] = s * lut_e4m3[d[c]];
    return;
  }
  }
  const uint8_t *meta = w->meta + r * w->row_meta_bytes;
  uint32_t bb = qsr_qblock_bytes(w->bits), mb = qsr_qmeta_bytes(w->fmt, w->bits);
  uint32_t bpg = w->group_codes / QSR_QBLOCK;
  int affine = w->fmt == QSR_WFMT_INT || w->fmt == QSR_WFMT_INT_SYM;
  float lv[256], cf[QSR_QBLOCK];
  pthread_once(&lut_once, lut_init);
  for (uint32_t g = 0; g < w->groups_per_row; g++) {
    const uint8_t *gm = meta + g * mb;
    float scale = 1, add = 0;
    if (affine) group_affine(w, gm, &scale, &add);
    else group_levels(w, gm, lv);
    for (uint32_t b = g * bpg; b < (g + 1) * bpg && b < w->blocks_per_row; b++) {
      uint32_t c0 = b * QSR_QBLOCK, n = w->cols - c0 < QSR_QBLOCK ? w->cols - c0 : QSR_QBLOCK;
      unpack_f32(d + b * bb, w->bits, cf);
      if (affine) for (uint32_t i = 0; i < n; i++) out[c0 + i] = scale * cf[i] + add;
      else for (uint32_t i = 0; i < n; i++) out[c0 + i] = lv[(int)cf[i]];
    }
  }
}

struct lin_job {
  const qsr_qmatrix *w;
  const float *x;
  int T;
  float *y;
  const float *xsum;       /* gemv: [T][groups_per_row] sums of x per group */
};

/* GCC/Clang vector extension: 8 lanes, lowered to AVX, SSE or NEON pairs. */
typedef float qsr_v8f __attribute__((vector_size(32)));

QSR_INLINE float dot32(const float *restrict a, const float *restrict b) {
  qsr_v8f acc = { 0 }, va, vb;
  for (int i = 0; i < QSR_QBLOCK; i += 8) {
    memcpy(&va, a + i, sizeof va);
    memcpy(&vb, b + i, sizeof vb);
    acc += va * vb;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* One row of a packed format against nt (<= 16) tokens: acc[t] = y[t][r]. */
QSR_INLINE void gemv_row(const struct lin_job *j, uint32_t r, int t0, int nt, int bits, float *acc) {
  const qsr_qmatrix *w = j->w;
  int fmt = w->fmt, affine = fmt == QSR_WFMT_INT || fmt == QSR_WFMT_INT_SYM;
  uint32_t bb = (uint32_t)(QSR_QBLOCK * bits / 8), mb = qsr_qmeta_bytes(fmt, bits);
  uint32_t bpg = w->group_codes / QSR_QBLOCK, G = w->groups_per_row;
  const uint8_t *d = w->data + r * w->row_data_bytes, *meta = w->meta + r * w->row_meta_bytes;
  const float *x0 = j->x + (size_t)t0 * w->cols;
  float lv[256], cf[QSR_QBLOCK], gacc[16];
  for (int t = 0; t < nt; t++) acc[t] = 0;
  for (uint32_t g = 0; g < G; g++) {
    const uint8_t *gm = meta + g * mb;
    if (!affine) group_levels(w, gm, lv);
    for (int t = 0; t < nt; t++) gacc[t] = 0;
    uint32_t b1 = (g + 1) * bpg < w->blocks_per_row ? (g + 1) * bpg : w->blocks_per_row;
    for (uint32_t b = g * bpg; b < b1; b++) {
      uint32_t c0 = b * QSR_QBLOCK;
      unpack_f32(d + b * bb, bits, cf);
      if (!affine) for (int i = 0; i < QSR_QBLOCK; i++) cf[i] = lv[(int)cf[i]];
      if (c0 + QSR_QBLOCK <= w->cols)
        for (int t = 0; t < nt; t++) gacc[t] += dot32(cf, x0 + (size_t)t * w->cols + c0);
      else
        for (int t = 0; t < nt; t++) gacc[t] += dot(cf, x0 + (size_t)t * w->cols + c0, (int)(w->cols - c0));
    }
    if (affine) {
      float s, add;
      group_affine(w, gm, &s, &add);
      for (int t = 0; t < nt; t++) acc[t] += s * gacc[t] + add * j->xsum[(size_t)(t0 + t) * G + g];
    } else {
      for (int t = 0; t < nt; t++) acc[t] += gacc[t];
    }
  }
}

/* gemv over rows [i*GEMV_ROWS, ...) of a packed format. */
static void gemv_packed_task(void *arg, int task, int worker) {
  (void)worker;
  const struct lin_job *j = arg;
  const qsr_qmatrix *w = j->w;
  uint32_t r0 = (uint32_t)task * GEMV_ROWS, r1 = r0 + GEMV_ROWS < w->rows ? r0 + GEMV_ROWS : w->rows;
  float acc[16];
  for (uint32_t r = r0; r < r1; r++)
    for (int t0 = 0; t0 < j->T; t0 += 16) {
      int nt = j->T - t0 < 16 ? j->T - t0 : 16;
      switch (w->bits) {   /* constant bits: one specialised copy each */
      case 2: gemv_row(j, r, t0, nt, 2, acc); break;
      case 3: gemv_row(j, r, t0, nt, 3, acc); break;
      case 4: gemv_row(j, r, t0, nt, 4, acc); break;
      case 5: gemv_row(j, r, t0, nt, 5, acc); break;
      case 6: gemv_row(j, r, t0, nt, 6, acc); break;
      default: gemv_row(j, r, t0, nt, 8, acc); break;
      }
      for (int t = 0; t < nt; t++) j->y[(size_t)(t0 + t) * w->rows + r] = acc[t];
    }
}

/* gemv of fp16, bf16, fp8: decode a 32-column chunk, dot with each token. */
static void gemv_plain_task(void *arg, int task, int worker) {
  (void)worker;
  const struct lin_job *j = arg;
  const qsr_qmatrix *w = j->w;
  uint32_t r0 = (uint32_t)task * GEMV_ROWS, r1 = r0 + GEMV_ROWS < w->rows ? r0 + GEMV_ROWS : w->rows;
  float cf[QSR_QBLOCK], acc[16];
  for (uint32_t r = r0; r < r1; r++) {
    const uint8_t *d = w->data + r * w->row_data_bytes;
    float s = 1;
    if (w->fmt == QSR_WFMT_FP8) memcpy(&s, w->meta + 4 * r, 4);
    for (int t0 = 0; t0 < j->T; t0 += 16) {
      int nt = j->T - t0 < 16 ? j->T - t0 : 16;
      memset(acc, 0, sizeof acc);
      for (uint32_t c0 = 0; c0 < w->cols; c0 += QSR_QBLOCK) {
        int n = w->cols - c0 < QSR_QBLOCK ? (int)(w->cols - c0) : QSR_QBLOCK;
        const uint16_t *h = (const uint16_t *)d + c0;
        if (w->fmt == QSR_WFMT_FP16) for (int i = 0; i < n; i++) cf[i] = qsr_f16_to_f32(h[i]);
        else if (w->fmt == QSR_WFMT_BF16) for (int i = 0; i < n; i++) cf[i] = qsr_bf16_to_f32(h[i]);
        else for (int i = 0; i < n; i++) cf[i] = lut_e4m3[d[c0 + i]];
        for (int t = 0; t < nt; t++) acc[t] += dot(cf, j->x + (size_t)(t0 + t) * w->cols + c0, n);
      }
      for (int t = 0; t < nt; t++) j->y[(size_t)(t0 + t) * w->rows + r] = s * acc[t];
    }
  }
}

void qsr_cpu_gemv(qsr_pool *p, const qsr_qmatrix *w, const float *x, int T, float *y) {
  struct lin_job j = { w, x, T, y, NULL };
  int tasks = (int)((w->rows + GEMV_ROWS - 1) / GEMV_ROWS);
  pthread_once(&lut_once, lut_init);
  if (w->fmt == QSR_WFMT_FP16 || w->fmt == QSR_WFMT_BF16 || w->fmt == QSR_WFMT_FP8) {
    qsr_pool_run(p, tasks, gemv_plain_task, &j);
    return;
  }
  float *xsum = NULL;
  if (w->fmt == QSR_WFMT_INT || w->fmt == QSR_WFMT_INT_SYM) {
    uint32_t G = w->groups_per_row;
    xsum = calloc((size_t)T * G, sizeof *xsum);
    QSR_ASSERT(xsum);
    for (int t = 0; t < T; t++)
      for (uint32_t c = 0; c < w->cols; c++) xsum[(size_t)t * G + c / w->group_codes] += x[(size_t)t * w->cols + c];
  }
  j.xsum = xsum;
  qsr_pool_run(p, tasks, gemv_packed_task, &j);
  free(xsum);
}

/* y[t][r] += w[r][0..kn) . x[t][0..kn) for 4 rows x 2 tokens: 8 vector
** accumulators and 6 loads per step fit in 16 vector registers. */
QSR_INLINE void block4x2(const float *w, size_t ldw, const float *x, size_t ldx, int kn, float *y, size_t ldy) {
  qsr_v8f acc[4][2];
  memset(acc, 0, sizeof acc);
  int k = 0;
  for (; k + 8 <= kn; k += 8) {
    qsr_v8f wv[4], xv[2];
    for (int a = 0; a < 4; a++) memcpy(&wv[a], w + a * ldw + k, sizeof wv[a]);
    for (int b = 0; b < 2; b++) memcpy(&xv[b], x + b * ldx + k, sizeof xv[b]);
    for (int a = 0; a < 4; a++)
      for (int b = 0; b < 2; b++) acc[a][b] += wv[a] * xv[b];
  }
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 2; b++) {
      qsr_v8f v = acc[a][b];
      float sum = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
      for (int kk = k; kk < kn; kk++) sum += w[a * ldw + kk] * x[b * ldx + kk];
      y[b * ldy + a] += sum;
    }
}

static void gemm_task(void *arg, int task, int worker) {
  (void)worker;
  const struct lin_job *j = arg;
  const qsr_qmatrix *w = j->w;
  uint32_t r0 = (uint32_t)task * GEMM_ROWS, nr = w->rows - r0 < GEMM_ROWS ? w->rows - r0 : GEMM_ROWS;
  size_t C = w->cols, ldy = w->rows;
  float *tile = malloc((size_t)GEMM_ROWS * C * sizeof *tile);
  QSR_ASSERT(tile);
  for (uint32_t r = 0; r < nr; r++) qsr_cpu_dequant_row(w, r0 + r, tile + (size_t)r * C);
  for (int t = 0; t < j->T; t++)
    for (uint32_t r = 0; r < nr; r++) j->y[(size_t)t * ldy + r0 + r] = 0;
  for (uint32_t k0 = 0; k0 < C; k0 += GEMM_KC) {
    int kn = C - k0 < GEMM_KC ? (int)(C - k0) : GEMM_KC;
    int t = 0;
    for (; t + 2 <= j->T; t += 2) {
      const float *xt = j->x + (size_t)t * C + k0;
      float *yt = j->y + (size_t)t * ldy + r0;
      uint32_t r = 0;
      for (; r + 4 <= nr; r += 4) block4x2(tile + (size_t)r * C + k0, C, xt, C, kn, yt + r, ldy);
      for (; r < nr; r++)
        for (int b = 0; b < 2; b++) yt[(size_t)b * ldy + r] += dot(tile + (size_t)r * C + k0, xt + (size_t)b * C, kn);
    }
    for (; t < j->T; t++) {
      const float *xt = j->x + (size_t)t * C + k0;
      float *yt = j->y + (size_t)t * ldy + r0;
      for (uint32_t r = 0; r < nr; r++) yt[r] += dot(tile + (size_t)r * C + k0, xt, kn);
    }
  }
  free(tile);
}

void qsr_cpu_gemm(qsr_pool *p, const qsr_qmatrix *w, const float *x, int T, float *y) {
  struct lin_job j = { w, x, T, y, NULL };
  qsr_pool_run(p, (int)((w->rows + GEMM_ROWS - 1) / GEMM_ROWS), gemm_task, &j);
}

void qsr_cpu_linear(qsr_pool *p, const qsr_qmatrix *w, const float *x, int T, float *y) {
  if (qsr_kvariant_linear(w->fmt, T) < QSR_KVAR_GEMM_FP16) qsr_cpu_gemv(p, w, x, T, y);
  else qsr_cpu_gemm(p, w, x, T, y);
}
