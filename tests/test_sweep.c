/*
** test_sweep.c -- sweeps, storage, resume after kill -9, shards + merge,
** Pareto sets by hand, deploy round trip, and the bad-input paths.
** Runs the real ./qsr binary where a process must be killed.
*/
#include "kernels/qformat.h"
#include "sim/pareto.h"
#include "sim/sweep.h"
#include "spec/deploy.h"
#include "store/store.h"
#include "tests/test.h"
#include "util/err.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int suite_init(void) { return tst_tmpdir_begin("sweep"); }


/* Runs ./qsr with args; returns its exit status (or -1). */
static int run_qsr(const char *const *args) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", 1);
    if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
    execv("./qsr", (char *const *)args);
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long long scalar_ll(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  long long v = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  sqlite3_close(h);
  return v;
}

/* Rows in a.points not in b.points plus the reverse (0 = same rows). */
static long long diff_rows(const char *a, const char *b) {
  sqlite3 *h = NULL;
  long long v = -1;
  if (sqlite3_open_v2(a, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
  char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS b", b);
  if (sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h, "SELECT (SELECT count(*) FROM (SELECT * FROM main.points EXCEPT SELECT * FROM b.points))"
                              " + (SELECT count(*) FROM (SELECT * FROM b.points EXCEPT SELECT * FROM main.points))", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
      v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  sqlite3_free(sql);
  sqlite3_close(h);
  return v;
}

static void test_expand_and_eval(void) {
  static struct qsr_sweep sw;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_sweep_load("tests/data/sweep-small.yaml", &sw, &err), QSR_OK);
  CU_ASSERT_EQUAL(sw.total, 2u * 2 * 7 * 3 * 4 * 3 * 3);
  CU_ASSERT_EQUAL(qsr_sweep_chunks(&sw), (sw.total + QSR_SWEEP_CHUNK - 1) / QSR_SWEEP_CHUNK);
  /* mixed radix: the last axis varies fastest; device is the slowest digit */
  struct qsr_point p;
  qsr_sweep_eval(&sw, 0, &p);
  CU_ASSERT(p.valid && p.dev == 0 && p.model == 0 && p.d.batch == 1 && p.d.prompt == 128 && p.d.weights.bits == 16);
  qsr_sweep_eval(&sw, 1, &p);
  CU_ASSERT_EQUAL(p.d.prompt, 512);
  qsr_sweep_eval(&sw, 3, &p);
  CU_ASSERT_EQUAL(p.d.batch, 4);
  qsr_sweep_eval(&sw, sw.total - 1, &p);
  CU_ASSERT(p.dev == 1 && p.model == 1 && p.d.batch == 16 && p.d.weights.bits == 2 && p.d.kv == QSR_KVFMT_INT4);
  CU_ASSERT_EQUAL(p.d.route, QSR_ROUTE_MOE);  /* the model's own routing */
  /* a point equals qsr_eval of the same design */
  struct qsr_result r;
  qsr_sweep_eval(&sw, 123, &p);
  CU_ASSERT_EQUAL(qsr_eval(&sw.devs[p.dev], &sw.models[p.model], &p.d, &sw.quality, &r, NULL), QSR_OK);
  CU_ASSERT_DOUBLE_EQUAL(r.tpot_ms, p.r.tpot_ms, 0);
  qsr_sweep_free(&sw);
}

static void test_pareto_by_hand(void) {
  uint8_t f[8];
  /* 2-D: (1,5) (2,4) (3,3) on the front; (3,4) dominated by (3,3) and (2,4); (2,4) duplicated */
  double a[] = { 1, 5, 2, 4, 3, 3, 3, 4, 2, 4 };
  CU_ASSERT_EQUAL(qsr_pareto_front(a, 5, 2, f), 4u);
  CU_ASSERT(f[0] && f[1] && f[2] && !f[3] && f[4]);
  /* all dominated by one point */
  double b[] = { 1, 1, 2, 2, 3, 3, 1, 2 };
  CU_ASSERT_EQUAL(qsr_pareto_front(b, 4, 2, f), 1u);
  CU_ASSERT(f[0] && !f[1] && !f[2] && !f[3]);
  /* one point, and none */
  CU_ASSERT_EQUAL(qsr_pareto_front(b, 1, 2, f), 1u);
  CU_ASSERT_EQUAL(qsr_pareto_front(b, 0, 2, f), 0u);
  /* ties in the first objective: only the best second survives */
  double c[] = { 1, 3, 1, 2, 1, 2 };
  CU_ASSERT_EQUAL(qsr_pareto_front(c, 3, 2, f), 2u);
  CU_ASSERT(!f[0] && f[1] && f[2]);
  /* 3-D: a point worse in one objective but better in another survives */
  double d[] = { 1, 1, 9, 2, 2, 2, 3, 3, 3, 1, 1, 9 };
  CU_ASSERT_EQUAL(qsr_pareto_front(d, 4, 3, f), 3u);
  CU_ASSERT(f[0] && f[1] && !f[2] && f[3]);
  /* the knee of a convex 2-D front is its middle */
  double e[] = { 0, 10, 1, 3, 2, 2, 3, 1, 10, 0 };
  uint8_t fe[5];
  qsr_pareto_front(e, 5, 2, fe);
  CU_ASSERT_EQUAL(qsr_pareto_knee(e, 5, 2, fe), 2u);
  /* brute force agrees on random 2-, 3- and 4-D sets (with ties) */
  srand(7);
  for (int t = 0; t < 60; t++) {
    int K = 2 + t % 3, N = 60 + t * 40;
    double *r = malloc((size_t)N * (size_t)K * sizeof *r);
    uint8_t *fr = malloc((size_t)N);
    for (int i = 0; i < N * K; i++) r[i] = rand() % (t < 30 ? 10 : 1000);
    qsr_pareto_front(r, (size_t)N, K, fr);
    for (int i = 0; i < N; i++) {
      int dom = 0;
      for (int j = 0; j < N && !dom; j++) {
        int le = 1, lt = 0;
        for (int k = 0; k < K; k++) { if (r[j * K + k] > r[i * K + k]) le = 0; if (r[j * K + k] < r[i * K + k]) lt = 1; }
        dom = le && lt;
      }
      CU_ASSERT_EQUAL(fr[i], !dom);
    }
    free(r);
    free(fr);
  }
}

static void test_sweep_store_and_merge(void) {
  const char *whole = tst_tmp("whole.db"), *s0 = tst_tmp("s0.db"), *s1 = tst_tmp("s1.db"), *merged = tst_tmp("merged.db");
  const char *a1[] = { "./qsr", "sweep", "tests/data/sweep-small.yaml", "-o", whole, "--quiet", NULL };
  CU_ASSERT_EQUAL_FATAL(run_qsr(a1), 0);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT count(*) FROM points"), 3024);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT count(DISTINCT idx) FROM points"), 3024);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT points_done FROM sweeps"), 3024);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT finished_at IS NOT NULL FROM sweeps"), 1);
  CU_ASSERT(scalar_ll(whole, "SELECT count(*) FROM pareto") > 4);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT count(*) FROM pareto WHERE ok = 0"), 0);
  /* one knee per (device, model) that has a point meeting the constraints */
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT sum(knee) FROM pareto_members"),
                  scalar_ll(whole, "SELECT count(*) FROM (SELECT DISTINCT device, model FROM points WHERE ok)"));
  /* FP16 Mixtral fits nowhere here: no ok point has it */
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT count(*) FROM points WHERE ok AND model = 'mixtral-8x7b' AND quant_weights_bits = 16"), 0);
  /* running again changes nothing */
  CU_ASSERT_EQUAL(run_qsr(a1), 0);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT count(*) FROM points"), 3024);
  /* shards + merge = the whole */
  const char *b0[] = { "./qsr", "sweep", "tests/data/sweep-small.yaml", "-o", s0, "--shard", "0/2", "--quiet", NULL };
  const char *b1[] = { "./qsr", "sweep", "tests/data/sweep-small.yaml", "-o", s1, "--shard", "1/2", "--quiet", NULL };
  CU_ASSERT_EQUAL_FATAL(run_qsr(b0), 0);
  CU_ASSERT_EQUAL_FATAL(run_qsr(b1), 0);
  long long n0 = scalar_ll(s0, "SELECT count(*) FROM points"), n1 = scalar_ll(s1, "SELECT count(*) FROM points");
  CU_ASSERT(n0 > 0 && n1 > 0 && n0 + n1 == 3024);
  const char *m[] = { "./qsr", "merge", merged, s0, s1, NULL };
  CU_ASSERT_EQUAL_FATAL(run_qsr(m), 0);
  CU_ASSERT_EQUAL(diff_rows(whole, merged), 0);
  CU_ASSERT_EQUAL(scalar_ll(merged, "SELECT finished_at IS NOT NULL FROM sweeps"), 1);
  CU_ASSERT_EQUAL(scalar_ll(merged, "SELECT count(*) FROM pareto_members"), scalar_ll(whole, "SELECT count(*) FROM pareto_members"));
  /* merging a shard of another sweep file is refused */
  const char *other = tst_write_tmp("other.yaml", "sweep:\n  name: small\n  devices: [a100-80g]\n  models: [llama-7b]\n");
  const char *od = tst_tmp("other.db");
  const char *c1[] = { "./qsr", "sweep", other, "-o", od, "--quiet", NULL };
  CU_ASSERT_EQUAL(run_qsr(c1), 0);
  const char *c2[] = { "./qsr", "merge", merged, od, NULL };
  CU_ASSERT_EQUAL(run_qsr(c2), 1);
  CU_ASSERT_EQUAL(scalar_ll(merged, "SELECT count(*) FROM points"), 3024);  /* nothing lost */
  /* the same sweep name with a changed file: refused, nothing written */
  const char *c3[] = { "./qsr", "sweep", other, "-o", whole, "--quiet", NULL };
  CU_ASSERT_EQUAL(run_qsr(c3), 1);
  CU_ASSERT_EQUAL(scalar_ll(whole, "SELECT count(*) FROM points"), 3024);
  remove(other);
}

