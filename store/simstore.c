/*
** simstore.c -- serving-simulation results (tables created on first use).
**
**   simulations(id INTEGER PRIMARY KEY,
**     name, device, model, design, trace, routing, fluctuation, policy,
**     batching, args TEXT,            what was run (NULL: not given)
**     rate_scale REAL, max_batch INTEGER, slo_ttft_ms REAL, slo_tpot_ms REAL,
**     qsr_version, started_at, finished_at TEXT,   UTC ISO 8601; finished_at
**                                     NULL until qsr_store_finish_sim
**     <one REAL column per summary metric, sum_cols[] below>,
**     level_share TEXT)               share of iterations per adaptation
**                                     level, "[0.7,0.3]"; NULL: one level
**   sim_requests(sim_id, id, arrival_s, admit_s, first_token_s, finish_s,
**     prompt, output, cached_tokens, ttft_ms, tpot_ms, e2e_ms, queue_ms,
**     quality_loss, met_slo; PRIMARY KEY(sim_id, id)) WITHOUT ROWID
**   sim_timeline(sim_id, t_s, queued, running, kv_mb, mem_used_mb,
**     mem_avail_mb, tok_s, bw_scale, compute_scale, level, hit_rate)
**     index sim_timeline_by_sim(sim_id, t_s)
** Units are in the names (s, ms, MB = 1e6 B, GB = 1e9 B); numbers that are
** not finite, and the "< 0 = none" values of the records (hit rates,
** retention), are stored as NULL. Prose and units: docs/results-db.md.
**
** The store's own handle keeps no statements for these tables: each call
** prepares its statement once and runs its rows in one transaction, with
** foreign keys on (rows of an unknown sim_id are refused).
*/
#include "store/simstore.h"

#include "util/err.h"
#include "util/version.h"

#include <math.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { C_I64, C_F64, C_F64_NULL_NEG };

/* Summary columns of `simulations`, in table order (all REAL). */
static const struct { const char *name; int type; size_t off; } sum_cols[] = {
#define I(c, f) { c, C_I64, offsetof(struct qsr_serve_summary, f) }
#define R(c, f) { c, C_F64, offsetof(struct qsr_serve_summary, f) }
#define N(c, f) { c, C_F64_NULL_NEG, offsetof(struct qsr_serve_summary, f) }
#define P(c, f) R(c "_p50", f.p50), R(c "_p90", f.p90), R(c "_p99", f.p99), R(c "_max", f.max), R(c "_mean", f.mean)
  I("requests", requests), I("rejected", rejected), I("tokens_in", tokens_in), I("tokens_out", tokens_out),
  R("sim_s", sim_s), R("throughput_tok_s", throughput_tok_s), R("throughput_req_s", throughput_req_s),
  R("goodput_req_s", goodput_req_s), R("slo_met_frac", slo_met_frac),
  P("ttft_ms", ttft_ms), P("tpot_ms", tpot_ms), P("e2e_ms", e2e_ms), P("queue_ms", queue_ms),
  R("tpot_std_ms", tpot_std_ms), R("e2e_std_ms", e2e_std_ms), R("iterations", iterations),
  R("mean_batch", mean_batch), R("peak_mem_mb", peak_mem_mb), N("expert_cache_hit_rate", expert_cache_hit_rate),
  R("offload_gb", offload_gb), R("cpu_expert_frac", cpu_expert_frac), R("prefix_hit_frac", prefix_hit_frac),
  R("quality_loss", quality_loss), N("retention", retention),
#undef I
#undef R
#undef N
#undef P
};
#define N_SUM_COLS ((int)(sizeof sum_cols / sizeof sum_cols[0]))

#define SQL_REQ_INSERT "INSERT INTO sim_requests VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
#define SQL_SAMPLE_INSERT "INSERT INTO sim_timeline VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"
#define SQL_SIM_INSERT                                                                                 \
  "INSERT INTO simulations(name, device, model, design, trace, routing, fluctuation, policy, batching," \
  " args, rate_scale, max_batch, slo_ttft_ms, slo_tpot_ms, qsr_version, started_at)"                  \
  " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

