/*
** test_simstore.c -- resource fluctuation traces (YAML, step function) and
** the serving-simulation tables of the results database: a round trip
** checked with plain SQL, NULLs for "none" values, bad and read-only
** databases, and `qsr plot --kind cdf|timeline` on the stored runs.
*/
#include "sim/fluct.h"
#include "store/simstore.h"
#include "store/store.h"
#include "tests/test.h"
#include "util/err.h"
#include "util/version.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIME_TOL 1e-12  /* s: exact step times (no arithmetic on them) */

static int suite_init(void) { return tst_tmpdir_begin("simstore"); }


static const char *write_file(const char *name, const char *text) {
  const char *path = tst_tmp(name);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* ---- fluctuation files --------------------------------------------------- */

static void test_fluct_load(void) {
  static struct qsr_fluct f;
  char *err = NULL;
  const char *path = write_file("thermal.yaml",
                                "# a comment\n"
                                "fluctuation:\n"
                                "  description: \"test: clocks step down\"\n"
                                "  period_s: 0\n"
                                "  points:\n"
                                "    - {t_s: 0, bw_scale: 1.0, compute_scale: 1.0}\n"
                                "    - {t_s: 120, bw_scale: 0.8, compute_scale: 0.7, mem_gb: 12}\n"
                                "    - t_s: 300.5\n"
                                "      bw_scale: 0.5\n"
                                "      compute_scale: 4\n");
  int rc = qsr_fluct_load(path, &f, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  CU_ASSERT_PTR_NULL(err);
  CU_ASSERT_STRING_EQUAL(f.name, "thermal");
  CU_ASSERT_STRING_EQUAL(f.desc, "test: clocks step down");
  CU_ASSERT_EQUAL(f.period_s, 0);
  CU_ASSERT_EQUAL_FATAL(f.n, 3);
  CU_ASSERT_EQUAL(f.pts[0].t_s, 0);
  CU_ASSERT_EQUAL(f.pts[0].bw_scale, 1.0);
  CU_ASSERT_EQUAL(f.pts[0].mem_gb, -1);
  CU_ASSERT_EQUAL(f.pts[1].t_s, 120);
  CU_ASSERT_EQUAL(f.pts[1].bw_scale, 0.8);
  CU_ASSERT_EQUAL(f.pts[1].compute_scale, 0.7);
  CU_ASSERT_EQUAL(f.pts[1].mem_gb, 12);
  CU_ASSERT_EQUAL(f.pts[2].t_s, 300.5);
  CU_ASSERT_EQUAL(f.pts[2].compute_scale, 4);
  CU_ASSERT_EQUAL(f.pts[2].mem_gb, -1);

  /* the bundled files resolve by name and load */
  static const struct { const char *name; int n; double period; } bundled[] = {
    { "orin-thermal", 4, 0 }, { "orin-powermode", 2, 0 }, { "corun", 3, 600 } };
  for (int i = 0; i < 3; i++) {
    char p[512];
    rc = qsr_spec_resolve("fluctuation", bundled[i].name, p, sizeof p, &err);
    if (!rc) rc = qsr_fluct_load(p, &f, &err);
    if (rc) fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
    CU_ASSERT_STRING_EQUAL(f.name, bundled[i].name);
    CU_ASSERT_EQUAL(f.n, bundled[i].n);
    CU_ASSERT_EQUAL(f.period_s, bundled[i].period);
    CU_ASSERT(strlen(f.desc) > 20);
    CU_ASSERT_EQUAL(f.pts[0].bw_scale, 1.0);
    CU_ASSERT_EQUAL(f.pts[0].compute_scale, 1.0);
    for (int k = 1; k < f.n; k++) CU_ASSERT(f.pts[k].t_s > f.pts[k - 1].t_s);
  }
  /* orin-powermode: 15W = (3/8) x 420.75/1300.5 compute, 2133/3199 EMC */
  char p[512];
  CU_ASSERT_EQUAL_FATAL(qsr_spec_resolve("fluctuation", "orin-powermode", p, sizeof p, &err), QSR_OK);
  CU_ASSERT_EQUAL_FATAL(qsr_fluct_load(p, &f, &err), QSR_OK);
  CU_ASSERT_DOUBLE_EQUAL(f.pts[1].compute_scale, 3.0 / 8 * 420.75 / 1300.5, 0.001);
  CU_ASSERT_DOUBLE_EQUAL(f.pts[1].bw_scale, 2133.0 / 3199, 0.001);
  /* an unknown name says how to list the known ones */
  CU_ASSERT_EQUAL(qsr_spec_resolve("fluctuation", "no-such-trace", p, sizeof p, &err), QSR_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "qsr list fluctuation"));
  free(err);
}

static void set_pts(struct qsr_fluct *f, double period, int n, const double *t) {
  memset(f, 0, sizeof *f);
  f->period_s = period;
  f->n = n;
  for (int i = 0; i < n; i++) {
    f->pts[i].t_s = t[i];
    f->pts[i].bw_scale = 1.0 - 0.1 * i;   /* tells the segments apart */
    f->pts[i].compute_scale = 1;
    f->pts[i].mem_gb = -1;
  }
}

#define SEG(f, t) ((int)(qsr_fluct_at(&(f), (t)) - (f).pts))

static void test_fluct_at_next(void) {
  static struct qsr_fluct f;
  const double t3[] = { 0, 10, 25 };
  /* held: the last point lasts for ever */
  set_pts(&f, 0, 3, t3);
  CU_ASSERT_EQUAL(SEG(f, -1), 0);
  CU_ASSERT_EQUAL(SEG(f, 0), 0);
  CU_ASSERT_EQUAL(SEG(f, 9.999), 0);
  CU_ASSERT_EQUAL(SEG(f, 10), 1);
  CU_ASSERT_EQUAL(SEG(f, 24.9), 1);
  CU_ASSERT_EQUAL(SEG(f, 25), 2);
  CU_ASSERT_EQUAL(SEG(f, 1e7), 2);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 0), 10, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 9.5), 10, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 10), 25, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 12), 25, TIME_TOL);
  CU_ASSERT(isinf(qsr_fluct_next(&f, 25)));
  CU_ASSERT(isinf(qsr_fluct_next(&f, 1e9)));
  /* periodic: t is taken modulo 60 */
  set_pts(&f, 60, 3, t3);
  CU_ASSERT_EQUAL(SEG(f, 59.9), 2);
  CU_ASSERT_EQUAL(SEG(f, 60), 0);
  CU_ASSERT_EQUAL(SEG(f, 65), 0);
  CU_ASSERT_EQUAL(SEG(f, 70), 1);
  CU_ASSERT_EQUAL(SEG(f, 85), 2);
  CU_ASSERT_EQUAL(SEG(f, 119.99), 2);
  CU_ASSERT_EQUAL(SEG(f, 120), 0);
  CU_ASSERT_EQUAL(SEG(f, 6000 + 12), 1);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 0), 10, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 30), 60, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 59.99), 60, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 60), 70, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 85), 120, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(qsr_fluct_next(&f, 3 * 60 + 25), 240, TIME_TOL);
  /* one point never changes, periodic or not */
  set_pts(&f, 60, 1, t3);
  CU_ASSERT(isinf(qsr_fluct_next(&f, 5)));
  CU_ASSERT_EQUAL(SEG(f, 1234.5), 0);
  /* stepping from change to change with periods and times that binary
  ** fractions cannot hold: always forward, always the next segment */
  const double odd[] = { 0, 0.1, 0.3 };
  set_pts(&f, 0.7, 3, odd);
  double t = 0;
  int bad_order = 0, bad_seg = 0;
  for (int i = 1; i <= 30000; i++) {
    double nx = qsr_fluct_next(&f, t);
    bad_order += !(nx > t);
    bad_seg += SEG(f, nx) != i % 3;
    t = nx;
  }
  CU_ASSERT_EQUAL(bad_order, 0);
  CU_ASSERT_EQUAL(bad_seg, 0);
  CU_ASSERT_DOUBLE_EQUAL(t, 10000 * 0.7, 1e-6);
}

