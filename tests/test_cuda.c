/*
** test_cuda.c -- the CUDA kernels (kernels/cuda) against the C kernels
** (kernels/cpu) on the same inputs. Without nvcc, or with no GPU, one test
** says so on stderr and passes.
**
** Inputs are rounded to fp16 before either side sees them (the C side gets
** the fp32 values of those fp16 numbers), weights and KV caches are the same
** bytes (quant.h builds them, the device gets a copy), and every element is
** decoded by qcode.h on both sides: what remains is accumulation order, the
** device's one fp16 rounding of each output, and libm ulps. Tolerances, per
** element, from those sources (u = 2^-24, the fp32 unit roundoff):
**   OUT16(v)    2^-11 |v| + 2^-25: one round-to-nearest into fp16 (half an ulp,
**               relative in the normal range, absolute below 2^-14)
**   ACC(n, S)   2 (n + 2) u S: a sum of n products of absolute sum S, computed
**               in fp32 in any order, has error at most about (n + 1) u S
**               (Higham's gamma_n); two sides, each within it
**   W16(S, X)   2^-11 S + 2^-25 X: the gemm kernels round each dequantised
**               weight to fp16 before the tensor cores (S = sum |w x|,
**               X = sum |x|); the gemv kernels do not
**   int weights are summed as s * sum(c x) + m * sum(x) on the device: their
**   S is sum (|w| + 2 max|w|) |x| (|s c| <= |w| + |m|, |m| <= max |w|)
** Attention: top-k selection is discrete, so the selection tests use
** "dyadic" data -- q in quarters, keys whose codes decode exactly to small
** multiples of 2^-5 or 2^-2, a power-of-two scale -- where every score and
** page bound is exact in fp32 on both sides: the same keys are picked, ties
** included. Random data runs the dense and local heads. With scores exact or
** off by ds, a softmax weight p_j is off by at most 2 ds + 6 u (expf: 2 ulp
** CUDA, 1 glibc) + the sum's m u, so out = sum p v / sum p moves by at most
** 2 vmax (2 ds + 8 u + 2 m u) -- plus OUT16.
** MoE: the router is run on dyadic inputs (exact logits) so both plans must
** be identical; the expert FFN bound follows the errors of gate/up (ACC,
** W16 in gemm mode), through silu (|silu'| <= 1.1) and the fp16 rounding of
** the intermediate, into down, into y.
*/
#include "tests/test.h"

#include <stdio.h>

#ifdef QSR_HAVE_CUDA

#include "kernels/cpu/cpu.h"
#include "kernels/cuda/qsr_cuda.h"
#include "kernels/qcode.h"
#include "kernels/quant.h"
#include "kernels/variants.h"
#include "util/err.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U24 5.9604644775390625e-8 /* 2^-24 */
#define OUT16(v) (fabs(v) * 4.8828125e-4 + 2.98023223876953125e-8)
#define ACC(n, S) (2.0 * ((double)(n) + 2.0) * U24 * (S))
#define W16(S, X) (4.8828125e-4 * (S) + 2.98023223876953125e-8 * (X))

/* Runs a qsr_cuda call that takes `&e_` as its err; fails the test (fatally)
** with the message on error. */
#define CK(call)                                                                  \
  do {                                                                            \
    char *e_ = NULL;                                                              \
    int rc_ = (call);                                                             \
    if (rc_ != QSR_OK) fprintf(stderr, "\n  %s\n  -> %s\n", #call, e_ ? e_ : "?"); \
    free(e_);                                                                     \
    CU_ASSERT_EQUAL_FATAL(rc_, QSR_OK);                                           \
  } while (0)

static gsl_rng *rng(unsigned long seed) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  return r;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  return p;
}

/* n gaussians rounded to fp16: values in f (the C side), bits in h. */
static void gauss16(gsl_rng *r, size_t n, double sd, float *f, uint16_t *h) {
  for (size_t i = 0; i < n; i++) {
    uint16_t b = qsr_f32_to_f16((float)gsl_ran_gaussian(r, sd));
    if (h) h[i] = b;
    f[i] = qsr_f16_to_f32(b);
  }
}

static void to16(const float *f, size_t n, uint16_t *h) {
  for (size_t i = 0; i < n; i++) h[i] = qsr_f32_to_f16(f[i]);
}

static void *dnew(size_t n) {
  void *p = NULL;
  CK(qsr_cuda_malloc(&p, n ? n : 1, &e_));
  return p;
}

static void *dcopy(const void *h, size_t n) {
  void *p = dnew(n);
  CK(qsr_cuda_h2d(p, h, n, &e_));
  return p;
}

/* fp16 device buffer of n values, filled with nan so unwritten outputs fail. */
static uint16_t *dpoison16(size_t n) {
  uint16_t *p = dnew(n * 2);
  CK(qsr_cuda_memset(p, 0xff, n * 2, &e_));
  return p;
}

/* Device fp16 buffer back as floats. */
static float *back16(const uint16_t *d, size_t n) {
  uint16_t *h = xmalloc(n * 2);
  float *f = xmalloc(n * sizeof *f);
  CK(qsr_cuda_d2h(h, d, n * 2, &e_));
  for (size_t i = 0; i < n; i++) f[i] = qsr_f16_to_f32(h[i]);
  free(h);
  return f;
}

/* Elements with |got - ref| > tol (nan fails); the first few are printed. */
static int check_close(const char *what, const float *got, const float *ref, const double *tol,
                       size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - ref[i]);
    if (!(d <= tol[i])) {
      if (bad < 5)
        fprintf(stderr, "\n  %s: [%zu] got %.9g, C %.9g, |diff| %.3g > tol %.3g", what, i,
                got[i], ref[i], d, tol[i]);
      bad++;
    }
  }
  if (bad) fprintf(stderr, "\n  %s: %d of %zu outside tolerance\n", what, bad, n);
  CU_ASSERT_EQUAL(bad, 0);
  return bad;
}

/* ---- runtime -------------------------------------------------------------------- */

