/*
** kbench.c -- the C kernels' microbenchmarks (see kbench.h).
**
** Work per row, as the cost model counts it:
**   linear     flops 2*T*R*C; vec_ops R*C*dequant_ops; bytes = packed weights
**              + 4*T*(R+C) (fp32 activations in and out)
**   attention  per query head: dense 4*n*d flops over n keys; local n = min(window, ctx);
**              top-k exact 2*ctx*d + 2*k*d; paged 4*pages*d + 4*k*d; bytes = the K
**              and V vectors read per KV head (a key read once per group of heads)
**   router     as linear (E x hidden) + softmax/top-k vec ops
**   experts    3 linear layers per (token, expert) pair, weights of the experts touched
**   norms etc. bytes = 4 bytes per element read or written
*/
#include "kernels/cpu/kbench.h"

#include "kernels/qformat_traits.h"
#include "kernels/quant.h"
#include "kernels/variants.h"
#include "util/err.h"

#include <gsl/gsl_rng.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPS 200

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct timer {
  const struct qsr_kbench_opts *o;
  char *flush;               /* 2 x LLC, written between reps when flushing */
  size_t flush_n;
};

/* Times fn(arg); fills reps and the percentiles of row. */
static void time_it(struct timer *tm, void (*fn)(void *), void *arg, int flush, struct qsr_kbench_row *row) {
  double t[MAX_REPS], sorted[MAX_REPS], prev = -1, budget = tm->o->budget_s > 0 ? tm->o->budget_s : 0.5;
  int n = 0;
  double t_start = now_s();
  fn(arg);                                    /* warm-up */
  while (n < MAX_REPS) {
    for (int b = 0; b < 5 && n < MAX_REPS; b++) {
      if (flush) memset(tm->flush, n & 0xff, tm->flush_n);
      double t0 = now_s();
      fn(arg);
      t[n++] = now_s() - t0;
    }
    memcpy(sorted, t, (size_t)n * sizeof *t);
    gsl_sort(sorted, 1, (size_t)n);
    double med = gsl_stats_median_from_sorted_data(sorted, 1, (size_t)n);
    if (prev > 0 && fabs(med - prev) <= 0.02 * prev) break;
    prev = med;
    if (now_s() - t_start > budget && n >= 5) break;
  }
  row->reps = n;
  row->median_us = 1e6 * gsl_stats_median_from_sorted_data(sorted, 1, (size_t)n);
  row->p10_us = 1e6 * gsl_stats_quantile_from_sorted_data(sorted, 1, (size_t)n, 0.1);
  row->p90_us = 1e6 * gsl_stats_quantile_from_sorted_data(sorted, 1, (size_t)n, 0.9);
}

static void row_init(struct qsr_kbench_row *r) {
  memset(r, 0, sizeof *r);
  r->bits = r->group = -1;
  r->tokens = r->rows = r->cols = r->ctx = r->heads = r->kv_heads = r->head_dim = -1;
  r->window = r->topk = r->experts = r->top_k = -1;
}

static float *gauss(gsl_rng *g, size_t n, double sd) {
  float *v = malloc(n * sizeof *v);
  if (v) for (size_t i = 0; i < n; i++) v[i] = (float)gsl_ran_gaussian(g, sd);
  return v;
}

/* ---- linear --------------------------------------------------------------- */

struct lin_arg { qsr_pool *p; const qsr_qmatrix *m; const float *x; float *y; int T; };
static void run_linear(void *v) {
  struct lin_arg *a = v;
  qsr_cpu_linear(a->p, a->m, a->x, a->T, a->y);
}

