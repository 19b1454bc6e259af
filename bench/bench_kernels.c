/*
** bench_kernels.c -- the C kernels' figures on this host: quantisation error
** per format, GEMV bandwidth against a memcpy bandwidth, GEMM throughput, and
** decode attention dense vs local vs top-k. Printed, never asserted.
*/
#include "kernels/cpu/cpu.h"
#include "kernels/qformat_traits.h"
#include "kernels/quant.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void bench_kernels(void);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define REPS 5

/* median seconds of REPS runs of fn(arg) after one warm-up */
static double median_s(void (*fn)(void *), void *arg) {
  double t[REPS];
  fn(arg);
  for (int i = 0; i < REPS; i++) {
    double t0 = now_s();
    fn(arg);
    t[i] = now_s() - t0;
  }
  gsl_sort(t, 1, REPS);
  return gsl_stats_median_from_sorted_data(t, 1, REPS);
}

struct copy_arg { char *a, *b; size_t n; };
static void do_copy(void *v) { struct copy_arg *c = v; memcpy(c->b, c->a, c->n); }

struct lin_arg { qsr_pool *p; qsr_qmatrix *m; float *x, *y; int T, gemm; };
static void do_lin(void *v) {
  struct lin_arg *a = v;
  if (a->gemm) qsr_cpu_gemm(a->p, a->m, a->x, a->T, a->y);
  else qsr_cpu_gemv(a->p, a->m, a->x, a->T, a->y);
}

struct att_arg { qsr_pool *p; qsr_attn_cfg *cfg; qsr_kvcache *c; float *q, *out, *scratch; };
static void do_att(void *v) {
  struct att_arg *a = v;
  qsr_cpu_attn_decode(a->p, a->cfg, a->c, a->q, a->out, a->scratch);
}

static void quant_errors(gsl_rng *r) {
  static const int fmts[] = { QSR_WFMT_INT, QSR_WFMT_INT_SYM, QSR_WFMT_LOG, QSR_WFMT_LUT };
  static const int bits[] = { 2, 3, 4, 5, 6, 8 };
  uint32_t R = 64, C = 4096;
  float *w = malloc((size_t)R * C * sizeof *w);
  for (size_t i = 0; i < (size_t)R * C; i++) w[i] = (float)gsl_ran_gaussian(r, 1.0);
  printf("quantisation error (relative RMS, N(0,1) weights, group 128):\n  %-8s", "format");
  for (int b = 0; b < 6; b++) printf("  %d-bit ", bits[b]);
  printf("\n");
  for (int f = 0; f < 4; f++) {
    printf("  %-8s", qsr_wfmt_tab[fmts[f]].name);
    for (int b = 0; b < 6; b++) {
      qsr_qmatrix m;
      if (qsr_qmatrix_alloc(&m, fmts[f], bits[b], 128, R, C, NULL)) continue;
      qsr_quantize(&m, w);
      printf(" %7.4f", qsr_quant_error(&m, w));
      qsr_qmatrix_free(&m);
    }
    printf("\n");
  }
  free(w);
}

