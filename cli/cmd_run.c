/*
** cmd_run.c -- `qsr run DEPLOY.yaml`: run a deployment config on this
** machine's kernels (kernels/runner.h), predict the same run with the cost
** model, print both, and store them as one `e2e` row of the measurements
** table (store/measure.h). What runs and how: docs/run.md.
*/
#include "cli/cli.h"
#include "costmodel/costmodel.h"
#include "kernels/qformat_traits.h"
#include "kernels/runner.h"
#include "spec/deploy.h"
#include "spec/spec.h"
#include "store/measure.h"
#include "store/store.h"
#include "util/err.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_STEPS 32

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr run DEPLOY.yaml [--backend cpu|cuda] [--device NAME] [-o DB | --no-store] [-j N]\n"
          "               [--steps N] [--prompt N] [--batch N] [--prefill-reps N] [--seed N] [--mem-gb G]\n"
          "               [--json] [--quiet]\n\n"
          "Builds the deployment config's model with synthetic weights in exactly its formats (real\n"
          "shapes), runs one prefill pass (gemm_<fmt>, attn_prefill_<type>) and decode steps (gemv_<fmt>,\n"
          "attn_decode_<type>) with exactly the kernels it names, and prints measured against predicted\n"
          "latency per phase and peak memory. The first decode step is a warm-up and is not timed. A\n"
          "model larger than the memory budget runs fewer layers; their time is scaled to the whole\n"
          "model, and the output says so. Rotary embeddings and linear biases have no kernel and are not\n"
          "run (docs/run.md).\n\n"
          "  --backend B   cpu (the C kernels, default) or cuda (the CUDA runner is not built yet)\n"
          "  --device NAME the device to predict for (configs/devices/NAME.yaml or a path); default on\n"
          "                the cpu backend: host.calibrated if qsr calibrate has made it, else host (this\n"
          "                machine, measured on first use); on cuda: the deploy file's device\n"
          "  -o DB         store the run in DB's measurements table (default results/run-<device>.db)\n"
          "  --no-store    print only\n"
          "  -j N          threads (default: all online CPUs)\n"
          "  --steps N     decode steps timed (default: the file's gen, at most %d)\n"
          "  --prompt N    prompt tokens per sequence (default: the file's prompt)\n"
          "  --batch N     sequences (default: the file's batch)\n"
          "  --prefill-reps N  time N prefill passes and keep the median (default 1: a pass can take\n"
          "                seconds on a CPU)\n"
          "  --seed N      synthetic weights and tokens (default 1)\n"
          "  --mem-gb G    memory budget for weights, KV cache and activations (default: 80%% of RAM)\n"
          "  --json        machine-readable output\n"
          "  --quiet       no progress lines\n\n"
          "The prediction is qsr_eval of the file's design with batch and prompt as run and gen = the\n"
          "steps timed, so its tpot covers the contexts that were measured. Exit status: 0 ok, 1 a bad\n"
          "file, device, database or run, 2 a bad command line.\n",
          DEFAULT_STEPS);
}

/* Parses a positive int option value; -1 if it is not one. */
static int pos_int(const char *v) {
  char *end;
  long x = strtol(v, &end, 10);
  return *v && !*end && x > 0 && x <= INT_MAX ? (int)x : -1;
}

static void wq_label(struct qsr_wq w, char *buf, size_t n) {
  const char *f = qsr_wfmt_tab[w.fmt].name;
  if (w.fmt == QSR_WFMT_FP16 || w.fmt == QSR_WFMT_BF16 || w.fmt == QSR_WFMT_FP8) snprintf(buf, n, "%s", f);
  else if (w.group) snprintf(buf, n, "%s%dg%d", f, w.bits, w.group);
  else snprintf(buf, n, "%s%d", f, w.bits);  /* one group per row */
}

static double err_pct(double meas, double pred) { return pred > 0 ? 100.0 * (meas - pred) / pred : NAN; }

struct report {
  const char *config, *backend;
  const struct qsr_model *m;
  const struct qsr_device *dev;
  const struct qsr_design *d;
  const struct qsr_run_result *r;
  const struct qsr_result *p;
  int threads;
  char quant[48];
  const char *db;            /* NULL when not stored */
  double wall_s;
};