static const struct { int fmt, bits, group; } full_fmts[] = {
  { QSR_WFMT_FP16, 16, 0 }, { QSR_WFMT_BF16, 16, 0 }, { QSR_WFMT_FP8, 8, 0 },
  { QSR_WFMT_INT, 8, 128 }, { QSR_WFMT_INT, 4, 128 }, { QSR_WFMT_INT, 4, 32 }, { QSR_WFMT_INT_SYM, 4, 128 },
  { QSR_WFMT_INT, 3, 128 }, { QSR_WFMT_INT, 2, 64 }, { QSR_WFMT_LOG, 4, 128 }, { QSR_WFMT_LUT, 4, 128 },
}, quick_fmts[] = {
  { QSR_WFMT_FP16, 16, 0 }, { QSR_WFMT_INT, 8, 128 }, { QSR_WFMT_INT, 4, 128 }, { QSR_WFMT_INT, 2, 64 },
};

/* rows x cols of the bundled models' linear layers, and a spread */
static const int full_shapes[][2] = {
  { 2048, 2048 }, { 256, 2048 }, { 5632, 2048 }, { 2048, 5632 },      /* tinyllama-1.1b */
  { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 }, { 1024, 4096 },    /* llama-7b, mistral kv */
  { 1024, 1024 }, { 3072, 3072 },
}, quick_shapes[][2] = {
  { 2048, 2048 }, { 256, 2048 }, { 5632, 2048 }, { 2048, 5632 }, { 1024, 1024 },
};
static const int lin_tokens[] = { 1, 4, 16, 64 };

static int bench_linear(struct timer *tm, gsl_rng *g, qsr_kbench_fn fn, void *ud) {
  const struct qsr_kbench_opts *o = tm->o;
  int nf = o->quick ? (int)(sizeof quick_fmts / sizeof *quick_fmts) : (int)(sizeof full_fmts / sizeof *full_fmts);
  int ns = o->quick ? (int)(sizeof quick_shapes / sizeof *quick_shapes) : (int)(sizeof full_shapes / sizeof *full_shapes);
  int rc = QSR_OK;
  float *x = gauss(g, 64 * 11008, 1.0), *y = malloc(64 * 11008 * sizeof *y);
  if (!x || !y) { rc = QSR_ERR_NOMEM; goto out; }
  for (int s = 0; s < ns && !rc; s++) {
    int R = o->quick ? quick_shapes[s][0] : full_shapes[s][0], C = o->quick ? quick_shapes[s][1] : full_shapes[s][1];
    float *w = gauss(g, (size_t)R * C, 0.02);
    if (!w) { rc = QSR_ERR_NOMEM; break; }
    for (int f = 0; f < nf && !rc; f++) {
      int fmt = o->quick ? quick_fmts[f].fmt : full_fmts[f].fmt, bits = o->quick ? quick_fmts[f].bits : full_fmts[f].bits;
      int group = o->quick ? quick_fmts[f].group : full_fmts[f].group;
      qsr_qmatrix m;
      if (qsr_qmatrix_alloc(&m, fmt, bits, group, (uint32_t)R, (uint32_t)C, NULL)) { rc = QSR_ERR_NOMEM; break; }
      qsr_quantize(&m, w);
      for (int ti = 0; ti < 4 && !rc; ti++) {
        int T = lin_tokens[ti];
        if (!o->quick && T == 64 && (double)R * C > 2e7) continue;   /* CPU gemm on 7B shapes: seconds */
        struct qsr_kbench_row r;
        row_init(&r);
        r.kernel = qsr_kvariant_name(qsr_kvariant_linear(fmt, T));
        r.op_class = "gemm";
        r.wfmt = qsr_wfmt_tab[fmt].name;
        r.bits = bits;
        r.group = group;
        r.tokens = T;
        r.rows = R;
        r.cols = C;
        r.flops = 2.0 * T * R * C;
        r.vec_ops = (double)R * C * qsr_wfmt_tab[fmt].dequant_ops;
        r.bytes = (double)qsr_qmatrix_bytes(&m) + 4.0 * T * (R + C);
        r.split_holdout = (s + ti + f) % 3 == 2;
        struct lin_arg a = { o->pool, &m, x, y, T };
        time_it(tm, run_linear, &a, qsr_qmatrix_bytes(&m) < tm->flush_n, &r);
        rc = fn(ud, &r);
      }
      qsr_qmatrix_free(&m);
    }
    free(w);
    if (o->verbose) fprintf(stderr, "\rqsr bench: linear %d/%d shapes", s + 1, ns);
  }
out:
  if (o->verbose) fprintf(stderr, "\n");
  free(x);
  free(y);
  return rc;
}