/* Kill a real sweep with SIGKILL mid-way, rerun: exactly the rows of an uninterrupted run. */
static void test_kill_and_resume(void) {
  const char *db = tst_tmp("killed.db"), *ref = tst_tmp("ref.db");
  const char *args[] = { "./qsr", "sweep", "tests/data/sweep-big.yaml", "-o", db, "-j", "2", "--quiet", NULL };
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", 1);
    if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
    execv("./qsr", (char *const *)args);
    _exit(127);
  }
  CU_ASSERT_FATAL(pid > 0);
  /* wait until some chunks are stored, then kill -9 */
  long long chunks = 0;
  for (int i = 0; i < 600 && chunks < 10; i++) {
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    chunks = scalar_ll(db, "SELECT count(*) FROM chunks");
    if (chunks < 0) chunks = 0;
  }
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  long long partial = scalar_ll(db, "SELECT count(*) FROM points");
  CU_ASSERT(chunks >= 10);
  CU_ASSERT(partial > 0 && partial < 311040);  /* killed mid-way */
  CU_ASSERT_EQUAL(run_qsr(args), 0);  /* resume */
  CU_ASSERT_EQUAL(scalar_ll(db, "SELECT count(*) FROM points"), 311040);
  const char *r[] = { "./qsr", "sweep", "tests/data/sweep-big.yaml", "-o", ref, "-j", "1", "--quiet", NULL };
  CU_ASSERT_EQUAL_FATAL(run_qsr(r), 0);
  CU_ASSERT_EQUAL(diff_rows(db, ref), 0);
  CU_ASSERT_EQUAL(scalar_ll(db, "SELECT count(*) FROM pareto_members"), scalar_ll(ref, "SELECT count(*) FROM pareto_members"));
}

