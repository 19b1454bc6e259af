/*
** cmd_bench.c -- `qsr bench`: time every kernel variant over a grid of
** shapes on this machine and store the rows in the measurements table
** (store/measure.h), with the host's copy bandwidth and peak FMA rate.
*/
#include "cli/cli.h"
#include "kernels/cpu/kbench.h"
#include "store/measure.h"
#include "store/store.h"
#include "util/err.h"
#include "util/version.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr bench [--backend cpu] [-o DB] [-j N] [--quick] [--device NAME] [--budget S] [--quiet]\n\n"
          "Times the C kernels (kernels/README.md) over a grid of shapes -- the bundled models' linear\n"
          "layers in every weight format at 1..64 tokens, decode and prefill attention per head type and\n"
          "KV format at 256..4096 tokens of context, the MoE router and grouped experts, norms,\n"
          "activations and embedding -- plus this host's copy bandwidth (memcpy) and peak fp32 FMA rate\n"
          "(fma_peak). Each shape: one warm-up, then repetitions until the median moves < 2%%; operands\n"
          "smaller than twice the last-level cache are evicted between repetitions. Rows go to the\n"
          "`measurements` table of DB (docs/results-db.md), each marked split = fit or holdout (the\n"
          "shapes qsr validate keeps out of qsr calibrate).\n\n"
          "  --backend B   cpu (the C kernels). The CUDA kernels are timed by the GPU validation run.\n"
          "  -o DB         database (default results/bench-<device>.db; appended to)\n"
          "  -j N          threads (default: all online CPUs)\n"
          "  --quick       tinyllama-1.1b shapes and 4 weight formats only (about a minute on 2 cores)\n"
          "  --device NAME the device these rows describe (default host)\n"
          "  --budget S    seconds per shape at most (default 0.5)\n"
          "  --quiet       no progress lines\n");
}

struct sink {
  sqlite3 *db;
  const char *path;
  struct qsr_meas base;      /* device, backend, rev... */
  char **err;
  int rows;
  double copy_gbps, fma_gflops;
};

static int put_row(void *ud, const struct qsr_kbench_row *r) {
  struct sink *s = ud;
  struct qsr_meas m = s->base;
  m.kernel = r->kernel;
  m.op_class = r->op_class;
  m.wfmt = r->wfmt;
  m.bits = r->bits;
  m.grp = r->group;
  m.kvfmt = r->kvfmt;
  m.head_type = r->head_type;
  m.tokens = r->tokens;
  m.rows = r->rows;
  m.cols = r->cols;
  m.ctx = r->ctx;
  m.heads = r->heads;
  m.kv_heads = r->kv_heads;
  m.head_dim = r->head_dim;
  m.win = r->window;
  m.topk = r->topk;
  m.experts = r->experts;
  m.top_k = r->top_k;
  m.flops = r->flops;
  m.vec_ops = r->vec_ops;
  m.bytes = r->bytes;
  m.reps = r->reps;
  m.median_us = r->median_us;
  m.p10_us = r->p10_us;
  m.p90_us = r->p90_us;
  m.spread_pct = r->median_us > 0 ? 100.0 * (r->p90_us - r->p10_us) / r->median_us : 0;
  m.split = r->split_holdout ? "holdout" : "fit";
  if (!strcmp(r->kernel, "memcpy")) s->copy_gbps = r->bytes / (r->median_us * 1e3);
  if (!strcmp(r->kernel, "fma_peak")) s->fma_gflops = r->flops / (r->median_us * 1e3);
  s->rows++;
  return qsr_measure_put(s->db, s->path, &m, s->err);
}

/* qsr version + the git revision of the source tree, when git can tell. */
void qsr_cli_revision(char *buf, size_t n) {
  char rev[64] = "";
  FILE *p = popen("git rev-parse --short HEAD 2>/dev/null", "r");
  if (p) {
    if (!fgets(rev, sizeof rev, p)) rev[0] = 0;
    pclose(p);
  }
  rev[strcspn(rev, "\n")] = 0;
  snprintf(buf, n, "%s%s%s", QSR_VERSION, rev[0] ? "+" : "", rev);
}