static void test_runtime(void) {
  char name[256];
  CU_ASSERT(qsr_cuda_device_count() > 0);
  CU_ASSERT_EQUAL(qsr_cuda_device_name(0, name, sizeof name), QSR_OK);
  CU_ASSERT(name[0] != 0);
  CU_ASSERT_EQUAL(qsr_cuda_device_name(-1, name, sizeof name), QSR_ERR_CUDA);
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_cuda_set_device(1 << 20, &err), QSR_ERR_CUDA);
  CU_ASSERT(err && strstr(err, "cudaSetDevice") != NULL);
  free(err);
  err = NULL;
  CU_ASSERT_EQUAL(qsr_cuda_set_device(0, &err), QSR_OK);
  /* shape errors are QSR_ERR_CONFIG, with the entry's name */
  qsr_qmatrix w;
  CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&w, QSR_WFMT_INT, 4, 32, 8, 64, NULL), QSR_OK);
  qsr_qmatrix dw;
  CK(qsr_cuda_qmatrix_upload(&w, &dw, &e_));
  uint16_t *x = dnew(64 * 2), *y = dnew(8 * 2);
  CU_ASSERT_EQUAL(qsr_cuda_gemv(&dw, x, 0, y, NULL, &err), QSR_ERR_CONFIG);
  CU_ASSERT(err && strstr(err, "qsr_cuda_gemv") != NULL);
  free(err);
  err = NULL;
  CU_ASSERT_EQUAL(qsr_cuda_gemm_cublas_f16(&dw, x, 1, y, NULL, &err), QSR_ERR_CONFIG);
  free(err);
  CK(qsr_cuda_sync(&e_));
  qsr_cuda_free(x);
  qsr_cuda_free(y);
  qsr_cuda_qmatrix_free(&dw);
  qsr_qmatrix_free(&w);
}

/* ---- linear ----------------------------------------------------------------------- */

enum { LIN_GEMV, LIN_GEMM, LIN_LINEAR, LIN_CUBLAS };

/* One weight format: every T of Ts through one entry, against qsr_cpu_gemv or
** qsr_cpu_gemm. Returns the number of bad elements. */
static int lin_case(gsl_rng *r, int fmt, int bits, int group, uint32_t rows, uint32_t cols,
                    const int *Ts, int nT, int which) {
  qsr_qmatrix w, dw;
  char what[128];
  CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&w, fmt, bits, group, rows, cols, NULL), QSR_OK);
  float *wf = xmalloc((size_t)rows * cols * sizeof *wf), *dec = xmalloc((size_t)rows * cols * sizeof *dec);
  for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] = (float)gsl_ran_gaussian(r, 1.0);
  qsr_quantize(&w, wf);
  double *rmax = xmalloc(rows * sizeof *rmax);
  for (uint32_t i = 0; i < rows; i++) {
    qsr_dequantize_row(&w, i, dec + (size_t)i * cols);
    rmax[i] = 0;
    for (uint32_t c = 0; c < cols; c++) rmax[i] = fmax(rmax[i], fabs(dec[(size_t)i * cols + c]));
  }
  CK(qsr_cuda_qmatrix_upload(&w, &dw, &e_));
  int Tmax = 0, bad = 0;
  for (int i = 0; i < nT; i++) Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
  float *x = xmalloc((size_t)Tmax * cols * sizeof *x), *ref = xmalloc((size_t)Tmax * rows * sizeof *ref);
  uint16_t *xh = xmalloc((size_t)Tmax * cols * 2);
  double *tol = xmalloc((size_t)Tmax * rows * sizeof *tol);
  gauss16(r, (size_t)Tmax * cols, 1.0, x, xh);
  uint16_t *dx = dcopy(xh, (size_t)Tmax * cols * 2);
  for (int i = 0; i < nT; i++) {
    const int T = Ts[i];
    const int gemm = which == LIN_GEMM || which == LIN_CUBLAS ||
                     (which == LIN_LINEAR && qsr_kvariant_linear(fmt, T) >= QSR_KVAR_GEMM_FP16);
    uint16_t *dy = dpoison16((size_t)T * rows);
    switch (which) {
    case LIN_GEMV: CK(qsr_cuda_gemv(&dw, dx, T, dy, NULL, &e_)); break;
    case LIN_GEMM: CK(qsr_cuda_gemm(&dw, dx, T, dy, NULL, &e_)); break;
    case LIN_LINEAR: CK(qsr_cuda_linear(&dw, dx, T, dy, NULL, &e_)); break;
    default: CK(qsr_cuda_gemm_cublas_f16(&dw, dx, T, dy, NULL, &e_)); break;
    }
    float *got = back16(dy, (size_t)T * rows);
    if (gemm) qsr_cpu_gemm(NULL, &w, x, T, ref);
    else qsr_cpu_gemv(NULL, &w, x, T, ref);
    for (int t = 0; t < T; t++)
      for (uint32_t o = 0; o < rows; o++) {
        double S = 0, X = 0;
        for (uint32_t c = 0; c < cols; c++) {
          double xv = fabs(x[(size_t)t * cols + c]);
          S += fabs(dec[(size_t)o * cols + c]) * xv;
          X += xv;
        }
        double Sf = S + (fmt == QSR_WFMT_INT ? 2 * rmax[o] * X : 0);
        double acc = ACC(cols, Sf) + (gemm && which != LIN_CUBLAS ? W16(S, X) : 0);
        tol[(size_t)t * rows + o] = OUT16(fabs(ref[(size_t)t * rows + o]) + acc) + acc;
      }
    snprintf(what, sizeof what, "%s fmt %d bits %d group %d %ux%u T %d",
             which == LIN_GEMV ? "gemv" : which == LIN_GEMM ? "gemm" : which == LIN_LINEAR ? "linear" : "cublas",
             fmt, bits, group, rows, cols, T);
    bad += check_close(what, got, ref, tol, (size_t)T * rows);
    free(got);
    qsr_cuda_free(dy);
  }
  qsr_cuda_free(dx);
  qsr_cuda_qmatrix_free(&dw);
  qsr_qmatrix_free(&w);
  free(wf);
  free(dec);
  free(rmax);
  free(x);
  free(xh);
  free(ref);
  free(tol);
  return bad;
}

static const int packed_fmts[] = { QSR_WFMT_INT, QSR_WFMT_INT_SYM, QSR_WFMT_LOG, QSR_WFMT_LUT };
static const int packed_bits[] = { 2, 3, 4, 5, 6, 8 };
static const int groups[] = { 32, 128, 0 };

