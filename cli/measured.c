/*
** measured.c -- measured kernel calls from a database's measurements table,
** as the cost model's qsr_kshape rows, for qsr calibrate and qsr validate.
** Only the newest row of each shape (same kernel, formats, sizes, backend
** and threads) is read, so re-running qsr bench into one database replaces
** rather than doubles its figures.
*/
#include "cli/measured.h"
#include "util/err.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE_COLS "kernel, op_class, wfmt, bits, grp, kvfmt, tokens, rows, cols, ctx, heads, kv_heads, " \
                   "head_dim, head_type, win, topk, experts, top_k, backend, threads"

static char *col_str(sqlite3_stmt *st, int i) {
  const unsigned char *s = sqlite3_column_text(st, i);
  return s ? strdup((const char *)s) : NULL;
}
static int64_t col_i64(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}
static double col_real(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_double(st, i);
}

int qsr_cli_kset_read(sqlite3 *db, const char *path, const char *device, const char *split, const char *where,
                      struct qsr_kset *out, char **err) {
  memset(out, 0, sizeof *out);
  char *sql = sqlite3_mprintf(
      "SELECT id, kernel, op_class, wfmt, bits, grp, kvfmt, tokens, rows, cols, ctx, heads, kv_heads, head_dim, "
      "head_type, win, topk, experts, top_k, flops, vec_ops, bytes, median_us, p10_us, p90_us, split, threads "
      "FROM measurements WHERE id IN (SELECT max(id) FROM measurements WHERE device = %Q "
      "AND kernel NOT IN ('memcpy', 'fma_peak', 'e2e') AND median_us > 0 GROUP BY " SHAPE_COLS ") "
      "AND threads IS (SELECT max(threads) FROM measurements WHERE device = %Q AND kernel <> 'e2e') "
      "AND (%Q IS NULL OR split = %Q) AND (%s) ORDER BY id",
      device, device, split, split, where && *where ? where : "1");
  sqlite3_stmt *st = NULL;
  int rc = QSR_OK, cap = 0;
  if (!sql) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    rc = qsr_errf(err, QSR_ERR_DB, "%s: measurements: %s", path, sqlite3_errmsg(db));
    goto out;
  }
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n == cap) {
      cap = cap ? 2 * cap : 256;
      struct qsr_kshape *r = realloc(out->rows, (size_t)cap * sizeof *r);
      if (!r) { rc = qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); goto out; }
      out->rows = r;
    }
    struct qsr_kshape *k = &out->rows[out->n++];
    memset(k, 0, sizeof *k);
    int c = 0;
    k->id = sqlite3_column_int64(st, c++);
    k->kernel = col_str(st, c++);
    k->op_class = col_str(st, c++);
    k->wfmt = col_str(st, c++);
    k->bits = (int)col_i64(st, c++);
    k->grp = (int)col_i64(st, c++);
    k->kvfmt = col_str(st, c++);
    int64_t *i64[] = { &k->tokens, &k->rows, &k->cols, &k->ctx, &k->heads, &k->kv_heads, &k->head_dim };
    for (size_t j = 0; j < sizeof i64 / sizeof *i64; j++) *i64[j] = col_i64(st, c++);
    k->head_type = col_str(st, c++);
    int64_t *i64b[] = { &k->win, &k->topk, &k->experts, &k->top_k };
    for (size_t j = 0; j < sizeof i64b / sizeof *i64b; j++) *i64b[j] = col_i64(st, c++);
    double *rl[] = { &k->flops, &k->vec_ops, &k->bytes, &k->median_us, &k->p10_us, &k->p90_us };
    for (size_t j = 0; j < sizeof rl / sizeof *rl; j++) *rl[j] = col_real(st, c++);
    const unsigned char *sp = sqlite3_column_text(st, c++);
    k->holdout = sp && !strcmp((const char *)sp, "holdout");
    out->threads = (int)col_i64(st, c++);
  }
  if (s != SQLITE_DONE) rc = qsr_errf(err, QSR_ERR_DB, "%s: measurements: %s", path, sqlite3_errmsg(db));
out:
  sqlite3_finalize(st);
  sqlite3_free(sql);
  if (rc) qsr_cli_kset_free(out);
  return rc;
}

void qsr_cli_kset_free(struct qsr_kset *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) {
    struct qsr_kshape *k = &s->rows[i];
    free((char *)k->kernel);
    free((char *)k->op_class);
    free((char *)k->wfmt);
    free((char *)k->kvfmt);
    free((char *)k->head_type);
  }
  free(s->rows);
  memset(s, 0, sizeof *s);
}

int qsr_cli_has_measurements(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='measurements'", -1,
                              &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return ok;
}
