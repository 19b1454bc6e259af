/*
** store.c -- results database.
**
**   sweeps(id INTEGER PRIMARY KEY, name, hash, yaml, qsr_version, objectives,
**          started_at, finished_at, points_total, points_done; UNIQUE(name))
**   chunks(sweep_id, chunk)                 -- chunks fully stored
**   points(sweep_id, idx, device, model, design, <one column per design knob>,
**          valid, feasible, fits, ok, reason, <one REAL column per metric>)
**   pareto_members(sweep_id, idx, device, model, knee, objectives)
**   VIEW pareto = points joined with pareto_members (plus knee)
** Knob columns are named after design keys with '.' -> '_'
** (quant_weights_bits, attention_local, runtime_batch...); enum knobs hold
** their names; per-class precision columns are NULL where the class
** follows quant.weights. Metric columns come from costmodel/metrics.c.
*/
#include "store/store.h"

#include "costmodel/metrics.h"
#include "util/err.h"
#include "util/version.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qsr_store {
  sqlite3 *db;
  sqlite3_stmt *ins_point, *ins_chunk;
  char path[1024];
  int n_knobs;
  int knob_row[128];     /* design key rows that have a column */
  uint8_t knob_int[128]; /* 1: bind as an integer */
};

static int db_err(qsr_store *st, int rc, char **err, const char *what) {
  return qsr_errf(err, QSR_ERR_DB, "%s: %s: %s", st->path, what,
                  st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
}

static int exec(qsr_store *st, const char *sql, char **err) {
  char *msg = NULL;
  int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    qsr_errf(err, QSR_ERR_DB, "%s: %s", st->path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return QSR_ERR_DB;
  }
  return QSR_OK;
}

static void column_name(const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s", path);
  for (char *p = out; *p; p++)
    if (*p == '.') *p = '_';
}

/* Appends to a growing SQL string. */
struct sbuf { char *s; size_t n, cap; };
static void sb_add(struct sbuf *b, const char *t) {
  size_t l = strlen(t);
  if (b->n + l + 1 > b->cap) {
    b->cap = (b->n + l + 1) * 2;
    b->s = realloc(b->s, b->cap);
    if (!b->s) abort();
  }
  memcpy(b->s + b->n, t, l + 1);
  b->n += l;
}

static int create_schema(qsr_store *st, char **err) {
  struct sbuf b = { 0 };
  char col[96];
  sb_add(&b,
         "CREATE TABLE IF NOT EXISTS sweeps(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,"
         " yaml TEXT NOT NULL, qsr_version TEXT, objectives TEXT, started_at TEXT, finished_at TEXT,"
         " points_total INTEGER, points_done INTEGER);"
         "CREATE TABLE IF NOT EXISTS chunks(sweep_id INTEGER NOT NULL, chunk INTEGER NOT NULL,"
         " PRIMARY KEY(sweep_id, chunk)) WITHOUT ROWID;"
         "CREATE TABLE IF NOT EXISTS pareto_members(sweep_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
         " device TEXT, model TEXT, knee INTEGER, objectives TEXT, PRIMARY KEY(sweep_id, idx)) WITHOUT ROWID;"
         "CREATE TABLE IF NOT EXISTS points(sweep_id INTEGER NOT NULL, idx INTEGER NOT NULL, device TEXT, model TEXT,"
         " design TEXT");
  int nk;
  const struct qsr_key *keys = qsr_design_keys(&nk);
  struct qsr_design probe;
  memset(&probe, 0, sizeof probe);
  for (int r = 0; r < nk; r++) {
    double num;
    const char *name;
    char text[8];
    int kind = qsr_design_knob(&probe, r, &num, &name, text, sizeof text);
    if (kind < 0 || !strcmp(keys[r].path, "name") || !strcmp(keys[r].path, "description")) continue;
    column_name(keys[r].path, col, sizeof col);
    sb_add(&b, ", ");
    sb_add(&b, col);
    sb_add(&b, keys[r].type == QSR_K_F64 ? " REAL" : (keys[r].type == QSR_K_INT || keys[r].type == QSR_K_BOOL) ? " INTEGER" : " TEXT");
    QSR_ASSERT(st->n_knobs < 128);
    st->knob_int[st->n_knobs] = keys[r].type == QSR_K_INT || keys[r].type == QSR_K_BOOL;
    st->knob_row[st->n_knobs++] = r;
  }
  sb_add(&b, ", valid INTEGER, feasible INTEGER, fits INTEGER, ok INTEGER, reason TEXT");
  for (int m = 0; m < qsr_metric_count; m++) {
    sb_add(&b, ", ");
    sb_add(&b, qsr_metric_tab[m].name);
    sb_add(&b, " REAL");
  }
  sb_add(&b, ", PRIMARY KEY(sweep_id, idx)) WITHOUT ROWID;"
             "CREATE VIEW IF NOT EXISTS pareto AS SELECT p.*, m.knee AS knee FROM pareto_members m"
             " JOIN points p ON p.sweep_id = m.sweep_id AND p.idx = m.idx;");
  int rc = exec(st, b.s, err);
  free(b.s);
  return rc;
}

static int prepare_inserts(qsr_store *st, char **err) {
  struct sbuf b = { 0 };
  sb_add(&b, "INSERT INTO points VALUES(?,?,?,?,?");
  for (int i = 0; i < st->n_knobs + 5 + qsr_metric_count; i++) sb_add(&b, ",?");
  sb_add(&b, ")");
  int rc = sqlite3_prepare_v2(st->db, b.s, -1, &st->ins_point, NULL);
  free(b.s);
  if (rc != SQLITE_OK) return db_err(st, rc, err, "prepare");
  rc = sqlite3_prepare_v2(st->db, "INSERT INTO chunks VALUES(?,?)", -1, &st->ins_chunk, NULL);
  if (rc != SQLITE_OK) return db_err(st, rc, err, "prepare");
  return QSR_OK;
}

int qsr_store_open(const char *path, int readonly, qsr_store **out, char **err) {
  *out = NULL;
  qsr_store *st = calloc(1, sizeof *st);
  if (!st) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
  snprintf(st->path, sizeof st->path, "%s", path);
  int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
  if (rc != SQLITE_OK) {
    rc = qsr_errf(err, QSR_ERR_DB, "%s: cannot open: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
    qsr_store_close(st);
    return rc;
  }
  sqlite3_busy_timeout(st->db, 5000);
  /* a corrupt or foreign file fails here, before anything is written */
  if ((rc = exec(st, "SELECT count(*) FROM sqlite_master", err))) goto fail;
  if (!readonly) {
    /* 16 KiB pages (only takes effect on a new file) and a 16 MiB cache: wide rows, bulk appends */
    if ((rc = exec(st, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                       " PRAGMA cache_size=-16384;", err))) goto fail;
    if ((rc = create_schema(st, err))) goto fail;
    if ((rc = prepare_inserts(st, err))) goto fail;
  }
  *out = st;
  return QSR_OK;
fail:
  qsr_store_close(st);
  return rc;
}

void qsr_store_close(qsr_store *st) {
  if (!st) return;
  sqlite3_finalize(st->ins_point);
  sqlite3_finalize(st->ins_chunk);
  sqlite3_close(st->db);
  free(st);
}

struct sqlite3 *qsr_store_db(qsr_store *st) { return st->db; }

static void now_iso(char *buf, size_t cap) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int qsr_store_begin_sweep(qsr_store *st, const struct qsr_sweep *sw, int64_t *sid, char **err) {
  sqlite3_stmt *q = NULL;
  int rc = sqlite3_prepare_v2(st->db, "SELECT id, hash FROM sweeps WHERE name = ?", -1, &q, NULL);
  if (rc != SQLITE_OK) return db_err(st, rc, err, "query");
  sqlite3_bind_text(q, 1, sw->name, -1, SQLITE_STATIC);
  rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) {
    *sid = sqlite3_column_int64(q, 0);
    const char *h = (const char *)sqlite3_column_text(q, 1);
    int same = h && !strcmp(h, sw->hash);
    char hs[32];
    snprintf(hs, sizeof hs, "%s", h ? h : "");
    sqlite3_finalize(q);
    if (!same)
      return qsr_errf(err, QSR_ERR_CONFIG,
                      "%s: sweep '%s' was started from a different sweep file (hash %s, now %s); "
                      "write to another database with -o, or rename the sweep",
                      st->path, sw->name, hs, sw->hash);
    return QSR_OK;
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) return db_err(st, rc, err, "query");
  char objs[256] = "", ts[32];
  for (int i = 0; i < sw->n_obj; i++) {
    size_t u = strlen(objs);
    snprintf(objs + u, sizeof objs - u, "%s%s", i ? "," : "", qsr_metric_tab[sw->obj[i]].name);
  }
  now_iso(ts, sizeof ts);
  rc = sqlite3_prepare_v2(st->db,
                          "INSERT INTO sweeps(name, hash, yaml, qsr_version, objectives, started_at, points_total, points_done)"
                          " VALUES(?,?,?,?,?,?,?,0)", -1, &q, NULL);
  if (rc != SQLITE_OK) return db_err(st, rc, err, "insert sweep");
  sqlite3_bind_text(q, 1, sw->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, sw->hash, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, sw->text, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 4, QSR_VERSION, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, objs, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 6, ts, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(q, 7, (sqlite3_int64)sw->total);
  rc = sqlite3_step(q);
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) return db_err(st, rc, err, "insert sweep");
  *sid = sqlite3_last_insert_rowid(st->db);
  return QSR_OK;
}

int qsr_store_done_chunks(qsr_store *st, int64_t sid, uint8_t *done, uint64_t nchunks, char **err) {
  sqlite3_stmt *q = NULL;
  memset(done, 0, nchunks);
  int rc = sqlite3_prepare_v2(st->db, "SELECT chunk FROM chunks WHERE sweep_id = ?", -1, &q, NULL);
  if (rc != SQLITE_OK) return db_err(st, rc, err, "query chunks");
  sqlite3_bind_int64(q, 1, sid);
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    sqlite3_int64 c = sqlite3_column_int64(q, 0);
    if (c >= 0 && (uint64_t)c < nchunks) done[c] = 1;
  }
  sqlite3_finalize(q);
  return rc == SQLITE_DONE ? QSR_OK : db_err(st, rc, err, "query chunks");
}