/* Every format and width: 136 rows (not a multiple of any row tile), 520
** columns (16 blocks + 8: a partial block and a partial group 128). */
static void lin_all(int which, const int *Ts, int nT) {
  gsl_rng *r = rng(which == LIN_GEMV ? 11 : 12);
  lin_case(r, QSR_WFMT_FP16, 16, 0, 136, 520, Ts, nT, which);
  lin_case(r, QSR_WFMT_BF16, 16, 0, 136, 520, Ts, nT, which);
  lin_case(r, QSR_WFMT_FP8, 8, 0, 136, 520, Ts, nT, which);
  for (size_t f = 0; f < sizeof packed_fmts / sizeof *packed_fmts; f++)
    for (size_t b = 0; b < sizeof packed_bits / sizeof *packed_bits; b++)
      for (size_t g = 0; g < sizeof groups / sizeof *groups; g++)
        lin_case(r, packed_fmts[f], packed_bits[b], groups[g], 136, 520, Ts, nT, which);
  /* 100 columns: rows not 16-byte aligned (fp16, bf16, fp8) and x read element-wise */
  lin_case(r, QSR_WFMT_FP16, 16, 0, 40, 100, Ts, nT, which);
  lin_case(r, QSR_WFMT_BF16, 16, 0, 40, 100, Ts, nT, which);
  lin_case(r, QSR_WFMT_FP8, 8, 0, 40, 100, Ts, nT, which);
  lin_case(r, QSR_WFMT_INT, 4, 32, 40, 100, Ts, nT, which);
  lin_case(r, QSR_WFMT_LUT, 3, 0, 40, 100, Ts, nT, which);
  /* a larger one: many CTAs, several blocks per lane */
  lin_case(r, QSR_WFMT_INT, 4, 128, 1024, 4096, Ts, nT, which);
  gsl_rng_free(r);
}

static void test_gemv(void) {
  static const int Ts[] = { 1, 3, 4, 9, 16 };
  lin_all(LIN_GEMV, Ts, 5);
}

static void test_gemm(void) {
  static const int Ts[] = { 17, 64, 200, 1 };
  lin_all(LIN_GEMM, Ts, 4);
}

static void test_linear_cublas(void) {
  static const int Ts[] = { 16, 17 }, Tc[] = { 1, 64, 200 };
  gsl_rng *r = rng(13);
  lin_case(r, QSR_WFMT_INT_SYM, 4, 32, 136, 520, Ts, 2, LIN_LINEAR);
  lin_case(r, QSR_WFMT_FP16, 16, 0, 136, 520, Tc, 3, LIN_CUBLAS);
  lin_case(r, QSR_WFMT_FP16, 16, 0, 256, 4096, Tc, 3, LIN_CUBLAS);
  gsl_rng_free(r);
  qsr_cuda_release();
}

/* ---- KV cache append ------------------------------------------------------------------ */

static void kv_append_case(int kvfmt, int page) {
  const int KV = 2, d = 64, max = 100, n1 = 37, n2 = 20;
  gsl_rng *r = rng(21 + (unsigned)kvfmt);
  qsr_kvcache hc, dc, back;
  CU_ASSERT_EQUAL_FATAL(qsr_kvcache_alloc(&hc, kvfmt, KV, d, max, page, NULL), QSR_OK);
  CU_ASSERT_EQUAL_FATAL(qsr_kvcache_alloc(&back, kvfmt, KV, d, max, page, NULL), QSR_OK);
  CK(qsr_cuda_kvcache_upload(&hc, &dc, &e_)); /* empty */
  const size_t nk = (size_t)(n1 + n2) * KV * d;
  float *k = xmalloc(nk * sizeof *k), *v = xmalloc(nk * sizeof *v);
  uint16_t *kh = xmalloc(nk * 2), *vh = xmalloc(nk * 2);
  gauss16(r, nk, 1.0, k, kh);
  gauss16(r, nk, 2.0, v, vh);
  for (size_t i = 0; i < nk; i += 97) k[i] = v[i] = 0, kh[i] = vh[i] = 0; /* zeros too */
  uint16_t *dk = dcopy(kh, nk * 2), *dv = dcopy(vh, nk * 2);
  CU_ASSERT_EQUAL(qsr_kvcache_append(&hc, n1, k, v), 0);
  CU_ASSERT_EQUAL(qsr_kvcache_append(&hc, n2, k + (size_t)n1 * KV * d, v + (size_t)n1 * KV * d), 0);
  CK(qsr_cuda_kvcache_append(&dc, n1, dk, dv, NULL, &e_));
  CK(qsr_cuda_kvcache_append(&dc, n2, dk + (size_t)n1 * KV * d, dv + (size_t)n1 * KV * d, NULL, &e_));
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_cuda_kvcache_append(&dc, max, dk, dv, NULL, &err), QSR_ERR_CONFIG);
  free(err);
  CU_ASSERT_EQUAL(dc.len, n1 + n2);
  CK(qsr_cuda_kvcache_download(&dc, &back, &e_));
  CU_ASSERT_EQUAL(back.len, hc.len);
  int bad = 0;
  for (int h = 0; h < KV; h++) {
    size_t off = (size_t)h * max * hc.vec_bytes, len = (size_t)(n1 + n2) * hc.vec_bytes;
    bad += memcmp(hc.k + off, back.k + off, len) != 0;
    bad += memcmp(hc.v + off, back.v + off, len) != 0;
  }
  if (page) {
    size_t ns = (size_t)KV * qsr_kvcache_pages(&hc) * d;
    for (size_t i = 0; i < ns; i++) {
      int pg = (int)((i / d) % qsr_kvcache_pages(&hc));
      if (pg * page >= n1 + n2) continue; /* untouched pages */
      bad += hc.kmin[i] != back.kmin[i] || hc.kmax[i] != back.kmax[i];
    }
  }
  if (bad) fprintf(stderr, "\n  kv append fmt %d page %d: %d mismatches\n", kvfmt, page, bad);
  CU_ASSERT_EQUAL(bad, 0);
  qsr_cuda_free(dk);
  qsr_cuda_free(dv);
  qsr_cuda_kvcache_free(&dc);
  qsr_kvcache_free(&hc);
  qsr_kvcache_free(&back);
  free(k);
  free(v);
  free(kh);
  free(vh);
  gsl_rng_free(r);
}