static void test_bad_databases(void) {
  /* a corrupt file: refused, left as it was */
  const char *bad = tst_write_tmp("corrupt.db", "this is not a database, it is a text file of some length............\n");
  const char *a[] = { "./qsr", "sweep", "tests/data/sweep-small.yaml", "-o", bad, "--quiet", NULL };
  CU_ASSERT_EQUAL(run_qsr(a), 1);
  FILE *f = fopen(bad, "r");
  char line[32] = "";
  CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, f));
  fclose(f);
  CU_ASSERT_EQUAL(strncmp(line, "this is not", 11), 0);
  remove(bad);
  /* a read-only database: refused, nothing lost (skipped as root, who may write anyway) */
  if (geteuid() != 0) {
    const char *ro = tst_tmp("ro.db");
    const char *b[] = { "./qsr", "sweep", "tests/data/sweep-small.yaml", "-o", ro, "--quiet", NULL };
    CU_ASSERT_EQUAL(run_qsr(b), 0);
    chmod(ro, 0444);
    const char *c[] = { "./qsr", "sweep", tst_write_tmp("s2.yaml", "sweep:\n  name: s2\n  devices: [l4]\n  models: [llama-7b]\n"), "-o", ro, "--quiet", NULL };
    CU_ASSERT_EQUAL(run_qsr(c), 1);
    CU_ASSERT_EQUAL(scalar_ll(ro, "SELECT count(*) FROM points"), 3024);
  }
  /* pareto / plot / deploy on a missing database */
  const char *p[] = { "./qsr", "pareto", tst_tmp("missing.db"), NULL };
  CU_ASSERT_EQUAL(run_qsr(p), 1);
}