static const char *db_path(sqlite3 *db) {
  const char *p = db ? sqlite3_db_filename(db, "main") : NULL;
  return p && *p ? p : "results database";
}

/* "PATH: what: sqlite's message" (one line). */
static int db_fail(sqlite3 *db, char **err, const char *what) {
  return qsr_errf(err, QSR_ERR_DB, "%s: %s: %s", db_path(db), what, db ? sqlite3_errmsg(db) : "no database");
}

static int exec(sqlite3 *db, const char *sql, const char *what, char **err) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc == SQLITE_OK) return QSR_OK;
  qsr_errf(err, QSR_ERR_DB, "%s: %s: %s", db_path(db), what, msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return QSR_ERR_DB;
}

static void rollback(sqlite3 *db) {
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static void bind_text(sqlite3_stmt *q, int i, const char *s) {
  if (s) sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(q, i);
}

/* NULL for NaN/inf, and for v < 0 when null_neg. */
static void bind_real(sqlite3_stmt *q, int i, double v, int null_neg) {
  if (!isfinite(v) || (null_neg && v < 0)) sqlite3_bind_null(q, i);
  else sqlite3_bind_double(q, i, v);
}

static void now_iso(char *buf, size_t cap) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Foreign keys on (a no-op inside a transaction: before BEGIN), then BEGIN IMMEDIATE. */
static int begin(sqlite3 *db, const char *what, char **err) {
  int rc = exec(db, "PRAGMA foreign_keys = ON", what, err);
  return rc ? rc : exec(db, "BEGIN IMMEDIATE", what, err);
}

static int create_tables(sqlite3 *db, char **err) {
  char sql[4096];
  size_t u = (size_t)snprintf(sql, sizeof sql,
                              "CREATE TABLE IF NOT EXISTS simulations(id INTEGER PRIMARY KEY, name TEXT, device TEXT,"
                              " model TEXT, design TEXT, trace TEXT, routing TEXT, fluctuation TEXT, policy TEXT,"
                              " batching TEXT, args TEXT, rate_scale REAL, max_batch INTEGER, slo_ttft_ms REAL,"
                              " slo_tpot_ms REAL, qsr_version TEXT, started_at TEXT, finished_at TEXT");
  for (int c = 0; c < N_SUM_COLS; c++) u += (size_t)snprintf(sql + u, sizeof sql - u, ", %s REAL", sum_cols[c].name);
  u += (size_t)snprintf(sql + u, sizeof sql - u,
                        ", level_share TEXT);"
                        "CREATE TABLE IF NOT EXISTS sim_requests(sim_id INTEGER NOT NULL REFERENCES simulations(id),"
                        " id INTEGER NOT NULL, arrival_s REAL, admit_s REAL, first_token_s REAL, finish_s REAL,"
                        " prompt INTEGER, output INTEGER, cached_tokens INTEGER, ttft_ms REAL, tpot_ms REAL,"
                        " e2e_ms REAL, queue_ms REAL, quality_loss REAL, met_slo INTEGER,"
                        " PRIMARY KEY(sim_id, id)) WITHOUT ROWID;"
                        "CREATE TABLE IF NOT EXISTS sim_timeline(sim_id INTEGER NOT NULL REFERENCES simulations(id),"
                        " t_s REAL NOT NULL, queued INTEGER, running INTEGER, kv_mb REAL, mem_used_mb REAL,"
                        " mem_avail_mb REAL, tok_s REAL, bw_scale REAL, compute_scale REAL, level INTEGER,"
                        " hit_rate REAL);"
                        "CREATE INDEX IF NOT EXISTS sim_timeline_by_sim ON sim_timeline(sim_id, t_s);");
  QSR_ASSERT(u < sizeof sql);
  return exec(db, sql, "create simulation tables", err);
}

int qsr_store_begin_sim(qsr_store *st, const struct qsr_sim_meta *m, int64_t *sim_id, char **err) {
  sqlite3 *db = st ? qsr_store_db(st) : NULL;
  sqlite3_stmt *q = NULL;
  char ts[32];
  int rc;
  if (!db) return qsr_errf(err, QSR_ERR_DB, "no results database open");
  if (!m) return qsr_errf(err, QSR_ERR_DB, "%s: begin simulation: no description of the run", db_path(db));
  if ((rc = begin(db, "begin simulation", err))) return rc;
  if ((rc = create_tables(db, err))) goto out;
  if (sqlite3_prepare_v2(db, SQL_SIM_INSERT, -1, &q, NULL) != SQLITE_OK) { rc = db_fail(db, err, "insert simulation"); goto out; }
  const char *text[] = { m->name, m->device, m->model, m->design, m->trace, m->routing, m->fluctuation, m->policy,
                         m->batching, m->args };
  int c = 1;
  for (size_t i = 0; i < sizeof text / sizeof *text; i++) bind_text(q, c++, text[i]);
  bind_real(q, c++, m->rate_scale, 1);
  if (m->max_batch >= 0) sqlite3_bind_int(q, c++, m->max_batch);
  else sqlite3_bind_null(q, c++);
  bind_real(q, c++, m->slo_ttft_ms, 1);
  bind_real(q, c++, m->slo_tpot_ms, 1);
  sqlite3_bind_text(q, c++, QSR_VERSION, -1, SQLITE_STATIC);
  now_iso(ts, sizeof ts);
  sqlite3_bind_text(q, c++, ts, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(q) != SQLITE_DONE) { rc = db_fail(db, err, "insert simulation"); goto out; }
  *sim_id = sqlite3_last_insert_rowid(db);
  rc = exec(db, "COMMIT", "commit simulation", err);
out:
  sqlite3_finalize(q);
  if (rc) rollback(db);
  return rc;
}

int qsr_store_put_sim_requests(qsr_store *st, int64_t sim_id, const struct qsr_req_rec *r, size_t n, char **err) {
  sqlite3 *db = st ? qsr_store_db(st) : NULL;
  sqlite3_stmt *q = NULL;
  int rc;
  if (!db) return qsr_errf(err, QSR_ERR_DB, "no results database open");
  if (!n) return QSR_OK;
  if ((rc = begin(db, "store requests", err))) return rc;
  if (sqlite3_prepare_v2(db, SQL_REQ_INSERT, -1, &q, NULL) != SQLITE_OK) { rc = db_fail(db, err, "store requests"); goto out; }
  for (size_t i = 0; i < n; i++) {
    const struct qsr_req_rec *p = &r[i];
    int c = 1;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, c++, sim_id);
    sqlite3_bind_int64(q, c++, p->id);
    bind_real(q, c++, p->arrival_s, 0);
    bind_real(q, c++, p->admit_s, 0);
    bind_real(q, c++, p->first_token_s, 0);
    bind_real(q, c++, p->finish_s, 0);
    sqlite3_bind_int(q, c++, p->prompt);
    sqlite3_bind_int(q, c++, p->output);
    sqlite3_bind_int(q, c++, p->cached_tokens);
    bind_real(q, c++, p->ttft_ms, 0);
    bind_real(q, c++, p->tpot_ms, 0);
    bind_real(q, c++, p->e2e_ms, 0);
    bind_real(q, c++, p->queue_ms, 0);
    bind_real(q, c++, p->quality_loss, 0);
    sqlite3_bind_int(q, c++, p->met_slo ? 1 : 0);
    if (sqlite3_step(q) != SQLITE_DONE) {
      char what[96];
      snprintf(what, sizeof what, "store request %lld of simulation %lld", (long long)p->id, (long long)sim_id);
      rc = db_fail(db, err, what);
      goto out;
    }
  }
  rc = exec(db, "COMMIT", "commit requests", err);
out:
  sqlite3_finalize(q);
  if (rc) rollback(db);
  return rc;
}