static void json_triple(FILE *f, const char *key, double meas, double pred, int last) {
  fprintf(f, "  \"%s\": {\"measured\": %.6g, \"predicted\": %.6g, \"err_pct\": ", key, meas, pred);
  double e = err_pct(meas, pred);
  if (isfinite(e)) fprintf(f, "%.4g", e);
  else fputs("null", f);
  fprintf(f, "}%s\n", last ? "" : ",");
}

static void print_json(const struct report *rp) {
  FILE *f = stdout;
  const struct qsr_run_result *r = rp->r;
  fprintf(f, "{\n  \"config\": ");
  qsr_json_str(f, rp->config);
  fprintf(f, ",\n  \"model\": ");
  qsr_json_str(f, rp->m->name);
  fprintf(f, ",\n  \"device\": ");
  qsr_json_str(f, rp->dev->name);
  fprintf(f, ",\n  \"backend\": ");
  qsr_json_str(f, rp->backend);
  fprintf(f, ",\n  \"quant\": ");
  qsr_json_str(f, rp->quant);
  fprintf(f, ",\n  \"kv\": ");
  qsr_json_str(f, qsr_kvfmt_names[rp->d->kv]);
  fprintf(f, ",\n  \"threads\": %d, \"batch\": %d, \"prompt\": %d, \"steps\": %d,\n", rp->threads, r->batch, r->prompt,
          r->steps);
  fprintf(f, "  \"layers_run\": %d, \"layers_model\": %d, \"layer_scale\": %.6g,\n", r->layers_run, r->layers_model,
          r->layer_scale);
  json_triple(f, "prefill_ms", r->prefill_ms, rp->p->prefill_ms, 0);
  json_triple(f, "tpot_ms", r->decode_ms_mean, rp->p->tpot_ms, 0);
  json_triple(f, "peak_mb", r->model_mb, rp->p->mem_peak_mb, 0);
  fprintf(f, "  \"tpot_p10_ms\": %.6g, \"tpot_p90_ms\": %.6g,\n", r->decode_ms_p10, r->decode_ms_p90);
  fprintf(f, "  \"prefill_reps\": %d, \"prefill_min_ms\": %.6g, \"prefill_max_ms\": %.6g,\n", r->prefill_reps,
          r->prefill_ms_min, r->prefill_ms_max);
  fprintf(f, "  \"prompt_tok_s\": %.6g, \"gen_tok_s\": %.6g,\n",
          r->prefill_ms > 0 ? 1e3 * r->batch * r->prompt / r->prefill_ms : 0,
          r->decode_ms_mean > 0 ? 1e3 * r->batch / r->decode_ms_mean : 0);
  fprintf(f, "  \"memory_mb\": {\"weights\": %.6g, \"kv\": %.6g, \"activations\": %.6g, \"own_peak\": %.6g, "
             "\"model\": %.6g, \"max_rss\": %.6g},\n",
          r->weights_mb, r->kv_mb, r->act_mb, r->peak_mb, r->model_mb, r->rss_mb);
  fprintf(f, "  \"kernels\": [");
  char buf[QSR_RUN_KERNELS_MAX];
  snprintf(buf, sizeof buf, "%s", r->kernels);
  int first = 1;
  for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
    fputs(first ? "" : ", ", f);
    qsr_json_str(f, s);
    first = 0;
  }
  fprintf(f, "],\n  \"notes\": ");
  qsr_json_str(f, r->notes);
  fprintf(f, ",\n  \"db\": ");
  if (rp->db) qsr_json_str(f, rp->db);
  else fputs("null", f);
  fprintf(f, ",\n  \"wall_s\": %.3g\n}\n", rp->wall_s);
}