static void test_kv_append(void) {
  for (int f = 0; f < QSR_KVFMT_COUNT; f++) {
    kv_append_case(f, 0);
    kv_append_case(f, 16);
  }
}

/* ---- attention ---------------------------------------------------------------------------- */

/* Keys whose codes are exact: values small multiples of 2^-5 (fp16, int8: one
** value per vector at +-127/32 fixes the scale at 1/32) or -2 + c/4 (int4:
** every block holds c = 0 and 15, so min -2, scale 1/4). */
static void dyadic_keys(gsl_rng *r, int kvfmt, size_t nvec, int d, float *k) {
  for (size_t i = 0; i < nvec; i++) {
    float *x = k + i * d;
    for (int e = 0; e < d; e++) {
      if (kvfmt == QSR_KVFMT_INT4) {
        int c = (int)gsl_rng_uniform_int(r, 16);
        if (e % 32 == 0) c = 0;
        if (e % 32 == 1) c = 15;
        x[e] = -2.0f + 0.25f * (float)c;
      } else {
        x[e] = (float)((int)gsl_rng_uniform_int(r, 255) - 127) / 32.0f;
      }
    }
    if (kvfmt != QSR_KVFMT_INT4) x[gsl_rng_uniform_int(r, (unsigned long)d)] = (i & 1) ? 127.0f / 32 : -127.0f / 32;
  }
}

struct attn_case {
  int kvfmt, H, KV, d, len, T;
  const uint8_t *types;
  int window, topk, paged, page, sw;
  int dyadic;
};

static void attn_run(const struct attn_case *ac, unsigned long seed) {
  const int H = ac->H, KV = ac->KV, d = ac->d, len = ac->len, T = ac->T, max = len + 7;
  gsl_rng *r = rng(seed);
  qsr_kvcache hc, dc;
  CU_ASSERT_EQUAL_FATAL(qsr_kvcache_alloc(&hc, ac->kvfmt, KV, d, max, ac->page, NULL), QSR_OK);
  const size_t nk = (size_t)len * KV * d, nq = (size_t)T * H * d;
  float *k = xmalloc(nk * sizeof *k), *v = xmalloc(nk * sizeof *v), *q = xmalloc(nq * sizeof *q);
  uint16_t *qh = xmalloc(nq * 2);
  gauss16(r, nk, 1.0, v, NULL);
  if (ac->dyadic) {
    dyadic_keys(r, ac->kvfmt, (size_t)len * KV, d, k);
    for (size_t i = 0; i < nq; i++) q[i] = (float)((int)gsl_rng_uniform_int(r, 9) - 4) / 4.0f;
    to16(q, nq, qh);
  } else {
    gauss16(r, nk, 1.0, k, NULL);
    gauss16(r, nq, 1.0, q, qh);
  }
  CU_ASSERT_EQUAL(qsr_kvcache_append(&hc, len, k, v), 0);
  CK(qsr_cuda_kvcache_upload(&hc, &dc, &e_));
  qsr_attn_cfg cfg = { H, KV, d, ac->types, ac->window, ac->topk, ac->paged, ac->sw,
                       ac->dyadic ? 0.125f : 1.0f / sqrtf((float)d) };

  float *ref = xmalloc(nq * sizeof *ref);
  float *cs = xmalloc(qsr_cpu_attn_scratch(NULL, &cfg, max) * sizeof *cs);
  if (T == 1) qsr_cpu_attn_decode(NULL, &cfg, &hc, q, ref, cs);
  else qsr_cpu_attn_prefill(NULL, &cfg, &hc, T, q, ref, cs);

  uint64_t sb = qsr_cuda_attn_scratch_bytes(&cfg, &dc, T);
  void *scratch = dnew(sb);
  uint16_t *dq = dcopy(qh, nq * 2), *dout = dpoison16(nq);
  if (T == 1) CK(qsr_cuda_attn_decode(&cfg, &dc, dq, dout, scratch, sb, NULL, &e_));
  else CK(qsr_cuda_attn_prefill(&cfg, &dc, T, dq, dout, scratch, sb, NULL, &e_));
  float *got = back16(dout, nq);

  /* tolerance (file header): decoded keys and values from the host cache */
  float *kd = xmalloc((size_t)KV * len * d * sizeof *kd);
  double vmax = 0;
  float *vv = xmalloc((size_t)d * sizeof *vv);
  for (int h = 0; h < KV; h++)
    for (int j = 0; j < len; j++) {
      qsr_kvcache_get(&hc, 0, h, j, kd + ((size_t)h * len + j) * d);
      qsr_kvcache_get(&hc, 1, h, j, vv);
      for (int e = 0; e < d; e++) vmax = fmax(vmax, fabs(vv[e]));
    }
  double *tol = xmalloc(nq * sizeof *tol);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      const int pos = len - T + t, kvh = h / (H / KV);
      const float *qv = q + ((size_t)t * H + h) * d;
      double ds = 0;
      if (!ac->dyadic)
        for (int j = 0; j <= pos; j++) {
          double s = 0;
          for (int e = 0; e < d; e++) s += fabs((double)qv[e] * kd[((size_t)kvh * len + j) * d + e]);
          ds = fmax(ds, ACC(d, s) * cfg.scale);
        }
      const double w = 2 * vmax * (2 * ds + 8 * U24 + 2 * (pos + 1) * U24);
      for (int e = 0; e < d; e++) {
        size_t i = ((size_t)t * H + h) * d + e;
        tol[i] = OUT16(fabs(ref[i]) + w) + w;
      }
    }
  char what[160];
  snprintf(what, sizeof what, "attn kv %d H %d/%d d %d len %d T %d win %d topk %d paged %d page %d sw %d %s",
           ac->kvfmt, H, KV, d, len, T, ac->window, ac->topk, ac->paged, ac->page, ac->sw,
           ac->dyadic ? "dyadic" : "random");
  check_close(what, got, ref, tol, nq);

  qsr_cuda_free(scratch);
  qsr_cuda_free(dq);
  qsr_cuda_free(dout);
  qsr_cuda_kvcache_free(&dc);
  qsr_kvcache_free(&hc);
  free(k);
  free(v);
  free(q);
  free(qh);
  free(ref);
  free(cs);
  free(got);
  free(kd);
  free(vv);
  free(tol);
  gsl_rng_free(r);
}