/* Loads a fluctuation text; returns rc and the message in msg. */
static int fluct_text(const char *text, char *msg, size_t cap) {
  static struct qsr_fluct f;
  const char *path = write_file("bad.yaml", text);
  char *err = NULL;
  int rc = qsr_fluct_load(path, &f, &err);
  snprintf(msg, cap, "%s", err ? err : "");
  CU_ASSERT(rc == QSR_OK ? err == NULL : err != NULL && !strchr(err, '\n') && strstr(err, "bad.yaml:"));
  free(err);
  return rc;
}

static void test_fluct_bad(void) {
  char m[512];
  /* unsorted t_s: points at the third point's t_s, line 5 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, bw_scale: 1, compute_scale: 1}\n"
                             "    - {t_s: 100, bw_scale: 1, compute_scale: 1}\n"
                             "    - {t_s: 50, bw_scale: 1, compute_scale: 1}\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "bad.yaml:5:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "points[2].t_s"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "ascending"));
  /* an unknown key in a point, line 4 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, bw_scale: 1, compute_scale: 1}\n"
                             "    - {t_s: 10, bw: 0.5, compute_scale: 1}\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "bad.yaml:4:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "points[1].bw: unknown key"));
  /* an unknown key in the section, line 2 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  speed: 3\n  points:\n    - {t_s: 0, bw_scale: 1, compute_scale: 1}\n", m, sizeof m),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "bad.yaml:2:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "speed: unknown key"));
  /* scale 0, line 3 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, bw_scale: 1, compute_scale: 0}\n", m, sizeof m),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "bad.yaml:3:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "points[0].compute_scale"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "> 0"));
  /* scale above 4 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, bw_scale: 4.5, compute_scale: 1}\n", m, sizeof m),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "out of range"));
  /* first point not at 0 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 5, bw_scale: 1, compute_scale: 1}\n", m, sizeof m),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "t_s 0"));
  /* a scale missing */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, bw_scale: 1}\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "missing compute_scale"));
  /* mem_gb 0 */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, bw_scale: 1, compute_scale: 1, mem_gb: 0}\n", m, sizeof m),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "points[0].mem_gb"));
  /* a point at or past the period */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  period_s: 60\n  points:\n    - {t_s: 0, bw_scale: 1, compute_scale: 1}\n"
                             "    - {t_s: 60, bw_scale: 1, compute_scale: 0.5}\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "bad.yaml:5:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "period_s"));
  /* no points; points not a list; a duplicate key */
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  period_s: 0\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "points"));
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points: []\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points: {t_s: 0}\n", m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_EQUAL(fluct_text("fluctuation:\n  points:\n    - {t_s: 0, t_s: 1, bw_scale: 1, compute_scale: 1}\n", m, sizeof m),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "duplicate"));
  /* more than QSR_FLUCT_MAX points */
  char *big = malloc(64 * (QSR_FLUCT_MAX + 2) + 64);
  size_t u = (size_t)sprintf(big, "fluctuation:\n  points:\n");
  for (int i = 0; i <= QSR_FLUCT_MAX; i++) u += (size_t)sprintf(big + u, "    - {t_s: %d, bw_scale: 1, compute_scale: 1}\n", i);
  CU_ASSERT_EQUAL(fluct_text(big, m, sizeof m), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(m, "more than"));
  free(big);
  /* a missing file */
  static struct qsr_fluct f;
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_fluct_load(tst_tmp("missing.yaml"), &f, &err), QSR_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "missing.yaml"));
  free(err);
}

