/*
** bench_serve.c -- `make bench`: how fast the serving simulator replays
** traces: the Azure 2023 conversation trace (19,366 requests) and synthetic
** traces up to 10^6 requests / ~10^8 output tokens, on one core. Prints
** simulated requests/s and tokens/s and the peak resident memory; asserts
** nothing. Set QSR_BENCH_SERVE_N to change the large trace's size.
*/
#include "sim/serve.h"
#include "spec/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

void bench_serve(void);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

static void one(const char *label, const char *dev_name, const char *model_name, const char *set, const char *trace,
                int batching, int max_batch) {
  static struct qsr_device dev;
  static struct qsr_model m;
  static struct qsr_quality q;
  static struct qsr_design_builder b;
  char path[4096], *err = NULL;
  struct qsr_trace t;
  memset(&t, 0, sizeof t);
  int rc = qsr_spec_resolve("devices", dev_name, path, sizeof path, &err);
  if (!rc) rc = qsr_device_load(path, &dev, &err);
  if (!rc) rc = qsr_spec_resolve("models", model_name, path, sizeof path, &err);
  if (!rc) rc = qsr_model_load(path, &m, &err);
  if (!rc) rc = qsr_quality_load("configs/quality/default.yaml", &q, &err);
  if (!rc) qsr_design_begin(&b, &m);
  if (!rc && set) rc = qsr_design_set(&b, set, &err);
  if (!rc) rc = qsr_design_finish(&b, &m, &err);
  double t0 = now_s();
  if (!rc) rc = qsr_trace_load(trace, &t, &err);
  double t1 = now_s();
  struct qsr_serve_cfg c;
  memset(&c, 0, sizeof c);
  c.dev = &dev;
  c.m = &m;
  c.q = &q;
  c.n_levels = 1;
  c.levels[0] = &b.d;
  c.batching = batching;
  c.max_batch = max_batch;
  c.chunk_tokens = 512;
  c.expert_cache = -1;
  c.tier = -1;
  c.sample_dt_s = 1;
  c.seed = 1;
  struct qsr_serve_summary s;
  if (!rc) rc = qsr_serve_run(&c, &t, &s, &err);
  double t2 = now_s();
  if (rc) {
    printf("  %-34s skipped: %s\n", label, err);
    free(err);
    qsr_trace_free(&t);
    return;
  }
  double sec = t2 - t1;
  printf("  %-34s %8lld req %11lld tok  %6.2f s  %9.3g req/s %9.3g tok/s  %7.0f iter/s  (read %.2f s, RSS %.0f MB)\n",
         label, (long long)s.requests, (long long)s.tokens_out, sec, s.requests / sec, s.tokens_out / sec,
         s.iterations / sec, t1 - t0, rss_mb());
  qsr_trace_free(&t);
}

void bench_serve(void) {
  printf("\nserving simulator (one core; simulated work per wall-clock second)\n");
  one("azure conv, llama-7b, a100, cont.", "a100-80g", "llama-7b", NULL, "../shared/data/traces/azure-llm-2023-conv.csv",
      QSR_BATCHING_CONTINUOUS, 64);
  one("azure conv, llama-7b int4, orin-agx", "orin-agx-64g", "llama-7b", "quant.weights.bits=4",
      "../shared/data/traces/azure-llm-2023-conv.csv", QSR_BATCHING_CHUNKED, 32);
  one("mooncake, llama-7b, h100, chunked", "h100-sxm", "llama-7b", NULL,
      "../shared/data/traces/mooncake-conversation.jsonl", QSR_BATCHING_CHUNKED, 64);
  one("azure conv, mixtral int4, a100", "a100-80g", "mixtral-8x7b", "quant.weights.bits=4",
      "../shared/data/traces/azure-llm-2023-conv.csv", QSR_BATCHING_CONTINUOUS, 64);
  const char *n = getenv("QSR_BENCH_SERVE_N");
  char spec[256];
  snprintf(spec, sizeof spec, "synthetic:poisson,rate=400,n=%s,prompt=exp:256,output=exp:100,seed=1", n ? n : "1000000");
  one("synthetic 10^6 req x ~100 tok, h100", "h100-sxm", "llama-7b", NULL, spec, QSR_BATCHING_CONTINUOUS, 256);
}