static void print_table(const struct report *rp) {
  const struct qsr_run_result *r = rp->r;
  const struct qsr_result *p = rp->p;
  printf("qsr run: %s (%s), backend %s, %d threads; predicted for device %s\n", rp->m->name, rp->config, rp->backend,
         rp->threads, rp->dev->name);
  printf("  batch %d, prompt %d, %d decode steps timed (contexts %d..%d), layers %d of %d run\n", r->batch, r->prompt,
         r->steps, r->prompt + 2, r->prompt + r->steps + 1, r->layers_run, r->layers_model);
  printf("  weights mostly %s, kv %s; activations fp32 (the C kernels')\n\n", rp->quant, qsr_kvfmt_names[rp->d->kv]);
  printf("  %-12s %12s %12s %8s %22s\n", "phase", "measured", "predicted", "error", "tokens/s meas / pred");
  double B = r->batch;
  printf("  %-12s %9.2f ms %9.2f ms %+7.1f%% %10.1f / %-10.1f", "prefill", r->prefill_ms, p->prefill_ms,
         err_pct(r->prefill_ms, p->prefill_ms), 1e3 * B * r->prompt / r->prefill_ms,
         p->prefill_ms > 0 ? 1e3 * B * r->prompt / p->prefill_ms : 0);
  if (r->prefill_reps > 1)
    printf("  (median of %d, %.2f..%.2f ms)", r->prefill_reps, r->prefill_ms_min, r->prefill_ms_max);
  printf("\n");
  if (r->steps)
    printf("  %-12s %9.3f ms %9.3f ms %+7.1f%% %10.2f / %-10.2f  (p10 %.3f, p90 %.3f ms)\n", "decode/token",
           r->decode_ms_mean, p->tpot_ms, err_pct(r->decode_ms_mean, p->tpot_ms), 1e3 * B / r->decode_ms_mean,
           p->tpot_ms > 0 ? 1e3 * B / p->tpot_ms : 0, r->decode_ms_p10, r->decode_ms_p90);
  printf("  %-12s %9.1f MB %9.1f MB %+7.1f%%\n", "peak memory", r->model_mb, p->mem_peak_mb,
         err_pct(r->model_mb, p->mem_peak_mb));
  printf("\n  memory (MB = 1e6 B): weights %.1f, kv %.1f, activations + scratch %.1f (fp32); max RSS %.1f\n",
         r->weights_mb, r->kv_mb, r->act_mb, r->rss_mb);
  printf("  of which embedding + final norm + lm_head: prefill %.2f ms, decode %.3f ms/step\n", r->ends_prefill_ms,
         r->ends_decode_ms);
  if (r->layers_run < r->layers_model)
    printf("  SCALED: %d of %d layers ran (x%.3g); times and memory above are for the whole model\n",
           r->layers_run, r->layers_model, r->layer_scale);
  printf("  kernels: %s\n  notes: %s\n", r->kernels, r->notes);
  if (!p->feasible) printf("  prediction: infeasible on %s: %s\n", rp->dev->name, p->why);
  if (rp->db) printf("  stored: %s (measurements, kernel 'e2e')\n", rp->db);
  printf("  wall time %.1f s\n", rp->wall_s);
}

/* Opens DB and makes sure its measurements table takes rows, before the run
** (a read-only or corrupt file fails here, not after minutes of running). */
static int store_open(const char *path, qsr_store **st, char **err) {
  int rc = qsr_store_open(path, 0, st, err);
  if (!rc && sqlite3_db_readonly(qsr_store_db(*st), "main") == 1)  /* SQLite falls back to read-only */
    rc = qsr_errf(err, QSR_ERR_DB, "%s: read-only database (give a writable -o DB, or --no-store)", path);
  if (!rc) rc = qsr_measure_schema(qsr_store_db(*st), path, err);
  if (rc) { qsr_store_close(*st); *st = NULL; }
  return rc;
}