/* ---- the simulation tables ---------------------------------------------- */

static long long q_ll(sqlite3 *db, const char *sql) {
  sqlite3_stmt *q = NULL;
  long long v = -999;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
  else fprintf(stderr, "\n  %s: %s\n", sql, sqlite3_errmsg(db));
  sqlite3_finalize(q);
  return v;
}

static double q_f(sqlite3 *db, const char *sql) {
  sqlite3_stmt *q = NULL;
  double v = NAN;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_double(q, 0);
  else fprintf(stderr, "\n  %s: %s\n", sql, sqlite3_errmsg(db));
  sqlite3_finalize(q);
  return v;
}

static void q_text(sqlite3 *db, const char *sql, char *out, size_t cap) {
  sqlite3_stmt *q = NULL;
  out[0] = '\0';
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
    snprintf(out, cap, "%s", sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
}

static void fill_requests(struct qsr_req_rec *r) {
  memset(r, 0, 3 * sizeof *r);
  for (int i = 0; i < 3; i++) {
    r[i].id = i;
    r[i].arrival_s = 0.5 * i;
    r[i].admit_s = r[i].arrival_s + 0.01 * (i + 1);
    r[i].first_token_s = r[i].admit_s + 0.1;
    r[i].finish_s = r[i].first_token_s + 2.0;
    r[i].prompt = 100 + i;
    r[i].output = 64;
    r[i].cached_tokens = i == 2 ? 32 : 0;
    r[i].ttft_ms = (r[i].first_token_s - r[i].arrival_s) * 1e3;
    r[i].tpot_ms = 2000.0 / 63;
    r[i].e2e_ms = (r[i].finish_s - r[i].arrival_s) * 1e3;
    r[i].queue_ms = (r[i].admit_s - r[i].arrival_s) * 1e3;
    r[i].quality_loss = 0.01 * i;
    r[i].met_slo = i != 1;
  }
}

/* Writes sim.db: two simulations, the first with requests, samples and a summary. */
static const char *make_sim_db(void) {
  const char *path = tst_tmp("sim.db");
  char side[600];
  remove(path);                     /* a fresh file each time */
  snprintf(side, sizeof side, "%s-wal", path);
  remove(side);
  snprintf(side, sizeof side, "%s-shm", path);
  remove(side);
  qsr_store *st = NULL;
  char *err = NULL;
  int rc = qsr_store_open(path, 0, &st, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  struct qsr_sim_meta m = { .name = NULL, .device = "orin-agx-64g", .model = "mixtral-8x7b", .design = "ablation-qsr",
                            .trace = "azure-conv", .routing = NULL, .fluctuation = "orin-thermal", .policy = "static",
                            .batching = "continuous", .args = "qsr simulate -d orin-agx-64g ...", .rate_scale = 1.5,
                            .slo_ttft_ms = 500, .slo_tpot_ms = -1, .max_batch = 16 };
  int64_t id = -1;
  rc = qsr_store_begin_sim(st, &m, &id, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  CU_ASSERT_EQUAL(id, 1);
  struct qsr_req_rec r[3];
  fill_requests(r);
  CU_ASSERT_EQUAL(qsr_store_put_sim_requests(st, id, r, 3, &err), QSR_OK);
  struct qsr_sample s[2];
  memset(s, 0, sizeof s);
  s[0] = (struct qsr_sample){ .t_s = 0, .queued = 2, .running = 1, .kv_mb = 10, .mem_used_mb = 30000, .mem_avail_mb = 65400,
                              .tok_s = 0, .bw_scale = 1, .compute_scale = 1, .level = 0, .hit_rate = -1 };
  s[1] = (struct qsr_sample){ .t_s = 1, .queued = 0, .running = 3, .kv_mb = 42.5, .mem_used_mb = 30100, .mem_avail_mb = 65400,
                              .tok_s = 95.5, .bw_scale = 0.8, .compute_scale = 0.7, .level = 1, .hit_rate = 0.75 };
  CU_ASSERT_EQUAL(qsr_store_put_sim_samples(st, id, s, 2, &err), QSR_OK);
  struct qsr_serve_summary sum;
  memset(&sum, 0, sizeof sum);
  sum.requests = 3;
  sum.rejected = 1;
  sum.tokens_in = 303;
  sum.tokens_out = 192;
  sum.sim_s = 3.11;
  sum.throughput_tok_s = 192 / 3.11;
  sum.slo_met_frac = 2.0 / 3;
  sum.ttft_ms = (struct qsr_pct){ 120, 130, 130, 130, 120 };
  sum.tpot_ms.p99 = 31.7;
  sum.e2e_ms.max = 2130;
  sum.queue_ms.mean = 20;
  sum.e2e_std_ms = 8.2;
  sum.peak_mem_mb = 30100;
  sum.expert_cache_hit_rate = -1;
  sum.retention = 0.62;
  sum.offload_gb = NAN;             /* not finite: NULL */
  sum.n_levels = 2;
  sum.level_share[0] = 0.75;
  sum.level_share[1] = 0.25;
  rc = qsr_store_finish_sim(st, id, &sum, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  CU_ASSERT_EQUAL(rc, QSR_OK);
  /* a second, unfinished run with a name and the "none" values */
  struct qsr_sim_meta m2 = { .name = "it's named", .rate_scale = -1, .slo_ttft_ms = NAN, .slo_tpot_ms = 50, .max_batch = -1 };
  int64_t id2 = -1;
  CU_ASSERT_EQUAL(qsr_store_begin_sim(st, &m2, &id2, &err), QSR_OK);
  CU_ASSERT_EQUAL(id2, 2);
  CU_ASSERT_PTR_NULL(err);
  /* a batch holding a request id already stored: refused as a whole */
  struct qsr_req_rec again[2];
  fill_requests(r);
  again[0] = r[0];
  again[0].id = 7;
  again[1] = r[1];
  CU_ASSERT_EQUAL(qsr_store_put_sim_requests(st, id, again, 2, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "sim.db") && strstr(err, "request 1") && !strchr(err, '\n'));
  free(err);
  err = NULL;
  /* rows of an unknown simulation */
  CU_ASSERT_EQUAL(qsr_store_put_sim_requests(st, 99, r, 1, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "FOREIGN KEY"));
  free(err);
  err = NULL;
  CU_ASSERT_EQUAL(qsr_store_put_sim_samples(st, 99, s, 1, &err), QSR_ERR_DB);
  free(err);
  err = NULL;
  /* finishing an unknown simulation */
  CU_ASSERT_EQUAL(qsr_store_finish_sim(st, 99, &sum, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "no simulation with id 99"));
  free(err);
  err = NULL;
  /* the store still works after the failures (no transaction left open) */
  CU_ASSERT_EQUAL(qsr_store_put_sim_samples(st, id2, s, 1, &err), QSR_OK);
  qsr_store_close(st);
  return path;
}

static void test_sim_round_trip(void) {
  const char *path = make_sim_db();
  sqlite3 *db = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  char t[128];
  /* simulations: what was run */
  CU_ASSERT_EQUAL(q_ll(db, "SELECT count(*) FROM simulations"), 2);
  q_text(db, "SELECT device || ' ' || model || ' ' || design || ' ' || trace || ' ' || fluctuation || ' ' || policy || ' ' || batching"
             " FROM simulations WHERE id = 1", t, sizeof t);
  CU_ASSERT_STRING_EQUAL(t, "orin-agx-64g mixtral-8x7b ablation-qsr azure-conv orin-thermal static continuous");
  CU_ASSERT_EQUAL(q_ll(db, "SELECT count(*) FROM simulations WHERE id = 1 AND name IS NULL AND routing IS NULL"), 1);
  q_text(db, "SELECT args FROM simulations WHERE id = 1", t, sizeof t);
  CU_ASSERT_STRING_EQUAL(t, "qsr simulate -d orin-agx-64g ...");
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT rate_scale FROM simulations WHERE id = 1"), 1.5, 1e-12);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT max_batch FROM simulations WHERE id = 1"), 16);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT slo_ttft_ms FROM simulations WHERE id = 1"), 500, 1e-12);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT slo_tpot_ms IS NULL FROM simulations WHERE id = 1"), 1);
  q_text(db, "SELECT qsr_version FROM simulations WHERE id = 1", t, sizeof t);
  CU_ASSERT_STRING_EQUAL(t, QSR_VERSION);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT started_at LIKE '20__-__-__T__:__:__Z' AND finished_at >= started_at FROM simulations WHERE id = 1"), 1);
  /* the summary */
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT requests FROM simulations WHERE id = 1"), 3, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT rejected + tokens_in + tokens_out FROM simulations WHERE id = 1"), 1 + 303 + 192, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT throughput_tok_s FROM simulations WHERE id = 1"), 192 / 3.11, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT ttft_ms_p50 + ttft_ms_p90 FROM simulations WHERE id = 1"), 250, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT tpot_ms_p99 FROM simulations WHERE id = 1"), 31.7, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT e2e_ms_max FROM simulations WHERE id = 1"), 2130, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT queue_ms_mean FROM simulations WHERE id = 1"), 20, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT e2e_std_ms FROM simulations WHERE id = 1"), 8.2, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT retention FROM simulations WHERE id = 1"), 0.62, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT slo_met_frac FROM simulations WHERE id = 1"), 2.0 / 3, 1e-12);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT expert_cache_hit_rate IS NULL AND offload_gb IS NULL FROM simulations WHERE id = 1"), 1);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT cpu_expert_frac = 0 FROM simulations WHERE id = 1"), 1);
  q_text(db, "SELECT level_share FROM simulations WHERE id = 1", t, sizeof t);
  CU_ASSERT_STRING_EQUAL(t, "[0.75,0.25]");
  /* the unfinished run: its "none" values are NULL */
  CU_ASSERT_EQUAL(q_ll(db, "SELECT name = 'it''s named' AND rate_scale IS NULL AND slo_ttft_ms IS NULL AND slo_tpot_ms = 50"
                           " AND max_batch IS NULL AND finished_at IS NULL AND requests IS NULL FROM simulations WHERE id = 2"), 1);
  /* requests */
  CU_ASSERT_EQUAL(q_ll(db, "SELECT count(*) FROM sim_requests WHERE sim_id = 1"), 3);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT count(*) FROM sim_requests WHERE id = 7"), 0);   /* the refused batch left nothing */
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT ttft_ms FROM sim_requests WHERE sim_id = 1 AND id = 2"), 130, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT queue_ms FROM sim_requests WHERE sim_id = 1 AND id = 1"), 20, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT e2e_ms FROM sim_requests WHERE sim_id = 1 AND id = 0"), 2110, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT finish_s - arrival_s FROM sim_requests WHERE sim_id = 1 AND id = 1"), 2.12, 1e-12);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT prompt + output + cached_tokens FROM sim_requests WHERE sim_id = 1 AND id = 2"), 102 + 64 + 32);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT sum(met_slo) FROM sim_requests WHERE sim_id = 1"), 2);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT quality_loss FROM sim_requests WHERE sim_id = 1 AND id = 2"), 0.02, 1e-12);
  /* timeline: hit rate < 0 is NULL */
  CU_ASSERT_EQUAL(q_ll(db, "SELECT count(*) FROM sim_timeline WHERE sim_id = 1"), 2);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT hit_rate IS NULL FROM sim_timeline WHERE sim_id = 1 AND t_s = 0"), 1);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT hit_rate FROM sim_timeline WHERE sim_id = 1 AND t_s = 1"), 0.75, 1e-12);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT queued * 100 + running * 10 + level FROM sim_timeline WHERE sim_id = 1 AND t_s = 1"), 31);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT kv_mb + tok_s FROM sim_timeline WHERE sim_id = 1 AND t_s = 1"), 42.5 + 95.5, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT bw_scale * compute_scale FROM sim_timeline WHERE sim_id = 1 AND t_s = 1"), 0.56, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(q_f(db, "SELECT mem_avail_mb - mem_used_mb FROM sim_timeline WHERE sim_id = 1 AND t_s = 1"), 35300, 1e-9);
  CU_ASSERT_EQUAL(q_ll(db, "SELECT count(*) FROM sim_timeline WHERE sim_id = 2"), 1);
  sqlite3_close(db);
}