/* ---- attention ------------------------------------------------------------------- */

struct att_arg { qsr_pool *p; const qsr_attn_cfg *cfg; const qsr_kvcache *c; const float *q; float *out, *scratch; int T; };
static void run_attn(void *v) {
  struct att_arg *a = v;
  if (a->T == 1) qsr_cpu_attn_decode(a->p, a->cfg, a->c, a->q, a->out, a->scratch);
  else qsr_cpu_attn_prefill(a->p, a->cfg, a->c, a->T, a->q, a->out, a->scratch);
}

static const char *const head_names[4] = { "dense", "local", "topk_exact", "topk_paged" };

static int bench_attention(struct timer *tm, gsl_rng *g, qsr_kbench_fn fn, void *ud) {
  const struct qsr_kbench_opts *o = tm->o;
  int H = 32, KV = 4, d = 64, W = 256, K = 256, P = 64, rc = QSR_OK;   /* tinyllama's attention */
  static const int ctxs[] = { 256, 1024, 4096, 2048 };
  int nctx = o->quick ? 3 : 4, maxc = 4096;
  float *kv = gauss(g, (size_t)maxc * KV * d, 1.0), *q = gauss(g, (size_t)512 * H * d, 1.0);
  float *out = malloc((size_t)512 * H * d * sizeof *out);
  uint8_t types[32];
  qsr_attn_cfg cfg = { H, KV, d, types, W, K, 0, 0, 1.0f / sqrtf((float)d) };
  float *scratch = malloc(qsr_cpu_attn_scratch(o->pool, &cfg, maxc) * sizeof *scratch);
  if (!kv || !q || !out || !scratch) { rc = QSR_ERR_NOMEM; goto out; }
  for (int kf = 0; kf < QSR_KVFMT_COUNT && !rc; kf++)
    for (int ci = 0; ci < nctx && !rc; ci++) {
      int L = ctxs[ci];
      qsr_kvcache c;
      if (qsr_kvcache_alloc(&c, kf, KV, d, L, P, NULL)) { rc = QSR_ERR_NOMEM; break; }
      qsr_kvcache_append(&c, L, kv, kv);
      double vb = qsr_kv_vec_bytes(kf, (uint32_t)d);
      for (int ht = 0; ht < 4 && !rc; ht++)
        for (int pre = 0; pre < 2 && !rc; pre++) {
          int T = pre ? (L < 512 ? L : 512) : 1;
          if (pre && (ht >= 2 || kf || L > 1024)) continue;   /* prefill: dense/local, fp16 KV, short prompts */
          memset(types, ht == 0 ? QSR_HEAD_DENSE : ht == 1 ? QSR_HEAD_LOCAL : QSR_HEAD_TOPK, sizeof types);
          cfg.paged = ht == 3;
          struct qsr_kbench_row r;
          row_init(&r);
          r.kernel = qsr_kvariant_name(qsr_kvariant_attention(types[0], cfg.paged, !pre));
          r.op_class = "attention";
          r.kvfmt = qsr_kvfmt_names[kf];
          r.head_type = head_names[ht];
          r.tokens = T;
          r.ctx = L;
          r.heads = H;
          r.kv_heads = KV;
          r.head_dim = d;
          r.window = W;
          r.topk = K;
          double keys, kpos, vpos;        /* per query: keys scored, K and V vectors read */
          if (ht == 1) keys = kpos = vpos = L < W ? L : W;
          else if (ht == 2) { keys = L; kpos = L; vpos = L < K ? L : K; }
          else if (ht == 3) { keys = ceil((double)L / P) + (L < K ? L : K); kpos = 2.0 * ceil((double)L / P) + (L < K ? L : K); vpos = L < K ? L : K; }
          else keys = kpos = vpos = L;
          if (pre) {                       /* causal: sum over queries of the keys each sees */
            double sum = 0;
            for (int t = L - T; t < L; t++) sum += ht == 1 ? fmin(t + 1, W) : t + 1;
            r.flops = 4.0 * d * H * sum;
            r.bytes = vb * 2 * KV * (double)L + 8.0 * T * H * d;
          } else {
            r.flops = (ht >= 2 ? 2.0 * d * keys + 2.0 * d * vpos : 4.0 * d * keys) * H;
            r.bytes = vb * KV * (kpos + vpos) + 8.0 * H * d;
          }
          r.vec_ops = r.flops / (4.0 * d) * 5;
          r.split_holdout = (ci + ht + kf) % 3 == 2;
          struct att_arg a = { o->pool, &cfg, &c, q, out, scratch, T };
          time_it(tm, run_attn, &a, 2.0 * vb * KV * L < (double)tm->flush_n, &r);
          rc = fn(ud, &r);
        }
      qsr_kvcache_free(&c);
    }
  if (o->verbose) fprintf(stderr, "qsr bench: attention done\n");
out:
  free(kv);
  free(q);
  free(out);
  free(scratch);
  return rc;
}