static void test_sweep_file_errors(void) {
  static struct qsr_sweep sw;
  char *err = NULL;
  const char *f = tst_write_tmp("bad.yaml", "sweep:\n  name: x\n  devices: [a100-80g]\n  models: [llama-7b]\n  axes:\n    quant.weights.bitz: [4]\n");
  CU_ASSERT_EQUAL(qsr_sweep_load(f, &sw, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, ":6:5: axes.quant.weights.bitz: unknown key; known: quant.weights.bits"));
  free(err); err = NULL;
  f = tst_write_tmp("bad.yaml", "sweep:\n  name: x\n  devices: [a100-80g]\n  models: [llama-7b]\n  axes:\n    quant.weights.bits: [4, 1]\n");
  CU_ASSERT_EQUAL(qsr_sweep_load(f, &sw, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "1 out of range"));
  free(err); err = NULL;
  f = tst_write_tmp("bad.yaml", "sweep:\n  name: x\n  devices: [tpu]\n  models: [llama-7b]\n");
  CU_ASSERT_EQUAL(qsr_sweep_load(f, &sw, &err), QSR_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "unknown device 'tpu'"));
  free(err); err = NULL;
  f = tst_write_tmp("bad.yaml", "sweep:\n  name: x\n  devices: [l4]\n  models: [llama-7b]\n  objectives: [tpot_ms, speed]\n");
  CU_ASSERT_EQUAL(qsr_sweep_load(f, &sw, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "unknown metric 'speed'"));
  free(err); err = NULL;
  f = tst_write_tmp("bad.yaml", "sweep:\n  name: x\n  devices: [l4]\n  models: [llama-7b]\n  axes:\n    attention.local: { from: 0, to: 1, step: 0.25 }\n"
                                "  constraints: { max_tpot_ms: -1 }\n");
  CU_ASSERT_EQUAL(qsr_sweep_load(f, &sw, &err), QSR_ERR_CONFIG);
  free(err); err = NULL;
  /* a range gives its values; invalid designs become rows with a reason */
  f = tst_write_tmp("ok.yaml", "sweep:\n  name: x\n  devices: [l4]\n  models: [llama-7b]\n  axes:\n    attention.local: { from: 0, to: 1, step: 0.25 }\n"
                               "    attention.topk: [0, 0.5]\n");
  CU_ASSERT_EQUAL_FATAL(qsr_sweep_load(f, &sw, &err), QSR_OK);
  CU_ASSERT_EQUAL(sw.total, 10u);
  struct qsr_point p;
  qsr_sweep_eval(&sw, 9, &p);  /* local 1 + topk 0.5 > 1 */
  CU_ASSERT_FALSE(p.valid);
  CU_ASSERT_PTR_NOT_NULL(strstr(p.why, "exceed 1"));
  qsr_sweep_free(&sw);
  remove(f);
}