static const uint8_t mix8[8] = { QSR_HEAD_DENSE, QSR_HEAD_LOCAL, QSR_HEAD_TOPK, QSR_HEAD_TOPK,
                                 QSR_HEAD_LOCAL, QSR_HEAD_DENSE, QSR_HEAD_TOPK, QSR_HEAD_LOCAL };
static const uint8_t mix4[4] = { QSR_HEAD_TOPK, QSR_HEAD_LOCAL, QSR_HEAD_DENSE, QSR_HEAD_TOPK };
static const uint8_t dl8[8] = { 0, 2, 0, 2, 2, 0, 2, 0 };

static void test_attn_decode(void) {
  for (int f = 0; f < QSR_KVFMT_COUNT; f++) {
    const struct attn_case cs[] = {
      /* kv   H  KV  d    len  T  types  win topk paged page sw  dyadic */
      { f, 8, 2, 64, 300, 1, mix8, 40, 48, 0, 16, 0, 1 },     /* GQA 4:1, top-k exact */
      { f, 8, 2, 64, 300, 1, mix8, 40, 40, 1, 16, 0, 1 },     /* paged: 3 pages + own */
      { f, 4, 4, 96, 1000, 1, mix4, 300, 100, 1, 32, 600, 1 }, /* d 96: lane groups of 3 of 4 */
      { f, 4, 4, 96, 1000, 1, mix4, 300, 100, 0, 32, 600, 1 }, /* 1000 keys: 4 splits */
      { f, 8, 2, 64, 1, 1, mix8, 40, 48, 1, 16, 0, 1 },       /* one key */
      { f, 4, 1, 128, 4097, 1, mix4, 2000, 700, 0, 64, 0, 1 }, /* 17 splits, d 128 */
      { f, 8, 2, 64, 777, 1, dl8, 100, 0, 0, 0, 0, 0 },       /* random data */
      { f, 8, 4, 32, 513, 1, NULL, 0, 0, 0, 0, 256, 0 },      /* all dense, model window */
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) attn_run(&cs[i], 100 + 10 * f + i);
  }
}

static void test_attn_prefill(void) {
  for (int f = 0; f < QSR_KVFMT_COUNT; f++) {
    const struct attn_case cs[] = {
      { f, 8, 2, 64, 200, 77, mix8, 30, 24, 0, 16, 0, 1 },
      { f, 8, 2, 64, 150, 150, mix8, 30, 20, 1, 8, 64, 1 },  /* whole prompt, 10 passes */
      { f, 4, 1, 128, 130, 33, mix4, 50, 16, 1, 16, 0, 1 },
      { f, 4, 2, 96, 90, 90, mix4, 17, 9, 0, 8, 40, 1 },
      { f, 8, 2, 32, 90, 90, dl8, 20, 0, 0, 0, 40, 0 },      /* random: dense + local */
      { f, 8, 8, 64, 300, 131, dl8, 64, 0, 0, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) attn_run(&cs[i], 200 + 10 * f + i);
  }
}

/* ---- MoE ---------------------------------------------------------------------------------- */

/* Random expert weights in one format; decoded copies in dec[e]. */
static void moe_weights(gsl_rng *r, int E, int fmt, int bits, int group, uint32_t rows,
                        uint32_t cols, qsr_qmatrix *hw, qsr_qmatrix *dw, float **dec) {
  float *wf = xmalloc((size_t)rows * cols * sizeof *wf);
  for (int e = 0; e < E; e++) {
    CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&hw[e], fmt, bits, group, rows, cols, NULL), QSR_OK);
    for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] = (float)gsl_ran_gaussian(r, 0.1);
    qsr_quantize(&hw[e], wf);
    CK(qsr_cuda_qmatrix_upload(&hw[e], &dw[e], &e_));
    dec[e] = xmalloc((size_t)rows * cols * sizeof *dec[e]);
    for (uint32_t i = 0; i < rows; i++) qsr_dequantize_row(&hw[e], i, dec[e] + (size_t)i * cols);
  }
  free(wf);
}