/* One e2e row: measured and predicted, in one transaction. */
static int store(qsr_store *st, const struct report *rp, const char *path, const char *device_desc, char **err) {
  int rc;
  sqlite3 *db = qsr_store_db(st);
  const struct qsr_run_result *r = rp->r;
  const struct qsr_result *p = rp->p;
  struct qsr_wq w = qsr_run_main_wq(rp->m, rp->d);
  char rev[96];
  qsr_cli_revision(rev, sizeof rev);
  struct qsr_meas m;
  qsr_meas_clear(&m);
  m.kernel = "e2e";
  m.op_class = "e2e";
  m.wfmt = qsr_wfmt_tab[w.fmt].name;
  m.bits = w.bits;
  m.grp = w.group;
  m.kvfmt = qsr_kvfmt_names[rp->d->kv];
  m.ctx = 0;
  m.backend = rp->backend;
  m.device = rp->dev->name;
  m.device_desc = device_desc;
  m.threads = rp->threads;
  m.rev = rev;
  m.source = "qsr run";
  m.reps = r->steps;
  m.median_us = 1e3 * (r->prefill_ms + r->decode_ms_mean);
  m.model = rp->m->name;
  m.quant = rp->quant;
  m.batch = r->batch;
  m.prompt = r->prompt;
  m.gen = r->steps;
  double B = r->batch;
  m.prompt_tok_s = 1e3 * B * r->prompt / r->prefill_ms;
  m.gen_tok_s = r->decode_ms_mean > 0 ? 1e3 * B / r->decode_ms_mean : NAN;
  m.split = "holdout";
  m.pred_prompt_tok_s = p->prefill_ms > 0 ? 1e3 * B * r->prompt / p->prefill_ms : NAN;
  m.pred_gen_tok_s = p->tpot_ms > 0 ? 1e3 * B / p->tpot_ms : NAN;
  m.peak_mb = r->model_mb;
  m.pred_peak_mb = p->mem_peak_mb;
  m.config = rp->config;
  if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "%s: %s", path, sqlite3_errmsg(db));
  rc = qsr_measure_put(db, path, &m, err);
  if (sqlite3_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !rc)
    rc = qsr_errf(err, QSR_ERR_DB, "%s: commit: %s", path, sqlite3_errmsg(db));
  return rc;
}

static int fail(int rc, char *msg) {
  fprintf(stderr, "qsr run: %s\n", msg ? msg : qsr_errstr(rc));
  free(msg);
  return rc == QSR_ERR_USAGE ? 2 : 1;
}