static void test_deploy_round_trip(void) {
  const char *db = tst_tmp("whole.db"), *out = tst_tmp("deploy/llama.yaml");
  const char *a[] = { "./qsr", "deploy", db, "--device", "orin-nx-16g", "--model", "llama-7b", "--pick", "knee", "-o", out, NULL };
  CU_ASSERT_EQUAL_FATAL(run_qsr(a), 0);
  struct qsr_deploy_info info;
  char *err = NULL;
  int rc = qsr_deploy_check(out, &info, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  CU_ASSERT_STRING_EQUAL(info.model, "llama-7b");
  CU_ASSERT_EQUAL(info.layers, 32);
  struct qsr_device dev;
  struct qsr_model m;
  struct qsr_result r;
  tst_device("orin-nx-16g", &dev);
  tst_model("llama-7b", &m);
  CU_ASSERT_EQUAL(qsr_eval(&dev, &m, &info.d, NULL, &r, NULL), QSR_OK);
  CU_ASSERT_DOUBLE_EQUAL(r.tpot_ms, info.tpot_ms, info.tpot_ms * 1e-5);
  CU_ASSERT_DOUBLE_EQUAL(r.mem_peak_mb, info.mem_peak_mb, info.mem_peak_mb * 1e-5);
  /* every pick works and respects its caps */
  const char *b[] = { "./qsr", "deploy", db, "--device", "a100-80g", "--model", "mixtral-8x7b", "--pick", "min-tpot",
                      "--max-quality-loss", "0.05", "-o", tst_tmp("m.yaml"), NULL };
  CU_ASSERT_EQUAL(run_qsr(b), 0);
  CU_ASSERT_EQUAL(qsr_deploy_check(tst_tmp("m.yaml"), &info, &err), QSR_OK);
  CU_ASSERT(info.quality_loss <= 0.05);
  const char *c[] = { "./qsr", "deploy", db, "--device", "a100-80g", "--model", "llama-7b", "--max-mem-mb", "1", NULL };
  CU_ASSERT_EQUAL(run_qsr(c), 2);  /* nothing that small */
  /* a tampered file is refused with its line */
  FILE *fi = fopen(out, "r"), *fo = fopen(tst_tmp("bad.yaml"), "w");
  char line[512];
  while (fgets(line, sizeof line, fi)) {
    char *k = strstr(line, "decode: gemv_");
    if (k && !strstr(line, "lm_head")) { fputs("        attn_qkv:  { format: int, bits: 7, group: 128, prefill: gemm_int, decode: gemv_int }\n", fo); continue; }
    fputs(line, fo);
  }
  fclose(fi);
  fclose(fo);
  free(err); err = NULL;
  CU_ASSERT_EQUAL(qsr_deploy_check(tst_tmp("bad.yaml"), &info, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "bad.yaml:") && strstr(err, "7-bit"));
  free(err);
}

static void test_plot_without_gnuplot(void) {
  const char *db = tst_tmp("whole.db"), *png = tst_tmp("p.png");
  setenv("QSR_GNUPLOT", "/nonexistent/gnuplot", 1);
  const char *a[] = { "./qsr", "plot", db, "--kind", "pareto", "-o", png, NULL };
  CU_ASSERT_EQUAL(run_qsr(a), 1);
  unsetenv("QSR_GNUPLOT");
  struct stat st;
  CU_ASSERT_EQUAL(stat(tst_tmp("p.dat"), &st), 0);  /* data and script are still written */
  CU_ASSERT(st.st_size > 100);
  CU_ASSERT_EQUAL(stat(tst_tmp("p.gp"), &st), 0);
}

void tst_register_sweep(void) {
  CU_pSuite s = CU_add_suite("sweep", suite_init, tst_tmpdir_end);
  CU_add_test(s, "expansion and evaluation", test_expand_and_eval);
  CU_add_test(s, "pareto sets by hand", test_pareto_by_hand);
  CU_add_test(s, "store, rerun, shards + merge", test_sweep_store_and_merge);
  CU_add_test(s, "kill -9 and resume", test_kill_and_resume);
  CU_add_test(s, "corrupt and read-only databases", test_bad_databases);
  CU_add_test(s, "sweep file errors", test_sweep_file_errors);
  CU_add_test(s, "deploy round trip", test_deploy_round_trip);
  CU_add_test(s, "plot without gnuplot", test_plot_without_gnuplot);
}