int qsr_store_put_chunk(qsr_store *st, int64_t sid, uint64_t chunk, const struct qsr_sweep *sw,
                        const struct qsr_point *pts, int n, char **err) {
  int rc = exec(st, "BEGIN IMMEDIATE", err);
  if (rc) return rc;
  sqlite3_stmt *s = st->ins_point;
  char text[160];
  for (int i = 0; i < n; i++) {
    const struct qsr_point *p = &pts[i];
    int c = 1;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, c++, sid);
    sqlite3_bind_int64(s, c++, (sqlite3_int64)p->idx);
    sqlite3_bind_text(s, c++, sw->devs[p->dev].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, c++, sw->models[p->model].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, c++, sw->design_names[p->design], -1, SQLITE_STATIC);
    for (int k = 0; k < st->n_knobs; k++, c++) {
      double num;
      const char *name;
      int kind = qsr_design_knob(&p->d, st->knob_row[k], &num, &name, text, sizeof text);
      if (kind == 0 && st->knob_int[k]) sqlite3_bind_int64(s, c, (sqlite3_int64)num);
      else if (kind == 0) sqlite3_bind_double(s, c, num);
      else if (kind == 1) sqlite3_bind_text(s, c, text, -1, SQLITE_TRANSIENT);
      else if (kind == 2) sqlite3_bind_text(s, c, name, -1, SQLITE_STATIC);
      else sqlite3_bind_null(s, c);
    }
    sqlite3_bind_int(s, c++, p->valid);
    sqlite3_bind_int(s, c++, p->valid && p->r.feasible);
    sqlite3_bind_int(s, c++, p->valid && p->r.fits);
    sqlite3_bind_int(s, c++, p->ok);
    if (p->why[0]) sqlite3_bind_text(s, c++, p->why, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, c++);
    for (int m = 0; m < qsr_metric_count; m++, c++) {
      if (p->valid && p->r.feasible) sqlite3_bind_double(s, c, qsr_metric_get(&p->r, m));
      else sqlite3_bind_null(s, c);
    }
    if ((rc = sqlite3_step(s)) != SQLITE_DONE) goto fail;
  }
  sqlite3_reset(st->ins_chunk);
  sqlite3_bind_int64(st->ins_chunk, 1, sid);
  sqlite3_bind_int64(st->ins_chunk, 2, (sqlite3_int64)chunk);
  if ((rc = sqlite3_step(st->ins_chunk)) != SQLITE_DONE) goto fail;
  if (exec(st, "COMMIT", err)) goto fail_msg;
  return QSR_OK;