static double silu_d(double g) { return g / (1 + exp(-g)); }
static double gelu_d(double x) {
  return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static void moe_run(int E, int k, int T, int capacity, int hidden, int ffn, int use_gate, int fmt,
                    int bits, int group, unsigned long seed) {
  gsl_rng *r = rng(seed);
  char what[160];
  snprintf(what, sizeof what, "moe E %d k %d T %d cap %d %dx%d gate %d fmt %d/%d/%d", E, k, T,
           capacity, hidden, ffn, use_gate, fmt, bits, group);
  /* router on dyadic data: exact logits, so the plans must agree exactly */
  qsr_qmatrix wg, dwg;
  CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&wg, QSR_WFMT_FP16, 16, 0, E, hidden, NULL), QSR_OK);
  float *wgf = xmalloc((size_t)E * hidden * sizeof *wgf);
  for (size_t i = 0; i < (size_t)E * hidden; i++)
    wgf[i] = (float)((int)gsl_rng_uniform_int(r, 65) - 32) / 64.0f;
  qsr_quantize(&wg, wgf);
  CK(qsr_cuda_qmatrix_upload(&wg, &dwg, &e_));
  const size_t nx = (size_t)T * hidden;
  float *x = xmalloc(nx * sizeof *x);
  uint16_t *xh = xmalloc(nx * 2);
  for (size_t i = 0; i < nx; i++) x[i] = (float)((int)gsl_rng_uniform_int(r, 17) - 8) / 8.0f;
  to16(x, nx, xh);
  uint16_t *dx = dcopy(xh, nx * 2);

  qsr_moe_plan pc, pd, pb;
  CU_ASSERT_EQUAL_FATAL(qsr_moe_plan_alloc(&pc, T, E, k, NULL), QSR_OK);
  CU_ASSERT_EQUAL_FATAL(qsr_moe_plan_alloc(&pb, T, E, k, NULL), QSR_OK);
  CK(qsr_cuda_moe_plan_alloc(&pd, T, E, k, &e_));
  float *logits = xmalloc((size_t)T * E * sizeof *logits);
  qsr_cpu_moe_router(NULL, &wg, x, T, k, capacity, &pc, logits);
  uint64_t rsb = qsr_cuda_moe_router_scratch_bytes(T, E, k);
  void *rs = dnew(rsb);
  CK(qsr_cuda_moe_router(&dwg, dx, T, k, capacity, &pd, rs, rsb, NULL, &e_));
  CK(qsr_cuda_moe_plan_download(&pd, &pb, &e_));
  int bad = 0;
  bad += pb.dropped != pc.dropped;
  for (int i = 0; i < T * k; i++) bad += pb.choice[i] != pc.choice[i];
  for (int e = 0; e <= E; e++) bad += pb.offset[e] != pc.offset[e];
  /* weights p_e / sum of the k: expf is 2 ulp on the device, 1 in glibc, and
  ** each side sums E and k terms: (32 + 4E) u relative covers it */
  for (int i = 0; i < pc.offset[E] && !bad; i++) {
    bad += pb.token[i] != pc.token[i];
    bad += !(fabs(pb.weight[i] - pc.weight[i]) <= (32.0 + 4 * E) * U24 * fabs(pc.weight[i]) + 1e-9);
  }
  if (bad) fprintf(stderr, "\n  %s: router plans differ (%d), dropped %d vs %d\n", what, bad, pb.dropped, pc.dropped);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(pb.capacity, capacity);

  /* experts: gate/up (ffn x hidden), down (hidden x ffn) */
  qsr_qmatrix *hg = xmalloc(E * sizeof *hg), *hu = xmalloc(E * sizeof *hu), *hd = xmalloc(E * sizeof *hd);
  qsr_qmatrix *dg = xmalloc(E * sizeof *dg), *du = xmalloc(E * sizeof *du), *dd = xmalloc(E * sizeof *dd);
  float **gdec = xmalloc(E * sizeof *gdec), **udec = xmalloc(E * sizeof *udec), **ddec = xmalloc(E * sizeof *ddec);
  if (use_gate) moe_weights(r, E, fmt, bits, group, ffn, hidden, hg, dg, gdec);
  moe_weights(r, E, fmt, bits, group, ffn, hidden, hu, du, udec);
  moe_weights(r, E, fmt, bits, group, hidden, ffn, hd, dd, ddec);
  float *y0 = xmalloc(nx * sizeof *y0), *ref = xmalloc(nx * sizeof *ref);
  uint16_t *y0h = xmalloc(nx * 2);
  gauss16(r, nx, 1.0, y0, y0h);
  memcpy(ref, y0, nx * sizeof *ref);
  float *cs = xmalloc(qsr_cpu_moe_scratch(&pc, ffn, hidden) * sizeof *cs);
  qsr_cpu_moe_experts(NULL, use_gate ? hg : NULL, hu, hd, &pc, x, ref, cs);
  uint64_t msb = qsr_cuda_moe_scratch_bytes(&pd, ffn, hidden);
  void *ms = dnew(msb);
  uint16_t *dy = dcopy(y0h, nx * 2);
  CK(qsr_cuda_moe_experts(use_gate ? dg : NULL, du, dd, &pd, dx, dy, ms, msb, NULL, &e_));
  float *got = back16(dy, nx);

  /* tolerance: follow each kept pair's errors (file header) */
  const int gemm = T * k > 16 * E;
  double *tol = xmalloc(nx * sizeof *tol), *eh = xmalloc(ffn * sizeof *eh), *h = xmalloc(ffn * sizeof *h);
  for (size_t i = 0; i < nx; i++) tol[i] = 0;
  double *mag = xmalloc(nx * sizeof *mag);
  for (size_t i = 0; i < nx; i++) mag[i] = fabs(y0[i]);
  for (int e = 0; e < E; e++)
    for (int i = pc.offset[e]; i < pc.offset[e + 1]; i++) {
      const int t = pc.token[i];
      const double wt = pc.weight[i];
      const float *xt = x + (size_t)t * hidden;
      double X = 0, Hs = 0;
      for (int c = 0; c < hidden; c++) X += fabs(xt[c]);
      for (int f = 0; f < ffn; f++) {
        double u = 0, Su = 0, g = 0, Sg = 0, mu = 0, mg = 0;
        for (int c = 0; c < hidden; c++) {
          const double wu = udec[e][(size_t)f * hidden + c];
          u += wu * xt[c];
          Su += fabs(wu * xt[c]);
          mu = fmax(mu, fabs(wu));
          if (use_gate) {
            const double wgv = gdec[e][(size_t)f * hidden + c];
            g += wgv * xt[c];
            Sg += fabs(wgv * xt[c]);
            mg = fmax(mg, fabs(wgv));
          }
        }
        /* int weights: the factored sum's terms (header) */
        const double fi = fmt == QSR_WFMT_INT ? 2 * X : 0;
        double eu = ACC(hidden, Su + fi * mu) + (gemm ? W16(Su, X) : 0);
        double eg = ACC(hidden, Sg + fi * mg) + (gemm ? W16(Sg, X) : 0);
        h[f] = use_gate ? silu_d(g) * u : gelu_d(u);
        eh[f] = use_gate ? 1.1 * eg * (fabs(u) + eu) + fabs(silu_d(g)) * eu : 1.13 * eu;
        eh[f] += OUT16(fabs(h[f]) + eh[f]) + 16 * U24 * fabs(h[f]);
        Hs += fabs(h[f]);
      }
      for (int c = 0; c < hidden; c++) {
        double o = 0, So = 0, prop = 0, md = 0;
        for (int f = 0; f < ffn; f++) {
          const double wd = ddec[e][(size_t)c * ffn + f];
          o += wd * h[f];
          So += fabs(wd * h[f]);
          prop += fabs(wd) * eh[f];
          md = fmax(md, fabs(wd));
        }
        const double fi = fmt == QSR_WFMT_INT ? 2 * md * Hs : 0;
        double eo = prop + ACC(ffn, So + fi) + (gemm ? W16(So, Hs) : 0);
        size_t yi = (size_t)t * hidden + c;
        /* the plan weight itself: (32 + 4E) u, as checked above */
        tol[yi] += fabs(wt) * (eo + (32.0 + 4 * E) * U24 * (fabs(o) + eo));
        mag[yi] += fabs(wt * o);
      }
    }
  /* the fp32 sums y + sum w o, on each side */
  for (size_t i = 0; i < nx; i++) tol[i] += 2 * (k + 2) * U24 * mag[i] + OUT16(fabs(ref[i]) + tol[i]);
  check_close(what, got, ref, tol, nx);

  for (int e = 0; e < E; e++) {
    if (use_gate) {
      qsr_qmatrix_free(&hg[e]);
      qsr_cuda_qmatrix_free(&dg[e]);
      free(gdec[e]);
    }
    qsr_qmatrix_free(&hu[e]);
    qsr_cuda_qmatrix_free(&du[e]);
    free(udec[e]);
    qsr_qmatrix_free(&hd[e]);
    qsr_cuda_qmatrix_free(&dd[e]);
    free(ddec[e]);
  }
  free(hg); free(hu); free(hd); free(dg); free(du); free(dd);
  free(gdec); free(udec); free(ddec);
  qsr_cuda_free(ms);
  qsr_cuda_free(rs);
  qsr_cuda_free(dx);
  qsr_cuda_free(dy);
  qsr_cuda_qmatrix_free(&dwg);
  qsr_qmatrix_free(&wg);
  qsr_cuda_moe_plan_free(&pd);
  qsr_moe_plan_free(&pc);
  qsr_moe_plan_free(&pb);
  free(wgf); free(x); free(xh); free(logits); free(y0); free(y0h); free(ref); free(cs);
  free(got); free(tol); free(eh); free(h); free(mag);
  gsl_rng_free(r);
}