int qsr_cmd_run(int argc, char **argv) {
  struct timespec ts0;                 /* wall time of the whole command */
  clock_gettime(CLOCK_MONOTONIC, &ts0);
  const char *file = NULL, *backend = "cpu", *device = NULL, *out = NULL;
  int threads = 0, steps = 0, prompt = 0, batch = 0, json = 0, quiet = 0, no_store = 0, reps = 1;
  unsigned seed = 1;
  double mem_gb = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *ip = NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--quiet")) quiet = 1;
    else if (!strcmp(a, "--no-store")) no_store = 1;
    else if (v && !strcmp(a, "--backend")) { backend = v; i++; }
    else if (v && !strcmp(a, "--device")) { device = v; i++; }
    else if (v && !strcmp(a, "-o")) { out = v; i++; }
    else if (v && !strcmp(a, "-j")) ip = &threads;
    else if (v && !strcmp(a, "--steps")) ip = &steps;
    else if (v && !strcmp(a, "--prompt")) ip = &prompt;
    else if (v && !strcmp(a, "--batch")) ip = &batch;
    else if (v && !strcmp(a, "--prefill-reps")) ip = &reps;
    else if (v && !strcmp(a, "--seed")) {
      char *end;
      unsigned long s = strtoul(v, &end, 10);
      if (!*v || *end || s > 0xffffffffu) { fprintf(stderr, "qsr run: --seed %s: give a non-negative integer\n", v); return 2; }
      seed = (unsigned)s;
      i++;
    } else if (v && !strcmp(a, "--mem-gb")) {
      char *end;
      mem_gb = strtod(v, &end);
      if (*end || !(mem_gb > 0)) { fprintf(stderr, "qsr run: --mem-gb %s: give GB > 0\n", v); return 2; }
      i++;
    } else if (a[0] != '-' && !file) file = a;
    else { fprintf(stderr, "qsr run: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
    if (ip) {
      if ((*ip = pos_int(v)) < 0) { fprintf(stderr, "qsr run: %s %s: give a positive integer\n", a, v); return 2; }
      i++;
    }
  }
  if (!file) { fprintf(stderr, "qsr run: a deployment config is required\n"); usage(stderr); return 2; }
  int be = !strcmp(backend, "cpu") ? QSR_RUN_CPU : !strcmp(backend, "cuda") ? QSR_RUN_CUDA : -1;
  if (be < 0) { fprintf(stderr, "qsr run: --backend %s: give cpu or cuda\n", backend); return 2; }

  char *err = NULL, path[PATH_MAX];
  int rc;
  static struct qsr_deploy_info info;  /* large: the design's per-layer tables */
  struct qsr_model m;
  struct qsr_device dev;
  if ((rc = qsr_deploy_check(file, &info, &err))) return fail(rc, err);
  if ((rc = qsr_spec_resolve("models", info.model, path, sizeof path, &err)) || (rc = qsr_model_load(path, &m, &err)))
    return fail(rc, err);
  if (!device) {   /* on the CPU: this machine, calibrated when it has been */
    char hp[PATH_MAX];
    snprintf(hp, sizeof hp, "%s/devices/host.calibrated.yaml", qsr_spec_config_dir());
    device = be != QSR_RUN_CPU ? info.device : access(hp, R_OK) == 0 ? "host.calibrated" : "host";
  }
  if ((rc = qsr_cli_device(device, &dev, path, sizeof path, &err))) return fail(rc == QSR_ERR_USAGE ? QSR_ERR_IO : rc, err);
  if (be == QSR_RUN_CUDA)
    return fail(QSR_ERR_CUDA, strdup("--backend cuda: the CUDA runner is not built yet; use --backend cpu"));

  char dbp[PATH_MAX];
  qsr_store *st = NULL;
  if (!no_store) {
    if (!out) { snprintf(dbp, sizeof dbp, "results/run-%s.db", dev.name); out = dbp; }
    if ((rc = store_open(out, &st, &err))) return fail(rc, err);
  }
  {                                  /* overrides may cross the gemv/gemm rule (16 rows) */
    int fb = info.d.batch, fp = info.d.prompt, rb = batch ? batch : fb, rp = prompt ? prompt : fp;
    if (!quiet && ((rb * rp <= 16) != (fb * fp <= 16) || (rb <= 16) != (fb <= 16)))
      fprintf(stderr, "qsr run: note: --batch/--prompt change which linear variants run from the file's (gemv up "
                      "to 16 token rows per pass, gemm beyond)\n");
  }
  qsr_pool *pool = qsr_pool_new(threads);
  if (!pool) { fprintf(stderr, "qsr run: cannot start %d threads\n", threads); qsr_store_close(st); return 1; }
  if (!steps) steps = info.d.gen < DEFAULT_STEPS ? info.d.gen : DEFAULT_STEPS;
  struct qsr_run_opts o = { be, pool, batch, prompt, steps, mem_gb, reps, seed, !quiet && isatty(STDERR_FILENO), NULL };
  struct qsr_run_result r;
  struct qsr_result pred;
  rc = qsr_run_model(&m, &info.d, &o, &r, &err);
  int nthreads = qsr_pool_threads(pool);
  qsr_pool_free(pool);
  if (rc) { qsr_store_close(st); return fail(rc, err); }

  /* the prediction of the same run: batch and prompt as run, gen = steps timed */
  struct qsr_design d2 = info.d;
  d2.batch = r.batch;
  d2.prompt = r.prompt;
  d2.gen = r.steps > 0 ? r.steps : 1;
  if ((rc = qsr_eval(&dev, &m, &d2, NULL, &pred, &err))) { qsr_store_close(st); return fail(rc, err); }

  struct timespec ts1;
  clock_gettime(CLOCK_MONOTONIC, &ts1);
  struct report rp = { file, backend, &m, &dev, &d2, &r, &pred, nthreads, "", NULL,
                       (double)(ts1.tv_sec - ts0.tv_sec) + 1e-9 * (double)(ts1.tv_nsec - ts0.tv_nsec) };
  wq_label(qsr_run_main_wq(&m, &d2), rp.quant, sizeof rp.quant);
  if (st) {
    char desc[320];
    qsr_cli_cpu_desc(desc, sizeof desc, nthreads);
    rc = store(st, &rp, out, desc, &err);
    qsr_store_close(st);
    if (rc) return fail(rc, err);
    rp.db = out;
  }
  if (json) print_json(&rp);
  else print_table(&rp);
  return 0;
}