void bench_kernels(void) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 1);
  quant_errors(r);

  size_t n = 256u << 20;
  struct copy_arg ca = { malloc(n), malloc(n), n };
  memset(ca.a, 1, n);
  memset(ca.b, 2, n);
  double copy_gbs = 2.0 * n / median_s(do_copy, &ca) / 1e9;  /* read + write */
  free(ca.a);
  free(ca.b);
  printf("\nhost memcpy bandwidth (256 MiB, read + write): %.1f GB/s\n", copy_gbs);

  uint32_t R = 11008, C = 4096;  /* LLaMA-7B up/gate projection */
  float *w = malloc((size_t)R * C * sizeof *w), *x = malloc(32 * (size_t)C * sizeof *x);
  float *y = malloc(32 * (size_t)R * sizeof *y);
  for (size_t i = 0; i < (size_t)R * C; i++) w[i] = (float)gsl_ran_gaussian(r, 0.02);
  for (size_t i = 0; i < 32 * (size_t)C; i++) x[i] = (float)gsl_ran_gaussian(r, 1.0);
  static const struct { int fmt, bits, group; } f[] = {
    { QSR_WFMT_FP16, 16, 0 }, { QSR_WFMT_FP8, 8, 0 }, { QSR_WFMT_INT, 8, 128 }, { QSR_WFMT_INT, 4, 128 },
    { QSR_WFMT_INT_SYM, 4, 128 }, { QSR_WFMT_INT, 3, 128 }, { QSR_WFMT_INT, 2, 64 },
    { QSR_WFMT_LOG, 4, 128 }, { QSR_WFMT_LUT, 4, 128 },
  };
  qsr_pool *pools[2] = { NULL, qsr_pool_new(0) };
  int nt = qsr_pool_threads(pools[1]);
  printf("\nC gemv/gemm, %ux%u weights (GB/s = weight bytes / time; GFLOP/s = 2*T*R*C / time):\n", R, C);
  printf("  %-12s %9s %12s %12s %14s\n", "format", "MB", "gemv T=1", "gemv T=1", "gemm T=32");
  printf("  %-12s %9s %12s %12s %14s\n", "", "", "1 thread", "all threads", "all threads");
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    qsr_qmatrix m;
    if (qsr_qmatrix_alloc(&m, f[i].fmt, f[i].bits, f[i].group, R, C, NULL)) continue;
    qsr_quantize(&m, w);
    double mb = (double)qsr_qmatrix_bytes(&m) / 1e6, g[2];
    for (int p = 0; p < 2; p++) {
      struct lin_arg a = { pools[p], &m, x, y, 1, 0 };
      g[p] = mb / 1e3 / median_s(do_lin, &a);
    }
    struct lin_arg a = { pools[1], &m, x, y, 32, 1 };
    double gf = 2.0 * 32 * R * C / median_s(do_lin, &a) / 1e9;
    char name[32];
    snprintf(name, sizeof name, "%s-%d g%d", qsr_wfmt_tab[f[i].fmt].name, f[i].bits, f[i].group);
    printf("  %-12s %9.1f %8.1f GB/s %7.1f GB/s %9.1f GFLOP/s\n", name, mb, g[0], g[1], gf);
    qsr_qmatrix_free(&m);
  }
  printf("  (%d threads; gemv at the copy bandwidth above would be %.1f GB/s)\n", nt, copy_gbs / 2);
  free(w);
  free(x);
  free(y);

  /* decode attention, 32 heads x 128, GQA 8, context 4096: dense vs local 256 vs top-k 256 */
  int H = 32, KV = 8, d = 128, L = 4096;
  qsr_kvcache c;
  if (qsr_kvcache_alloc(&c, QSR_KVFMT_FP16, KV, d, L, 64, NULL) == 0) {
    float *k = malloc((size_t)L * KV * d * sizeof *k), *q = malloc((size_t)H * d * sizeof *q);
    for (size_t i = 0; i < (size_t)L * KV * d; i++) k[i] = (float)gsl_ran_gaussian(r, 1.0);
    for (size_t i = 0; i < (size_t)H * d; i++) q[i] = (float)gsl_ran_gaussian(r, 1.0);
    qsr_kvcache_append(&c, L, k, k);
    uint8_t types[32];
    qsr_attn_cfg cfg = { H, KV, d, types, 256, 256, 0, 0, 1.0f / sqrtf((float)d) };
    float *out = malloc((size_t)H * d * sizeof *out);
    float *scratch = malloc(qsr_cpu_attn_scratch(pools[1], &cfg, L) * sizeof *scratch);
    struct att_arg a = { pools[1], &cfg, &c, q, out, scratch };
    static const char *names[] = { "dense", "local w=256", "topk exact k=256", "topk paged k=256" };
    double t[4];
    for (int v = 0; v < 4; v++) {
      memset(types, v == 0 ? QSR_HEAD_DENSE : v == 1 ? QSR_HEAD_LOCAL : QSR_HEAD_TOPK, sizeof types);
      cfg.paged = v == 3;
      t[v] = median_s(do_att, &a);
    }
    printf("\nC decode attention, %d heads x %d (GQA %d), context %d, fp16 KV, %d threads:\n", H, d, KV, L, nt);
    for (int v = 0; v < 4; v++)
      printf("  %-18s %8.3f ms  %5.1fx vs dense\n", names[v], 1e3 * t[v], t[0] / t[v]);
    printf("  (ideal local speed-up: %d/256 = %.0fx)\n", L, L / 256.0);
    free(k);
    free(q);
    free(out);
    free(scratch);
    qsr_kvcache_free(&c);
  }
  qsr_pool_free(pools[1]);
  gsl_rng_free(r);
}