static void test_moe(void) {
  /*      E  k   T  cap  hid  ffn gate fmt                bits grp */
  moe_run(4, 2, 3, 0, 128, 96, 1, QSR_WFMT_INT, 4, 32, 31);         /* gemv, no drops */
  moe_run(4, 2, 40, 0, 128, 96, 1, QSR_WFMT_FP16, 16, 0, 32);       /* gemm: 20 per expert */
  moe_run(8, 2, 40, 6, 128, 96, 0, QSR_WFMT_INT, 4, 128, 33);       /* gelu, drops */
  moe_run(4, 1, 100, 30, 64, 128, 1, QSR_WFMT_INT_SYM, 8, 32, 34);  /* gemm, drops */
  moe_run(16, 4, 600, 0, 64, 64, 1, QSR_WFMT_LUT, 3, 32, 35);       /* 3 router chunks */
  moe_run(8, 2, 1, 0, 256, 128, 1, QSR_WFMT_FP8, 8, 0, 36);         /* decode */
}

/* ---- elementwise -------------------------------------------------------------------------- */

static void test_norms(void) {
  const int T = 5, n = 1000;
  gsl_rng *r = rng(41);
  const size_t N = (size_t)T * n;
  float *x = xmalloc(N * 4), *res = xmalloc(N * 4), *w = xmalloc(n * 4), *b = xmalloc(n * 4);
  uint16_t *xh = xmalloc(N * 2), *rh = xmalloc(N * 2);
  gauss16(r, N, 1.0, x, xh);
  gauss16(r, N, 3.0, res, rh);
  for (int i = 0; i < n; i++) {
    w[i] = (float)gsl_ran_gaussian(r, 1.0);
    b[i] = (float)gsl_ran_gaussian(r, 1.0);
  }
  uint16_t *dx = dcopy(xh, N * 2);
  float *dw = dcopy(w, n * 4), *db = dcopy(b, n * 4);
  float *ref = xmalloc(N * 4), *rref = xmalloc(N * 4);
  double *tol = xmalloc(N * sizeof *tol), *rtol = xmalloc(N * sizeof *rtol);
  for (int ln = 0; ln < 2; ln++)
    for (int with_res = 0; with_res < 2; with_res++) {
      memcpy(rref, res, N * 4);
      uint16_t *dres = with_res ? dcopy(rh, N * 2) : NULL, *dout = dpoison16(N);
      if (ln) {
        qsr_cpu_layernorm_add(x, with_res ? rref : NULL, w, b, 1e-5f, T, n, ref);
        CK(qsr_cuda_layernorm_add(dx, dres, dw, db, 1e-5f, T, n, dout, NULL, &e_));
      } else {
        qsr_cpu_rmsnorm_add(x, with_res ? rref : NULL, w, 1e-5f, T, n, ref);
        CK(qsr_cuda_rmsnorm_add(dx, dres, dw, 1e-5f, T, n, dout, NULL, &e_));
      }
      for (int t = 0; t < T; t++) {
        /* v = res + x is the same fp32 sum on both sides; the sums over the
        ** row are fp32 here, double there: r, mean relative n u */
        const float *src = with_res ? rref : x;
        double s = 0, sa = 0, ss = 0;
        for (int i = 0; i < n; i++) {
          s += src[(size_t)t * n + i];
          sa += fabs(src[(size_t)t * n + i]);
        }
        double mean = ln ? s / n : 0;
        for (int i = 0; i < n; i++) ss += (src[(size_t)t * n + i] - mean) * (src[(size_t)t * n + i] - mean);
        double rr = 1 / sqrt(ss / n + 1e-5);
        for (int i = 0; i < n; i++) {
          size_t j = (size_t)t * n + i;
          double v = src[j], e = ((n + 8) * U24 * fabs(v - mean) + (ln ? (n + 2) * U24 * sa / n : 0)) * rr * fabs(w[i]);
          e += 4 * U24 * fabs(ref[j]);
          tol[j] = OUT16(fabs(ref[j]) + e) + e;
          rtol[j] = OUT16(fabs(rref[j]));
        }
      }
      float *got = back16(dout, N);
      check_close(ln ? "layernorm out" : "rmsnorm out", got, ref, tol, N);
      free(got);
      if (with_res) {
        got = back16(dres, N);
        check_close(ln ? "layernorm res" : "rmsnorm res", got, rref, rtol, N);
        free(got);
        qsr_cuda_free(dres);
      }
      qsr_cuda_free(dout);
    }
  /* layernorm without bias */
  uint16_t *dout = dpoison16(N);
  qsr_cpu_layernorm_add(x, NULL, w, NULL, 1e-5f, T, n, ref);
  CK(qsr_cuda_layernorm_add(dx, NULL, dw, NULL, 1e-5f, T, n, dout, NULL, &e_));
  float *got = back16(dout, N);
  for (size_t i = 0; i < N; i++) tol[i] = OUT16(fabs(ref[i])) + 1e-4 * (1 + fabs(ref[i]));
  check_close("layernorm no bias (loose)", got, ref, tol, N);
  free(got);
  qsr_cuda_free(dout);
  qsr_cuda_free(dx);
  qsr_cuda_free(dw);
  qsr_cuda_free(db);
  free(x); free(res); free(w); free(b); free(xh); free(rh); free(ref); free(rref); free(tol); free(rtol);
  gsl_rng_free(r);
}

