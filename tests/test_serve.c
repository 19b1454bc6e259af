/*
** test_serve.c -- the serving simulator against closed forms: a lone
** request equals `qsr predict`; a static batch of B equal requests equals
** predict at batch B; Poisson arrivals with a constant service time wait as
** M/D/1 theory says; tokens are conserved; halving bandwidth doubles a
** memory-bound step; equal seeds give equal results; expert-cache hits.
*/
#include "sim/serve.h"
#include "tests/test.h"
#include "util/err.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct qsr_device dev;
static struct qsr_model m;
static struct qsr_design d;
static struct qsr_quality q;

/* n requests of equal lengths arriving at the given times (NULL: all at 0). */
static void make_trace(struct qsr_trace *t, size_t n, const double *at, int prompt, int output) {
  memset(t, 0, sizeof *t);
  t->req = calloc(n, sizeof *t->req);
  t->n = n;
  for (size_t i = 0; i < n; i++) {
    t->req[i].arrival_s = at ? at[i] : 0;
    t->req[i].prompt = prompt;
    t->req[i].output = output;
    t->req[i].complexity = -1;
  }
}

static void base_cfg(struct qsr_serve_cfg *c) {
  memset(c, 0, sizeof *c);
  c->dev = &dev;
  c->m = &m;
  c->q = &q;
  c->n_levels = 1;
  c->levels[0] = &d;
  c->batching = QSR_BATCHING_CONTINUOUS;
  c->max_batch = 1;
  c->chunk_tokens = 512;
  c->expert_cache = -1;
  c->tier = -1;
  c->sample_dt_s = 1;
  c->seed = 1;
}