/* ---- MoE and elementwise ------------------------------------------------------------ */

struct moe_arg { qsr_pool *p; qsr_qmatrix *wg, *g, *u, *dn; qsr_moe_plan *pl; const float *x; float *y, *logits, *scratch; int T, k, experts; };
static void run_router(void *v) {
  struct moe_arg *a = v;
  qsr_cpu_moe_router(a->p, a->wg, a->x, a->T, a->k, 0, a->pl, a->logits);
}
static void run_experts(void *v) {
  struct moe_arg *a = v;
  qsr_cpu_moe_experts(a->p, a->g, a->u, a->dn, a->pl, a->x, a->y, a->scratch);
}

static int bench_moe(struct timer *tm, gsl_rng *g, qsr_kbench_fn fn, void *ud) {
  const struct qsr_kbench_opts *o = tm->o;
  enum { E = 8, K = 2, HID = 1024, FFN = 2816, TMAX = 64 };   /* Mixtral-shaped, scaled by 1/4 */
  int rc = QSR_OK;
  qsr_qmatrix wg, gt[E], up[E], dn[E];
  memset(gt, 0, sizeof gt);
  memset(up, 0, sizeof up);
  memset(dn, 0, sizeof dn);
  memset(&wg, 0, sizeof wg);
  qsr_moe_plan pl;
  float *x = gauss(g, (size_t)TMAX * HID, 1.0), *y = calloc((size_t)TMAX * HID, sizeof *y);
  float logits[TMAX * E], *scratch = NULL, *w = gauss(g, (size_t)FFN * HID, 0.02);
  if (!x || !y || !w || qsr_moe_plan_alloc(&pl, TMAX, E, K, NULL)) { rc = QSR_ERR_NOMEM; goto out; }
  scratch = malloc(qsr_cpu_moe_scratch(&pl, FFN, HID) * sizeof *scratch);
  if (!scratch || qsr_qmatrix_alloc(&wg, QSR_WFMT_FP16, 16, 0, E, HID, NULL)) { rc = QSR_ERR_NOMEM; goto out_plan; }
  qsr_quantize(&wg, w);
  for (int e = 0; e < E; e++) {
    if (qsr_qmatrix_alloc(&gt[e], QSR_WFMT_INT, 4, 128, FFN, HID, NULL) ||
        qsr_qmatrix_alloc(&up[e], QSR_WFMT_INT, 4, 128, FFN, HID, NULL) ||
        qsr_qmatrix_alloc(&dn[e], QSR_WFMT_INT, 4, 128, HID, FFN, NULL)) { rc = QSR_ERR_NOMEM; goto out_w; }
    qsr_quantize(&gt[e], w);
    qsr_quantize(&up[e], w);
    qsr_quantize(&dn[e], w);   /* same values, transposed shape: fine for timing */
  }
  static const int Ts[] = { 1, 4, 16, 64 };
  for (int ti = 0; ti < 4 && !rc; ti++) {
    int T = Ts[ti];
    struct moe_arg a = { o->pool, &wg, gt, up, dn, &pl, x, y, logits, scratch, T, K, E };
    struct qsr_kbench_row r;
    row_init(&r);
    r.kernel = "moe_router";
    r.op_class = "moe";
    r.wfmt = "fp16";
    r.bits = 16;
    r.group = 0;
    r.tokens = T;
    r.rows = E;
    r.cols = HID;
    r.experts = E;
    r.top_k = K;
    r.flops = 2.0 * T * E * HID;
    r.vec_ops = 8.0 * T * E;
    r.bytes = 2.0 * E * HID + 4.0 * T * (HID + E);
    r.split_holdout = ti == 2;
    time_it(tm, run_router, &a, 1, &r);
    if ((rc = fn(ud, &r))) break;
    int touched = 0;
    for (int e = 0; e < E; e++) touched += pl.offset[e + 1] > pl.offset[e];
    row_init(&r);
    r.kernel = T * K / E <= 16 ? "moe_experts_gemv" : "moe_experts_gemm";
    r.op_class = "moe";
    r.wfmt = "int";
    r.bits = 4;
    r.group = 128;
    r.tokens = T;
    r.rows = FFN;
    r.cols = HID;
    r.experts = E;
    r.top_k = K;
    r.flops = 2.0 * 3 * FFN * HID * T * K;
    r.vec_ops = 3.0 * FFN * HID * touched * qsr_wfmt_tab[QSR_WFMT_INT].dequant_ops;
    r.bytes = 3.0 * touched * (double)qsr_qmatrix_bytes(&gt[0]) + 4.0 * T * K * (2.0 * HID + 2.0 * FFN);
    r.split_holdout = ti == 1;
    time_it(tm, run_experts, &a, 1, &r);
    rc = fn(ud, &r);
  }
out_w:
  for (int e = 0; e < E; e++) { qsr_qmatrix_free(&gt[e]); qsr_qmatrix_free(&up[e]); qsr_qmatrix_free(&dn[e]); }
  qsr_qmatrix_free(&wg);
out_plan:
  qsr_moe_plan_free(&pl);
out:
  free(x);
  free(y);
  free(w);
  free(scratch);
  return rc;
}