fail:
  db_err(st, rc, err, "write");
fail_msg:
  sqlite3_reset(st->ins_point);
  sqlite3_reset(st->ins_chunk);
  sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
  return QSR_ERR_DB;
}

int qsr_store_finish_sweep(qsr_store *st, int64_t sid, char **err) {
  char sql[512], ts[32];
  now_iso(ts, sizeof ts);
  snprintf(sql, sizeof sql,
           "UPDATE sweeps SET points_done = (SELECT count(*) FROM points WHERE sweep_id = %lld),"
           " finished_at = CASE WHEN (SELECT count(*) FROM points WHERE sweep_id = %lld) = points_total"
           " THEN '%s' ELSE NULL END WHERE id = %lld;"
           "CREATE INDEX IF NOT EXISTS points_by_pair ON points(sweep_id, device, model, ok);",
           (long long)sid, (long long)sid, ts, (long long)sid);
  return exec(st, sql, err);
}

int qsr_store_put_pareto(qsr_store *st, int64_t sid, const char *device, const char *model, const int64_t *idx,
                         const uint8_t *knee, size_t n, const char *objectives, char **err) {
  sqlite3_stmt *del = NULL, *ins = NULL;
  int rc = exec(st, "BEGIN IMMEDIATE", err);
  if (rc) return rc;
  rc = sqlite3_prepare_v2(st->db, "DELETE FROM pareto_members WHERE sweep_id = ? AND device = ? AND model = ?", -1, &del, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(del, 1, sid);
    sqlite3_bind_text(del, 2, device, -1, SQLITE_STATIC);
    sqlite3_bind_text(del, 3, model, -1, SQLITE_STATIC);
    rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(st->db, "INSERT INTO pareto_members VALUES(?,?,?,?,?,?)", -1, &ins, NULL);
  for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, sid);
    sqlite3_bind_int64(ins, 2, idx[i]);
    sqlite3_bind_text(ins, 3, device, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 5, knee[i]);
    sqlite3_bind_text(ins, 6, objectives, -1, SQLITE_STATIC);
    rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  }
  if (rc != SQLITE_OK) db_err(st, rc, err, "write pareto");
  sqlite3_finalize(del);
  sqlite3_finalize(ins);
  if (rc == SQLITE_OK) return exec(st, "COMMIT", err);
  sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
  return QSR_ERR_DB;
}