static int run(struct qsr_serve_cfg *c, const struct qsr_trace *t, struct qsr_serve_summary *s) {
  char *err = NULL;
  int rc = qsr_serve_run(c, t, s, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc == QSR_OK;
}

static void test_alone_equals_predict(void) {
  if (!tst_device("a100-80g", &dev) || !tst_model("llama-7b", &m)) return;
  tst_quality(&q);
  tst_design(&m, NULL, &d, "runtime.prompt=512", "runtime.gen=128", NULL);
  struct qsr_result r;
  tst_eval(&dev, &m, &d, &r);
  struct qsr_trace t;
  make_trace(&t, 1, NULL, 512, 128);
  struct qsr_serve_cfg c;
  struct qsr_serve_summary s;
  for (int b = 0; b < QSR_BATCHING_COUNT; b++) {
    base_cfg(&c);
    c.batching = b;
    c.chunk_tokens = 4096;  /* the whole prompt in one chunk */
    if (!run(&c, &t, &s)) break;
    CU_ASSERT_EQUAL(s.requests, 1);
    /* e2e = prefill + 128 decode steps at contexts 513..640: predict's
    ** Simpson mean is exact for attention linear in the context */
    CU_ASSERT_DOUBLE_EQUAL(s.e2e_ms.max / r.e2e_ms, 1, 1e-6);
    /* TTFT = prefill + the first step (predict: + the mean step) */
    CU_ASSERT_DOUBLE_EQUAL(s.ttft_ms.max / r.ttft_ms, 1, 0.01);
    CU_ASSERT(s.ttft_ms.max >= r.prefill_ms);
    CU_ASSERT_DOUBLE_EQUAL(s.tpot_ms.max / r.tpot_ms, 1, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(s.quality_loss, r.quality_loss, 1e-12);
  }
  /* a 4-bit MoE model with the cost model's expected experts (batch 1 decode:
  ** top-2 distinct) */
  if (!tst_model("mixtral-8x7b", &m)) goto out;
  tst_design(&m, NULL, &d, "quant.weights.bits=4", "runtime.prompt=512", "runtime.gen=64", NULL);
  tst_eval(&dev, &m, &d, &r);
  t.req[0].output = 64;
  base_cfg(&c);
  if (run(&c, &t, &s)) {
    CU_ASSERT_DOUBLE_EQUAL(s.e2e_ms.max / r.e2e_ms, 1, 1e-6);
    CU_ASSERT_EQUAL(s.expert_cache_hit_rate, -1);  /* everything resident on an A100-80G */
  }
out:
  qsr_trace_free(&t);
}

static void test_static_batch_equals_predict(void) {
  if (!tst_device("orin-agx-64g", &dev) || !tst_model("llama-7b", &m)) return;
  tst_quality(&q);
  tst_design(&m, NULL, &d, "quant.weights.bits=4", "runtime.batch=8", "runtime.prompt=256", "runtime.gen=64", NULL);
  struct qsr_result r;
  tst_eval(&dev, &m, &d, &r);
  struct qsr_trace t;
  make_trace(&t, 8, NULL, 256, 64);
  struct qsr_serve_cfg c;
  base_cfg(&c);
  c.batching = QSR_BATCHING_STATIC;
  c.max_batch = 8;
  struct qsr_serve_summary s;
  if (run(&c, &t, &s)) {
    CU_ASSERT_EQUAL(s.requests, 8);
    CU_ASSERT_DOUBLE_EQUAL(s.e2e_ms.max / r.e2e_ms, 1, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(s.e2e_ms.p50 / r.e2e_ms, 1, 1e-6);  /* all finish together */
    CU_ASSERT_DOUBLE_EQUAL(s.throughput_tok_s / r.tokens_per_s, 1, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(s.iterations, 1 + 64, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(s.mean_batch, 8.0 * 64 / 65, 1e-9);
  }
  qsr_trace_free(&t);
}

/* Poisson arrivals, one server, service D (prefill + one step, constant):
** M/D/1 mean wait Wq = rho * D / (2 (1 - rho)). */
static void test_md1(void) {
  if (!tst_device("a100-80g", &dev) || !tst_model("llama-7b", &m)) return;
  tst_quality(&q);
  tst_design(&m, NULL, &d, "runtime.prompt=256", "runtime.gen=1", NULL);
  struct qsr_result r;
  tst_eval(&dev, &m, &d, &r);
  double D = r.e2e_ms / 1e3;  /* s */
  const size_t n = 40000;
  double rho = 0.5, lambda = rho / D;
  double *at = malloc(n * sizeof *at);
  gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(g, 7);
  double tt = 0;
  for (size_t i = 0; i < n; i++) {
    at[i] = tt;
    tt += gsl_ran_exponential(g, 1 / lambda);
  }
  gsl_rng_free(g);
  struct qsr_trace t;
  make_trace(&t, n, at, 256, 1);
  free(at);
  struct qsr_serve_cfg c;
  base_cfg(&c);
  struct qsr_serve_summary s;
  if (run(&c, &t, &s)) {
    double wq = rho * D / (2 * (1 - rho)) * 1e3;
    CU_ASSERT_EQUAL(s.requests, (int64_t)n);
    CU_ASSERT_DOUBLE_EQUAL(s.queue_ms.mean / wq, 1, 0.05);
    CU_ASSERT_DOUBLE_EQUAL(s.e2e_ms.mean, s.queue_ms.mean + D * 1e3, 1e-6 * D * 1e3);
    /* utilisation: busy time / span = rho */
    CU_ASSERT_DOUBLE_EQUAL(n * D / s.sim_s, rho, 0.02);
  }
  qsr_trace_free(&t);
}

static void test_tokens_conserved(void) {
  if (!tst_device("orin-nx-16g", &dev) || !tst_model("llama-7b", &m)) return;
  tst_quality(&q);
  tst_design(&m, NULL, &d, "quant.weights.bits=4", NULL);
  const size_t n = 300;
  struct qsr_trace t;
  make_trace(&t, n, NULL, 1, 1);
  gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(g, 3);
  int64_t in = 0, out = 0;
  for (size_t i = 0; i < n; i++) {
    t.req[i].arrival_s = i * 0.05;
    t.req[i].prompt = 1 + (int)gsl_rng_uniform_int(g, 2000);
    t.req[i].output = 1 + (int)gsl_rng_uniform_int(g, 300);
    in += t.req[i].prompt;
    out += t.req[i].output;
  }
  gsl_rng_free(g);
  for (int b = 0; b < QSR_BATCHING_COUNT; b++) {
    struct qsr_serve_cfg c;
    base_cfg(&c);
    c.batching = b;
    c.max_batch = 16;
    c.chunk_tokens = 256;
    struct qsr_serve_summary s;
    if (!run(&c, &t, &s)) break;
    CU_ASSERT_EQUAL(s.requests, (int64_t)n);
    CU_ASSERT_EQUAL(s.rejected, 0);
    CU_ASSERT_EQUAL(s.tokens_in, in);
    CU_ASSERT_EQUAL(s.tokens_out, out);
    CU_ASSERT(s.ttft_ms.p50 <= s.ttft_ms.p90 && s.ttft_ms.p90 <= s.ttft_ms.p99 && s.ttft_ms.p99 <= s.ttft_ms.max);
    CU_ASSERT(s.peak_mem_mb <= dev.usable_gb * 1e3 + 1e-6);
  }
  qsr_trace_free(&t);
}

/* No launch or sync overhead: every op of a batch-1 decode is memory bound,
** so half the bandwidth is exactly twice the step. */
static void test_half_bandwidth(void) {
  if (!tst_device("a100-80g", &dev) || !tst_model("llama-7b", &m)) return;
  tst_quality(&q);
  dev.launch_us = 0;
  dev.sync_us = 0;
  tst_design(&m, NULL, &d, "runtime.prompt=2048", "runtime.gen=64", NULL);
  struct qsr_trace t;
  make_trace(&t, 1, NULL, 2048, 64);
  static struct qsr_fluct fl;
  memset(&fl, 0, sizeof fl);
  fl.n = 1;
  fl.pts[0] = (struct qsr_fluct_point){ 0, 0.5, 1, -1 };
  struct qsr_serve_cfg c;
  struct qsr_serve_summary s1, s2;
  base_cfg(&c);
  if (!run(&c, &t, &s1)) goto out;
  c.fluct = &fl;
  if (!run(&c, &t, &s2)) goto out;
  CU_ASSERT_DOUBLE_EQUAL(s2.tpot_ms.max / s1.tpot_ms.max, 2, 1e-6);
  /* a 2048-token prefill on an A100 is compute bound: it barely slows */
  CU_ASSERT(s2.ttft_ms.max / s1.ttft_ms.max < 1.5);
out:
  qsr_trace_free(&t);
}

static void test_seed_and_adaptation(void) {
  if (!tst_device("orin-nx-16g", &dev) || !tst_model("mixtral-8x7b", &m)) return;
  tst_quality(&q);
  static struct qsr_design d4, d2;
  tst_design(&m, NULL, &d4, "quant.weights.bits=4", "routing.dynamic=true", "routing.k_min=1", "routing.k_max=2", NULL);
  tst_design(&m, NULL, &d2, "quant.weights.bits=3", "routing.dynamic=true", "routing.k_min=1", "routing.k_max=2", NULL);
  const size_t n = 40;
  struct qsr_trace t;
  make_trace(&t, n, NULL, 64, 16);
  for (size_t i = 0; i < n; i++) t.req[i].arrival_s = i * 0.5;
  struct qsr_serve_cfg c;
  base_cfg(&c);
  c.n_levels = 2;
  c.levels[0] = &d4;
  c.levels[1] = &d2;
  c.nested = 1;
  c.max_batch = 8;
  c.adapt = QSR_ADAPT_TOKEN;
  c.expert_cache = 4;
  c.seed = 11;
  struct qsr_serve_summary a, b;
  if (!run(&c, &t, &a) || !run(&c, &t, &b)) goto out;
  CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
  CU_ASSERT(a.expert_cache_hit_rate >= 0 && a.expert_cache_hit_rate <= 1);
  /* without a routing trace the expected hit share is the resident share */
  CU_ASSERT_DOUBLE_EQUAL(a.expert_cache_hit_rate, 0.5, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(a.level_share[0] + a.level_share[1], 1, 1e-9);
  c.adapt = QSR_ADAPT_STATIC;
  if (!run(&c, &t, &b)) goto out;
  CU_ASSERT_DOUBLE_EQUAL(b.level_share[0], 1, 1e-12);
  CU_ASSERT(a.quality_loss >= b.quality_loss);  /* cheaper levels cost quality */
out:
  qsr_trace_free(&t);
}

void tst_register_serve(void) {
  CU_pSuite s = CU_add_suite("serve", NULL, NULL);
  CU_add_test(s, "one request alone = qsr predict", test_alone_equals_predict);
  CU_add_test(s, "static batch of B = predict at batch B", test_static_batch_equals_predict);
  CU_add_test(s, "Poisson + constant service = M/D/1", test_md1);
  CU_add_test(s, "tokens in = tokens out, every policy", test_tokens_conserved);
  CU_add_test(s, "half bandwidth doubles a memory-bound step", test_half_bandwidth);
  CU_add_test(s, "fixed seed, adaptation levels", test_seed_and_adaptation);
}
