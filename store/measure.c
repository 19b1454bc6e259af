/*
** measure.c -- the measurements table (schema in measure.h).
*/
#include "store/measure.h"

#include "util/err.h"

#include <math.h>
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>

enum { T_STR, T_INT, T_I64, T_REAL };

/* one row per column, in table order after id and before created_at */
static const struct { const char *name; int type; size_t off; } cols[] = {
#define S(f) { #f, T_STR, offsetof(struct qsr_meas, f) }
#define I(f) { #f, T_INT, offsetof(struct qsr_meas, f) }
#define L(f) { #f, T_I64, offsetof(struct qsr_meas, f) }
#define R(f) { #f, T_REAL, offsetof(struct qsr_meas, f) }
  S(kernel), S(op_class), S(wfmt), I(bits), I(grp), S(kvfmt),
  L(tokens), L(rows), L(cols), L(ctx), L(heads), L(kv_heads), L(head_dim), S(head_type), L(win), L(topk),
  L(experts), L(top_k), R(flops), R(vec_ops), R(bytes),
  S(backend), S(device), S(device_desc), S(driver), S(clocks), I(threads), S(rev), S(source),
  I(reps), R(median_us), R(p10_us), R(p90_us), R(spread_pct),
  S(model), S(quant), L(batch), L(prompt), L(gen), R(prompt_tok_s), R(gen_tok_s), S(split),
  /* added for qsr run (after created_at in tables that predate them; see add_missing) */
  R(pred_prompt_tok_s), R(pred_gen_tok_s), R(peak_mb), R(pred_peak_mb), S(config),
#undef S
#undef I
#undef L
#undef R
};
#define NCOLS ((int)(sizeof cols / sizeof *cols))

void qsr_meas_clear(struct qsr_meas *m) {
  for (int i = 0; i < NCOLS; i++) {
    char *p = (char *)m + cols[i].off;
    switch (cols[i].type) {
    case T_STR: *(const char **)p = NULL; break;
    case T_INT: *(int *)p = -1; break;
    case T_I64: *(int64_t *)p = -1; break;
    default: *(double *)p = NAN;
    }
  }
}

static const char *col_type(int i) {
  return cols[i].type == T_STR ? "TEXT" : cols[i].type == T_REAL ? "REAL" : "INTEGER";
}

/* Adds the columns of cols[] that an existing table lacks (older qsr). */
static int add_missing(sqlite3 *db, const char *path, char **err) {
  sqlite3_stmt *st = NULL;
  unsigned char have[NCOLS];
  memset(have, 0, sizeof have);
  int rc = sqlite3_prepare_v2(db, "PRAGMA table_info(measurements)", -1, &st, NULL);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    for (int i = 0; name && i < NCOLS; i++)
      if (!strcmp(name, cols[i].name)) have[i] = 1;
    rc = SQLITE_OK;
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_finalize(st);
  for (int i = 0; i < NCOLS && rc == SQLITE_OK; i++) {
    if (have[i]) continue;
    char sql[160];
    snprintf(sql, sizeof sql, "ALTER TABLE measurements ADD COLUMN %s %s", cols[i].name, col_type(i));
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  }
  if (rc != SQLITE_OK) return qsr_errf(err, QSR_ERR_DB, "%s: measurements table: %s", path, sqlite3_errmsg(db));
  return QSR_OK;
}

int qsr_measure_schema(sqlite3 *db, const char *path, char **err) {
  char sql[4096];
  size_t n = (size_t)snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS measurements(id INTEGER PRIMARY KEY");
  for (int i = 0; i < NCOLS && n < sizeof sql; i++)
    n += (size_t)snprintf(sql + n, sizeof sql - n, ", %s %s%s", cols[i].name, col_type(i), i == 0 ? " NOT NULL" : "");
  snprintf(sql + n, sizeof sql - n, ", created_at TEXT DEFAULT CURRENT_TIMESTAMP);");
  char *msg = NULL;
  int rc = QSR_OK;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
      (rc = add_missing(db, path, err)) ||   /* before the index: it names columns an old table may lack */
      sqlite3_exec(db, "CREATE INDEX IF NOT EXISTS measurements_kernel ON measurements(device, backend, kernel);",
                   NULL, NULL, &msg) != SQLITE_OK) {
    if (!rc) rc = qsr_errf(err, QSR_ERR_DB, "%s: measurements table: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    return rc;
  }
  return QSR_OK;
}

int qsr_measure_put(sqlite3 *db, const char *path, const struct qsr_meas *m, char **err) {
  char sql[2048];
  size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT INTO measurements(");
  for (int i = 0; i < NCOLS; i++) n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s", i ? "," : "", cols[i].name);
  n += (size_t)snprintf(sql + n, sizeof sql - n, ") VALUES(");
  for (int i = 0; i < NCOLS; i++) n += (size_t)snprintf(sql + n, sizeof sql - n, "%s?", i ? "," : "");
  snprintf(sql + n, sizeof sql - n, ")");
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  for (int i = 0; i < NCOLS && rc == SQLITE_OK; i++) {
    const char *p = (const char *)m + cols[i].off;
    switch (cols[i].type) {
    case T_STR: {
      const char *s = *(const char *const *)p;
      rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
      break;
    }
    case T_INT: {
      int v = *(const int *)p;
      rc = v >= 0 ? sqlite3_bind_int(st, i + 1, v) : sqlite3_bind_null(st, i + 1);
      break;
    }
    case T_I64: {
      int64_t v = *(const int64_t *)p;
      rc = v >= 0 ? sqlite3_bind_int64(st, i + 1, v) : sqlite3_bind_null(st, i + 1);
      break;
    }
    default: {
      double v = *(const double *)p;
      rc = isfinite(v) ? sqlite3_bind_double(st, i + 1, v) : sqlite3_bind_null(st, i + 1);
    }
    }
  }
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_DONE) rc = SQLITE_OK;
  if (rc != SQLITE_OK) rc = qsr_errf(err, QSR_ERR_DB, "%s: measurements: %s", path, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc;
}