struct ew_arg { int kind, T, n; float *a, *b, *c, *w; const qsr_qmatrix *tab; const int32_t *ids; };
static void run_ew(void *v) {
  struct ew_arg *a = v;
  switch (a->kind) {
  case 0: qsr_cpu_rmsnorm_add(a->a, a->b, a->w, 1e-5f, a->T, a->n, a->c); break;
  case 1: qsr_cpu_silu_gate(a->a, a->b, (int64_t)a->T * a->n, a->c); break;
  default: qsr_cpu_embedding(a->tab, a->ids, a->T, a->c);
  }
}

static int bench_elementwise(struct timer *tm, gsl_rng *g, qsr_kbench_fn fn, void *ud) {
  enum { N = 5632, TM = 64, VOCAB = 32000, D = 2048 };
  int rc = QSR_OK;
  float *a = gauss(g, (size_t)TM * N, 1.0), *b = gauss(g, (size_t)TM * N, 1.0), *c = malloc((size_t)TM * N * sizeof *c);
  float *w = gauss(g, N, 1.0), *tw = gauss(g, (size_t)VOCAB * D / 8, 1.0);
  int32_t ids[TM];
  qsr_qmatrix tab;
  memset(&tab, 0, sizeof tab);
  if (!a || !b || !c || !w || !tw || qsr_qmatrix_alloc(&tab, QSR_WFMT_FP16, 16, 0, VOCAB, D, NULL)) { rc = QSR_ERR_NOMEM; goto out; }
  for (uint32_t r = 0; r < VOCAB; r++) memcpy(tab.data + r * tab.row_data_bytes, tw + (r % (VOCAB / 8)) * (D / 2), tab.row_data_bytes);
  for (int t = 0; t < TM; t++) ids[t] = (int32_t)gsl_rng_uniform_int(g, VOCAB);
  static const int Ts[] = { 1, 16, 64 };
  for (int kind = 0; kind < 3 && !rc; kind++)
    for (int ti = 0; ti < 3 && !rc; ti++) {
      int T = Ts[ti], n = kind == 0 ? D : kind == 1 ? N : D;
      struct ew_arg ea = { kind, T, n, a, b, c, w, &tab, ids };
      struct qsr_kbench_row r;
      row_init(&r);
      r.kernel = kind == 0 ? "rmsnorm_add" : kind == 1 ? "silu_gate" : "embedding";
      r.op_class = kind == 2 ? "embedding" : "elementwise";
      r.tokens = T;
      r.cols = n;
      if (kind == 2) { r.wfmt = "fp16"; r.bits = 16; r.group = 0; r.rows = VOCAB; }
      r.flops = 0;
      r.vec_ops = (kind == 0 ? 5.0 : kind == 1 ? 6.0 : 1.0) * T * n;
      r.bytes = (kind == 0 ? 16.0 : kind == 1 ? 12.0 : 6.0) * T * n;
      r.split_holdout = ti == 1;
      time_it(tm, run_ew, &ea, 1, &r);
      rc = fn(ud, &r);
    }
out:
  qsr_qmatrix_free(&tab);
  free(a);
  free(b);
  free(c);
  free(w);
  free(tw);
  return rc;
}