int qsr_store_put_sim_samples(qsr_store *st, int64_t sim_id, const struct qsr_sample *s, size_t n, char **err) {
  sqlite3 *db = st ? qsr_store_db(st) : NULL;
  sqlite3_stmt *q = NULL;
  int rc;
  if (!db) return qsr_errf(err, QSR_ERR_DB, "no results database open");
  if (!n) return QSR_OK;
  if ((rc = begin(db, "store timeline", err))) return rc;
  if (sqlite3_prepare_v2(db, SQL_SAMPLE_INSERT, -1, &q, NULL) != SQLITE_OK) { rc = db_fail(db, err, "store timeline"); goto out; }
  for (size_t i = 0; i < n; i++) {
    const struct qsr_sample *p = &s[i];
    int c = 1;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, c++, sim_id);
    bind_real(q, c++, p->t_s, 0);
    sqlite3_bind_int(q, c++, p->queued);
    sqlite3_bind_int(q, c++, p->running);
    bind_real(q, c++, p->kv_mb, 0);
    bind_real(q, c++, p->mem_used_mb, 0);
    bind_real(q, c++, p->mem_avail_mb, 0);
    bind_real(q, c++, p->tok_s, 0);
    bind_real(q, c++, p->bw_scale, 0);
    bind_real(q, c++, p->compute_scale, 0);
    sqlite3_bind_int(q, c++, p->level);
    bind_real(q, c++, p->hit_rate, 1);
    if (sqlite3_step(q) != SQLITE_DONE) { rc = db_fail(db, err, "store timeline"); goto out; }
  }
  rc = exec(db, "COMMIT", "commit timeline", err);