int qsr_store_merge(qsr_store *st, const char *in_path, char **err) {
  sqlite3_stmt *q = NULL;
  int rc;
  char *sql = sqlite3_mprintf("ATTACH DATABASE 'file:%q?mode=ro' AS src", in_path);
  int orc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  sqlite3_free(sql);
  if (orc != SQLITE_OK) return qsr_errf(err, QSR_ERR_DB, "%s: cannot attach: %s", in_path, sqlite3_errmsg(st->db));
  rc = exec(st, "SELECT 1 FROM src.sweeps LIMIT 1; SELECT 1 FROM src.points LIMIT 1", err);
  if (rc) { qsr_errf(err, QSR_ERR_DB, "%s: not a qsr results database: %s", in_path, sqlite3_errmsg(st->db)); goto out; }
  if ((rc = exec(st, "BEGIN IMMEDIATE", err))) goto out;
  /* every source sweep must match the destination's sweep of that name */
  if (sqlite3_prepare_v2(st->db, "SELECT s.name, s.hash, d.hash FROM src.sweeps s JOIN main.sweeps d ON d.name = s.name"
                                 " WHERE d.hash <> s.hash", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: sweep '%s' has hash %s here but %s in %s: not shards of the same sweep",
                  in_path, sqlite3_column_text(q, 0), sqlite3_column_text(q, 1), sqlite3_column_text(q, 2), st->path);
    sqlite3_finalize(q);
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    goto out;
  }
  sqlite3_finalize(q);
  rc = exec(st,
            "INSERT INTO main.sweeps(name, hash, yaml, qsr_version, objectives, started_at, points_total, points_done)"
            " SELECT name, hash, yaml, qsr_version, objectives, started_at, points_total, 0 FROM src.sweeps"
            " WHERE name NOT IN (SELECT name FROM main.sweeps);"
            "CREATE TEMP TABLE IF NOT EXISTS idmap(src INTEGER PRIMARY KEY, dst INTEGER);"
            "DELETE FROM temp.idmap;"
            "INSERT INTO temp.idmap SELECT s.id, d.id FROM src.sweeps s JOIN main.sweeps d ON d.name = s.name;"
            "INSERT OR IGNORE INTO main.chunks SELECT m.dst, c.chunk FROM src.chunks c JOIN temp.idmap m ON m.src = c.sweep_id;",
            err);
  if (!rc) {  /* points: every column but sweep_id, by name */
    struct sbuf cols = { 0 }, sel = { 0 };
    sqlite3_stmt *ti = NULL;
    sb_add(&cols, "INSERT OR IGNORE INTO main.points(sweep_id");
    sb_add(&sel, ") SELECT m.dst");
    if (sqlite3_prepare_v2(st->db, "SELECT name FROM pragma_table_info('points') WHERE name <> 'sweep_id'", -1, &ti, NULL) == SQLITE_OK)
      while (sqlite3_step(ti) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(ti, 0);
        sb_add(&cols, ", ");
        sb_add(&cols, c);
        sb_add(&sel, ", p.");
        sb_add(&sel, c);
      }
    sqlite3_finalize(ti);
    sb_add(&sel, " FROM src.points p JOIN temp.idmap m ON m.src = p.sweep_id");
    sb_add(&cols, sel.s);
    rc = exec(st, cols.s, err);
    free(cols.s);
    free(sel.s);
  }
  if (rc) { sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL); goto out; }
  rc = exec(st, "COMMIT", err);
out:
  sqlite3_exec(st->db, "DETACH DATABASE src", NULL, NULL, NULL);
  return rc;
}