static void test_sim_bad_databases(void) {
  char *err = NULL;
  qsr_store *st = NULL;
  int64_t id;
  struct qsr_sim_meta m = { .device = "l4", .rate_scale = 1, .max_batch = 8 };
  /* corrupt: refused at open with one line naming the file */
  const char *bad = write_file("corrupt.db", "this is not a database, it is a text file of some length............\n");
  CU_ASSERT_EQUAL(qsr_store_open(bad, 0, &st, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NULL(st);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "corrupt.db") && !strchr(err, '\n'));
  free(err);
  err = NULL;
  /* no handle */
  CU_ASSERT_EQUAL(qsr_store_begin_sim(NULL, &m, &id, &err), QSR_ERR_DB);
  free(err);
  err = NULL;
  /* read-only (SQLITE_OPEN_READONLY, as sqlite's mode=ro, works for root too) */
  const char *path = tst_tmp("ro.db");
  CU_ASSERT_EQUAL_FATAL(qsr_store_open(path, 0, &st, &err), QSR_OK);
  qsr_store_close(st);
  CU_ASSERT_EQUAL_FATAL(qsr_store_open(path, 1, &st, &err), QSR_OK);
  CU_ASSERT_EQUAL(qsr_store_begin_sim(st, &m, &id, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "ro.db") && strstr(err, "readonly") && !strchr(err, '\n'));
  free(err);
  err = NULL;
  struct qsr_req_rec r[3];
  fill_requests(r);
  CU_ASSERT_EQUAL(qsr_store_put_sim_requests(st, 1, r, 3, &err), QSR_ERR_DB);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "ro.db") && !strchr(err, '\n'));
  free(err);
  err = NULL;
  qsr_store_close(st);
  /* a file the OS write-protects (root writes anyway: skipped then) */
  if (geteuid() != 0) {
    chmod(path, 0444);
    int rc = qsr_store_open(path, 0, &st, &err);
    if (!rc) rc = qsr_store_begin_sim(st, &m, &id, &err);
    CU_ASSERT_EQUAL(rc, QSR_ERR_DB);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "ro.db") && !strchr(err, '\n'));
    free(err);
    err = NULL;
    qsr_store_close(st);
    st = NULL;
  } else {
    fprintf(stderr, "(chmod 0444 check skipped: running as root) ");
  }
}