/* ---- host figures ---------------------------------------------------------------------- */

struct copy_part { char *src, *dst; size_t n; int parts; };
static void copy_task(void *v, int i, int worker) {
  (void)worker;
  struct copy_part *c = v;
  size_t per = c->n / (size_t)c->parts;
  memcpy(c->dst + per * (size_t)i, c->src + per * (size_t)i, per);
}
struct copy_arg { qsr_pool *p; struct copy_part part; };
static void run_copy(void *v) {
  struct copy_arg *a = v;
  qsr_pool_run(a->p, a->part.parts, copy_task, &a->part);
}

double qsr_kbench_copy_gbps(qsr_pool *p) {
  size_t n = 256u << 20;
  struct copy_arg a = { p, { malloc(n), malloc(n), n, 4 * qsr_pool_threads(p) } };
  if (!a.part.src || !a.part.dst) { free(a.part.src); free(a.part.dst); return 0; }
  memset(a.part.src, 1, n);
  memset(a.part.dst, 2, n);
  struct qsr_kbench_opts o = { p, 0, 2.0, 0, 0 };
  struct timer tm = { &o, NULL, 0 };
  struct qsr_kbench_row r;
  time_it(&tm, run_copy, &a, 0, &r);
  free(a.part.src);
  free(a.part.dst);
  return 2.0 * (double)n / (r.median_us * 1e-6) / 1e9;
}

typedef float v8f __attribute__((vector_size(32)));
#define FMA_ITERS 2000000
static volatile float fma_m = 0.9999f, fma_c = 0.0001f;  /* opaque to the optimiser */