int qsr_cmd_bench(int argc, char **argv) {
  const char *out = NULL, *device = "host", *backend = "cpu";
  int threads = 0, quick = 0, quiet = 0;
  double budget = 0.5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--quick")) quick = 1;
    else if (!strcmp(a, "--quiet")) quiet = 1;
    else if (v && !strcmp(a, "-o")) { out = v; i++; }
    else if (v && !strcmp(a, "--device")) { device = v; i++; }
    else if (v && !strcmp(a, "--backend")) { backend = v; i++; }
    else if (v && !strcmp(a, "-j")) { threads = atoi(v); i++; if (threads < 1) { fprintf(stderr, "qsr bench: -j %s: give a positive thread count\n", v); return 2; } }
    else if (v && !strcmp(a, "--budget")) { budget = atof(v); i++; if (!(budget > 0)) { fprintf(stderr, "qsr bench: --budget %s: give seconds > 0\n", v); return 2; } }
    else { fprintf(stderr, "qsr bench: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
  }
  if (strcmp(backend, "cpu")) {
    fprintf(stderr, "qsr bench: --backend %s: this build times the C kernels (--backend cpu); the CUDA "
                    "kernels are timed by the GPU validation run\n", backend);
    return 2;
  }
  char path[512], desc[320], rev[96], drv[160];
  if (!out) { snprintf(path, sizeof path, "results/bench-%s.db", device); out = path; }
  qsr_pool *pool = qsr_pool_new(threads);
  if (!pool) { fprintf(stderr, "qsr bench: cannot start %d threads\n", threads); return 1; }
  struct utsname u;
  snprintf(drv, sizeof drv, "%s", uname(&u) == 0 ? u.release : "unknown kernel");
  qsr_cli_cpu_desc(desc, sizeof desc, qsr_pool_threads(pool));
  qsr_cli_revision(rev, sizeof rev);

  char *err = NULL;
  qsr_store *st = NULL;
  int rc = qsr_store_open(out, 0, &st, &err);
  struct sink s = { 0 };
  if (!rc) {
    s.db = qsr_store_db(st);
    s.path = out;
    s.err = &err;
    qsr_meas_clear(&s.base);
    s.base.backend = backend;
    s.base.device = device;
    s.base.device_desc = desc;
    s.base.driver = drv;
    s.base.threads = qsr_pool_threads(pool);
    s.base.rev = rev;
    s.base.source = "qsr bench";
    rc = qsr_measure_schema(s.db, out, &err);
  }
  /* one transaction: an interrupted run leaves the database as it was */
  if (!rc && sqlite3_exec(s.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    rc = qsr_errf(&err, QSR_ERR_DB, "%s: %s", out, sqlite3_errmsg(s.db));
  double t0 = (double)time(NULL);
  if (!rc) {
    struct qsr_kbench_opts o = { pool, quick, budget, 0, !quiet };
    rc = qsr_kbench_run(&o, put_row, &s);
    if (rc == QSR_ERR_NOMEM && !err) err = strdup("out of memory for a benchmark buffer");
    if (sqlite3_exec(s.db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !rc)
      rc = qsr_errf(&err, QSR_ERR_DB, "%s: commit: %s", out, sqlite3_errmsg(s.db));
  }
  if (!rc)
    printf("qsr bench: %d rows -> %s (measurements, device '%s', %s, %d threads, %.0f s): "
           "copy %.1f GB/s, fp32 FMA peak %.1f GFLOP/s\n",
           s.rows, out, device, desc, qsr_pool_threads(pool), (double)time(NULL) - t0, s.copy_gbps, s.fma_gflops);
  qsr_store_close(st);
  qsr_pool_free(pool);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