static void test_activations(void) {
  const int64_t n = 5003;
  gsl_rng *r = rng(42);
  float *g = xmalloc(n * 4), *u = xmalloc(n * 4), *ref = xmalloc(n * 4);
  uint16_t *gh = xmalloc(n * 2), *uh = xmalloc(n * 2);
  double *tol = xmalloc(n * sizeof *tol);
  gauss16(r, (size_t)n, 4.0, g, gh);
  gauss16(r, (size_t)n, 1.0, u, uh);
  uint16_t *dg = dcopy(gh, n * 2), *du = dcopy(uh, n * 2), *dout = dpoison16((size_t)n);
  /* expf, tanhf: a few ulps; 1 + tanh cancels for large negative x: absolute 8u |x| */
  qsr_cpu_silu_gate(g, u, n, ref);
  CK(qsr_cuda_silu_gate(dg, du, n, dout, NULL, &e_));
  float *got = back16(dout, (size_t)n);
  for (int64_t i = 0; i < n; i++) tol[i] = OUT16(ref[i]) + 16 * U24 * (fabs(ref[i]) + fabs(g[i] * u[i]));
  check_close("silu_gate", got, ref, tol, (size_t)n);
  free(got);
  CK(qsr_cuda_memset(dout, 0xff, n * 2, &e_));
  qsr_cpu_gelu(g, n, ref);
  CK(qsr_cuda_gelu(dg, n, dout, NULL, &e_));
  got = back16(dout, (size_t)n);
  for (int64_t i = 0; i < n; i++) tol[i] = OUT16(ref[i]) + 16 * U24 * (fabs(ref[i]) + fabs(g[i]));
  check_close("gelu", got, ref, tol, (size_t)n);
  free(got);
  qsr_cuda_free(dg);
  qsr_cuda_free(du);
  qsr_cuda_free(dout);
  free(g); free(u); free(ref); free(gh); free(uh); free(tol);
  gsl_rng_free(r);
}

static void emb_case(gsl_rng *r, int fmt, int bits, int group) {
  const uint32_t vocab = 50, dim = 200;
  const int T = 7;
  const int32_t ids[7] = { 0, 49, 3, 3, 17, 48, 1 };
  qsr_qmatrix w, dw;
  CU_ASSERT_EQUAL_FATAL(qsr_qmatrix_alloc(&w, fmt, bits, group, vocab, dim, NULL), QSR_OK);
  float *wf = xmalloc((size_t)vocab * dim * 4), *ref = xmalloc((size_t)T * dim * 4);
  for (size_t i = 0; i < (size_t)vocab * dim; i++) wf[i] = (float)gsl_ran_gaussian(r, 1.0);
  qsr_quantize(&w, wf);
  CK(qsr_cuda_qmatrix_upload(&w, &dw, &e_));
  int32_t *did = dcopy(ids, sizeof ids);
  uint16_t *dout = dpoison16((size_t)T * dim);
  qsr_cpu_embedding(&w, ids, T, ref);
  CK(qsr_cuda_embedding(&dw, did, T, dout, NULL, &e_));
  float *got = back16(dout, (size_t)T * dim);
  double *tol = xmalloc((size_t)T * dim * sizeof *tol);
  for (size_t i = 0; i < (size_t)T * dim; i++) tol[i] = OUT16(ref[i]); /* same decode, one rounding */
  char what[64];
  snprintf(what, sizeof what, "embedding fmt %d/%d/%d", fmt, bits, group);
  check_close(what, got, ref, tol, (size_t)T * dim);
  free(got);
  free(tol);
  free(wf);
  free(ref);
  qsr_cuda_free(did);
  qsr_cuda_free(dout);
  qsr_cuda_qmatrix_free(&dw);
  qsr_qmatrix_free(&w);
}

static void test_embedding(void) {
  gsl_rng *r = rng(43);
  emb_case(r, QSR_WFMT_FP16, 16, 0);
  emb_case(r, QSR_WFMT_BF16, 16, 0);
  emb_case(r, QSR_WFMT_FP8, 8, 0);
  emb_case(r, QSR_WFMT_INT, 4, 32);
  emb_case(r, QSR_WFMT_INT_SYM, 6, 128);
  emb_case(r, QSR_WFMT_LOG, 5, 0);
  emb_case(r, QSR_WFMT_LUT, 3, 32);
  gsl_rng_free(r);
}

#endif /* QSR_HAVE_CUDA */

static void test_skip(void) {
  fprintf(stderr, "\ncuda: no GPU present (or built without nvcc): CUDA kernels compiled but not run\n");
  CU_PASS("no GPU");
}

void tst_register_cuda(void) {
  CU_pSuite s = CU_add_suite("cuda", NULL, NULL);
#ifdef QSR_HAVE_CUDA
  if (qsr_cuda_device_count() > 0) {
    CU_add_test(s, "runtime and errors", test_runtime);
    CU_add_test(s, "gemv vs C, every format", test_gemv);
    CU_add_test(s, "gemm vs C, every format", test_gemm);
    CU_add_test(s, "linear dispatch, cuBLAS", test_linear_cublas);
    CU_add_test(s, "kv cache append (bytes, summaries)", test_kv_append);
    CU_add_test(s, "attention decode vs C", test_attn_decode);
    CU_add_test(s, "attention prefill vs C", test_attn_prefill);
    CU_add_test(s, "moe router plan and experts vs C", test_moe);
    CU_add_test(s, "rmsnorm, layernorm", test_norms);
    CU_add_test(s, "silu_gate, gelu", test_activations);
    CU_add_test(s, "embedding", test_embedding);
    return;
  }
#endif
  CU_add_test(s, "skip (no GPU)", test_skip);
}
