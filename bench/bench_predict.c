/*
** bench_predict.c -- `make bench`: how fast the cost model evaluates design
** points (the sweep evaluates millions). Prints figures; asserts nothing.
*/
#include "costmodel/costmodel.h"
#include "spec/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int load(const char *dev_name, const char *model_name, const char *design, struct qsr_device *dev,
                struct qsr_model *m, struct qsr_quality *q, struct qsr_design *d) {
  char path[4096], *err = NULL;
  static struct qsr_design_builder b;
  int rc = qsr_spec_resolve("devices", dev_name, path, sizeof path, &err);
  if (!rc) rc = qsr_device_load(path, dev, &err);
  if (!rc) rc = qsr_spec_resolve("models", model_name, path, sizeof path, &err);
  if (!rc) rc = qsr_model_load(path, m, &err);
  if (!rc) rc = qsr_quality_load("configs/quality/default.yaml", q, &err);
  if (!rc) qsr_design_begin(&b, m);
  if (!rc && design) rc = qsr_spec_resolve("designs", design, path, sizeof path, &err);
  if (!rc && design) rc = qsr_design_load(&b, path, &err);
  if (!rc) rc = qsr_design_finish(&b, m, &err);
  if (rc) { fprintf(stderr, "bench: %s\n", err); free(err); return rc; }
  *d = b.d;
  return 0;
}

static void run(const char *dev_name, const char *model_name, const char *design, const char *set_batch) {
  struct qsr_device dev;
  struct qsr_model m;
  struct qsr_quality q;
  struct qsr_design d;
  if (load(dev_name, model_name, design, &dev, &m, &q, &d)) exit(1);
  if (set_batch) d.batch = atoi(set_batch);
  struct qsr_result r;
  double sink = 0, t0 = now_s();
  long n = 0;
  do {
    for (int i = 0; i < 1000; i++, n++) {
      d.prompt = 256 + (int)(n % 512);   /* vary the point so nothing is cached */
      qsr_eval(&dev, &m, &d, &q, &r, NULL);
      sink += r.tpot_ms;
    }
  } while (now_s() - t0 < 1.0);
  double dt = now_s() - t0;
  printf("  %-14s %-14s %-16s batch %-3d %9.0f points/s  %6.2f us/point  (checksum %.3g)\n", dev_name, model_name,
         design ? design : "baseline", d.batch, n / dt, dt / n * 1e6, sink / n);
}

void bench_predict(void);
void bench_predict(void) {
  printf("qsr_eval speed, one thread (target for sweeps: >= 1,000,000 points/s per thread):\n");
  run("a100-80g", "llama-7b", NULL, NULL);
  run("a100-80g", "llama-7b", "ablation-qsr", NULL);
  run("orin-nx-16g", "llama-7b", "ablation-qsr", NULL);
  run("h200", "mixtral-8x7b", NULL, "64");
  run("a100-80g", "dit-xl-2", NULL, NULL);
}