static void fma_task(void *v, int i, int worker) {
  (void)worker;
  float *sink = v, mm = fma_m, cc = fma_c;
  v8f m = { mm, mm, mm, mm, mm, mm, mm, mm }, c = { cc, cc, cc, cc, cc, cc, cc, cc };
  v8f a0 = m + (float)i, a1 = a0 + c, a2 = a1 + c, a3 = a2 + c, a4 = a3 + c, a5 = a4 + c, a6 = a5 + c, a7 = a6 + c;
  for (int k = 0; k < FMA_ITERS; k++) {     /* 8 independent chains hide the FMA latency */
    a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
    a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
  }
  v8f s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  for (int k = 0; k < 8; k++) sink[i] += s[k];
}
struct fma_arg { qsr_pool *p; float sink[256]; };
static void run_fma(void *v) {
  struct fma_arg *a = v;
  qsr_pool_run(a->p, qsr_pool_threads(a->p), fma_task, a->sink);
}

double qsr_kbench_fma_gflops(qsr_pool *p) {
  struct fma_arg a;
  a.p = p;
  struct qsr_kbench_opts o = { p, 0, 1.0, 0, 0 };
  struct timer tm = { &o, NULL, 0 };
  struct qsr_kbench_row r;
  time_it(&tm, run_fma, &a, 0, &r);
  return (double)qsr_pool_threads(p) * FMA_ITERS * 8 * 8 * 2 / (r.median_us * 1e-6) / 1e9;
}

static void nop_task(void *v, int i, int worker) { (void)v; (void)i; (void)worker; }
struct nop_arg { qsr_pool *p; };
static void run_nop(void *v) {
  struct nop_arg *a = v;
  for (int k = 0; k < 100; k++) qsr_pool_run(a->p, qsr_pool_threads(a->p), nop_task, NULL);
}

double qsr_kbench_dispatch_us(qsr_pool *p) {
  struct nop_arg a = { p };
  struct qsr_kbench_opts o = { p, 0, 0.5, 0, 0 };
  struct timer tm = { &o, NULL, 0 };
  struct qsr_kbench_row r;
  time_it(&tm, run_nop, &a, 0, &r);
  return r.median_us / 100;
}

int qsr_kbench_run(const struct qsr_kbench_opts *o, qsr_kbench_fn fn, void *ud) {
  struct timer tm = { o, NULL, 2 * (o->llc_bytes ? o->llc_bytes : (size_t)32 << 20) };
  tm.flush = malloc(tm.flush_n);
  gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
  int rc = tm.flush && g ? QSR_OK : QSR_ERR_NOMEM;
  if (g) gsl_rng_set(g, 42);
  struct qsr_kbench_row r;
  if (!rc) {
    row_init(&r);
    r.kernel = "memcpy";
    r.op_class = "memcpy";
    double gbps = qsr_kbench_copy_gbps(o->pool);
    r.bytes = 2.0 * (256u << 20);
    r.reps = 1;
    r.median_us = r.p10_us = r.p90_us = r.bytes / (gbps * 1e9) * 1e6;
    rc = fn(ud, &r);
  }
  if (!rc) {
    row_init(&r);
    r.kernel = "fma_peak";
    r.op_class = "gemm";
    double gf = qsr_kbench_fma_gflops(o->pool);
    r.flops = (double)qsr_pool_threads(o->pool) * FMA_ITERS * 8 * 8 * 2;
    r.bytes = 0;
    r.reps = 1;
    r.median_us = r.p10_us = r.p90_us = r.flops / (gf * 1e9) * 1e6;
    rc = fn(ud, &r);
  }
  if (!rc) rc = bench_linear(&tm, g, fn, ud);
  if (!rc) rc = bench_attention(&tm, g, fn, ud);
  if (!rc) rc = bench_moe(&tm, g, fn, ud);
  if (!rc) rc = bench_elementwise(&tm, g, fn, ud);
  gsl_rng_free(g);
  free(tm.flush);
  return rc;
}