out:
  sqlite3_finalize(q);
  if (rc) rollback(db);
  return rc;
}

int qsr_store_finish_sim(qsr_store *st, int64_t sim_id, const struct qsr_serve_summary *s, char **err) {
  sqlite3 *db = st ? qsr_store_db(st) : NULL;
  sqlite3_stmt *q = NULL;
  char sql[4096], ts[32], shares[8 * 24 + 4];
  int rc;
  if (!db) return qsr_errf(err, QSR_ERR_DB, "no results database open");
  size_t u = (size_t)snprintf(sql, sizeof sql, "UPDATE simulations SET finished_at = ?");
  for (int c = 0; c < N_SUM_COLS; c++) u += (size_t)snprintf(sql + u, sizeof sql - u, ", %s = ?", sum_cols[c].name);
  u += (size_t)snprintf(sql + u, sizeof sql - u, ", level_share = ? WHERE id = ?");
  QSR_ASSERT(u < sizeof sql);
  if ((rc = begin(db, "finish simulation", err))) return rc;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) { rc = db_fail(db, err, "finish simulation"); goto out; }
  int c = 1;
  now_iso(ts, sizeof ts);
  sqlite3_bind_text(q, c++, ts, -1, SQLITE_TRANSIENT);
  for (int k = 0; k < N_SUM_COLS; k++, c++) {
    const char *f = (const char *)s + sum_cols[k].off;
    if (sum_cols[k].type == C_I64) sqlite3_bind_double(q, c, (double)*(const int64_t *)f);
    else bind_real(q, c, *(const double *)f, sum_cols[k].type == C_F64_NULL_NEG);
  }
  int nl = s->n_levels < 0 ? 0 : s->n_levels > 8 ? 8 : s->n_levels;
  if (nl > 1) {
    size_t w = (size_t)snprintf(shares, sizeof shares, "[");
    for (int l = 0; l < nl; l++) w += (size_t)snprintf(shares + w, sizeof shares - w, "%s%.6g", l ? "," : "", s->level_share[l]);
    snprintf(shares + w, sizeof shares - w, "]");
    sqlite3_bind_text(q, c++, shares, -1, SQLITE_TRANSIENT);
  } else {
    sqlite3_bind_null(q, c++);
  }
  sqlite3_bind_int64(q, c++, sim_id);
  if (sqlite3_step(q) != SQLITE_DONE) { rc = db_fail(db, err, "finish simulation"); goto out; }
  if (sqlite3_changes(db) != 1) {
    rc = qsr_errf(err, QSR_ERR_DB, "%s: finish simulation: no simulation with id %lld", db_path(db), (long long)sim_id);
    goto out;
  }
  rc = exec(db, "COMMIT", "commit simulation", err);
out:
  sqlite3_finalize(q);
  if (rc) rollback(db);
  return rc;
}