/* Runs ./qsr with args, quietly; returns its exit status (or -1). */
static int run_qsr(const char *const *args) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE *devnull = freopen("/dev/null", "w", stdout);
    (void)devnull;
    devnull = freopen("/dev/null", "w", stderr);
    execv("./qsr", (char *const *)args);
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) ? -1 : (long)st.st_size;
}

static void test_sim_plots(void) {
  if (access("./qsr", X_OK)) {
    fprintf(stderr, "(./qsr not built: plot checks skipped) ");
    return;
  }
  const char *db = make_sim_db();
  char dbc[512];
  snprintf(dbc, sizeof dbc, "%s", db);
  int have_gnuplot = system("command -v gnuplot >/dev/null 2>&1") == 0;
  if (!have_gnuplot) setenv("QSR_GNUPLOT", "/nonexistent/gnuplot", 1);
  int want = have_gnuplot ? 0 : 1;
  const char *cdf[] = { "./qsr", "plot", dbc, "--kind", "cdf", "-o", tst_tmp("cdf.png"), NULL };
  CU_ASSERT_EQUAL(run_qsr(cdf), want);
  CU_ASSERT(file_size(tst_tmp("cdf.dat")) > 100);
  CU_ASSERT(file_size(tst_tmp("cdf.gp")) > 100);
  if (have_gnuplot) CU_ASSERT(file_size(tst_tmp("cdf.png")) > 1000);
  const char *tl[] = { "./qsr", "plot", dbc, "--kind", "timeline", "--sim", "1", "-o", tst_tmp("tl.svg"), NULL };
  CU_ASSERT_EQUAL(run_qsr(tl), want);
  CU_ASSERT(file_size(tst_tmp("tl.dat")) > 50);
  if (have_gnuplot) CU_ASSERT(file_size(tst_tmp("tl.svg")) > 1000);
  /* the newest simulation (2) has a sample but no requests: timeline yes, cdf no */
  const char *tl2[] = { "./qsr", "plot", dbc, "--kind", "timeline", "-o", tst_tmp("tl2.png"), NULL };
  CU_ASSERT_EQUAL(run_qsr(tl2), want);
  const char *cdf2[] = { "./qsr", "plot", dbc, "--kind", "cdf", "--sim", "2", "-o", tst_tmp("cdf2.png"), NULL };
  CU_ASSERT_EQUAL(run_qsr(cdf2), 1);
  const char *none[] = { "./qsr", "plot", dbc, "--kind", "timeline", "--sim", "9", "-o", tst_tmp("none.png"), NULL };
  CU_ASSERT_EQUAL(run_qsr(none), 2);   /* an unknown --sim id is a usage error */
  const char *badsim[] = { "./qsr", "plot", dbc, "--kind", "cdf", "--sim", "x", NULL };
  CU_ASSERT_EQUAL(run_qsr(badsim), 2);
  /* a database with no simulation tables: a clear error, not a crash */
  qsr_store *st = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_store_open(tst_tmp("empty.db"), 0, &st, &err), QSR_OK);
  qsr_store_close(st);
  char empty[512];
  snprintf(empty, sizeof empty, "%s", tst_tmp("empty.db"));
  const char *e1[] = { "./qsr", "plot", empty, "--kind", "cdf", "-o", tst_tmp("e1.png"), NULL };
  CU_ASSERT_EQUAL(run_qsr(e1), 1);
  const char *e2[] = { "./qsr", "plot", empty, "--kind", "timeline", "-o", tst_tmp("e2.png"), NULL };
  CU_ASSERT_EQUAL(run_qsr(e2), 1);
  if (!have_gnuplot) unsetenv("QSR_GNUPLOT");
}

void tst_register_simstore(void) {
  CU_pSuite s = CU_add_suite("simstore", suite_init, tst_tmpdir_end);
  CU_add_test(s, "fluctuation files load", test_fluct_load);
  CU_add_test(s, "fluctuation at/next, held and periodic", test_fluct_at_next);
  CU_add_test(s, "bad fluctuation files", test_fluct_bad);
  CU_add_test(s, "simulation round trip", test_sim_round_trip);
  CU_add_test(s, "corrupt and read-only databases", test_sim_bad_databases);
  CU_add_test(s, "plot cdf and timeline", test_sim_plots);
}
