/*
** cmd_pareto.c -- Pareto fronts from a results database: computed and
** stored after a sweep, and `qsr pareto` for any objectives and filter.
*/
#include "cli/cli.h"
#include "costmodel/metrics.h"
#include "sim/pareto.h"
#include "sim/sweep.h"
#include "store/store.h"
#include "util/err.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* "tpot_ms,mem_peak_mb,tokens_per_s:max" */
int qsr_cli_objectives(const char *s, struct qsr_objspec *o, char **err) {
  o->n = 0;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *colon = strchr(tok, ':');
    int dir = -1;
    if (colon) {
      *colon = '\0';
      if (!strcmp(colon + 1, "max")) dir = 1;
      else if (!strcmp(colon + 1, "min")) dir = 0;
      else return qsr_errf(err, QSR_ERR_USAGE, "--objectives: '%s': direction must be :min or :max", colon + 1);
    }
    int m = qsr_metric_find(tok);
    if (m < 0) {
      char list[1024];
      size_t u = 0;
      for (int i = 0; i < qsr_metric_count; i++) u += (size_t)snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", qsr_metric_tab[i].name);
      return qsr_errf(err, QSR_ERR_USAGE, "--objectives: unknown metric '%s' (known: %s)", tok, list);
    }
    if (o->n == QSR_MAX_OBJECTIVES) return qsr_errf(err, QSR_ERR_USAGE, "--objectives: at most %d", QSR_MAX_OBJECTIVES);
    o->metric[o->n] = m;
    o->maximise[o->n] = dir < 0 ? qsr_metric_tab[m].maximise : dir;
    o->n++;
  }
  if (o->n < 2) return qsr_errf(err, QSR_ERR_USAGE, "--objectives: give 2 to %d metrics", QSR_MAX_OBJECTIVES);
  return QSR_OK;
}

struct frec { double v0; int64_t idx; uint8_t knee; };

static int cmp_frec(const void *a, const void *b) {
  const struct frec *x = a, *y = b;
  if (x->v0 != y->v0) return x->v0 < y->v0 ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Front of one (sweep, device, model) among ok points (and `where`).
** Returns rows in *idx (front members only) and knee flags. */
int qsr_cli_front(struct sqlite3 *db, int64_t sid, const char *dev, const char *model, const struct qsr_objspec *o,
                    const char *where, int64_t **out_idx, uint8_t **out_knee, size_t *out_n, char **err) {
  char sql[2048];
  size_t u = (size_t)snprintf(sql, sizeof sql, "SELECT idx");
  for (int j = 0; j < o->n; j++) u += (size_t)snprintf(sql + u, sizeof sql - u, ", %s", qsr_metric_tab[o->metric[j]].name);
  snprintf(sql + u, sizeof sql - u, " FROM points WHERE sweep_id = ? AND device = ? AND model = ? AND ok = 1%s%s%s",
           where ? " AND (" : "", where ? where : "", where ? ")" : "");
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "query: %s", sqlite3_errmsg(db));
  sqlite3_bind_int64(q, 1, sid);
  sqlite3_bind_text(q, 2, dev, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, model, -1, SQLITE_STATIC);
  size_t n = 0, cap = 0;
  int64_t *idx = NULL;
  double *v = NULL;
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? 2 * cap : 1024;
      int64_t *ni = realloc(idx, cap * sizeof *idx);
      double *nv = realloc(v, cap * (size_t)o->n * sizeof *v);
      if (!ni || !nv) { free(ni ? ni : idx); free(nv ? nv : v); sqlite3_finalize(q); return qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); }
      idx = ni;
      v = nv;
    }
    idx[n] = sqlite3_column_int64(q, 0);
    for (int j = 0; j < o->n; j++) {
      double x = sqlite3_column_double(q, j + 1);
      v[n * (size_t)o->n + (size_t)j] = o->maximise[j] ? -x : x;
    }
    n++;
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) { free(idx); free(v); return qsr_errf(err, QSR_ERR_DB, "query: %s", sqlite3_errmsg(db)); }
  uint8_t *front = malloc(n ? n : 1);
  if (!front) { free(idx); free(v); return qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); }
  size_t nf = qsr_pareto_front(v, n, o->n, front);
  if (nf == (size_t)-1) { free(idx); free(v); free(front); return qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); }
  size_t knee = qsr_pareto_knee(v, n, o->n, front);
  int64_t *fi = malloc((nf ? nf : 1) * sizeof *fi);
  uint8_t *fk = malloc(nf ? nf : 1);
  struct frec *fr = malloc((nf ? nf : 1) * sizeof *fr);
  size_t k = 0;
  for (size_t i = 0; fr && i < n; i++)
    if (front[i]) { fr[k].v0 = v[i * (size_t)o->n]; fr[k].idx = idx[i]; fr[k].knee = i == knee; k++; }
  if (fr) qsort(fr, k, sizeof *fr, cmp_frec);  /* by the first objective, best first */
  for (size_t i = 0; fi && fk && fr && i < k; i++) { fi[i] = fr[i].idx; fk[i] = fr[i].knee; }
  if (!fr) { free(fi); fi = NULL; }
  free(fr);
  free(idx);
  free(v);
  free(front);
  if (!fi || !fk) { free(fi); free(fk); return qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); }
  *out_idx = fi;
  *out_knee = fk;
  *out_n = nf;
  return QSR_OK;
}

int qsr_cli_store_fronts(qsr_store *st, const struct qsr_sweep *sw, int64_t sid, char **err) {
  struct qsr_objspec o;
  char names[256] = "";
  o.n = sw->n_obj;
  for (int j = 0; j < o.n; j++) {
    o.metric[j] = sw->obj[j];
    o.maximise[j] = qsr_metric_tab[sw->obj[j]].maximise;
    size_t u = strlen(names);
    snprintf(names + u, sizeof names - u, "%s%s", j ? "," : "", qsr_metric_tab[sw->obj[j]].name);
  }
  for (int d = 0; d < sw->n_dev; d++)
    for (int m = 0; m < sw->n_model; m++) {
      int64_t *idx;
      uint8_t *knee;
      size_t n;
      int rc = qsr_cli_front(qsr_store_db(st), sid, sw->devs[d].name, sw->models[m].name, &o, NULL, &idx, &knee, &n, err);
      if (!rc) rc = qsr_store_put_pareto(st, sid, sw->devs[d].name, sw->models[m].name, idx, knee, n, names, err);
      if (!rc) { free(idx); free(knee); }
      if (rc) return rc;
    }
  return QSR_OK;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr pareto DB [--sweep NAME] [--objectives a,b[,c[,d]]] [--where SQL] [--csv]\n\n"
          "Prints the non-dominated feasible points of each (device, model) in a results database,\n"
          "among points that meet the sweep's constraints (ok = 1). The knee (nearest the utopia point\n"
          "with objectives scaled to [0,1] over the front) is marked *.\n\n"
          "  --sweep NAME         one sweep of the database (default: all)\n"
          "  --objectives LIST    metrics, each minimised or maximised by its nature (tokens_per_s is\n"
          "                       maximised); add :min or :max to choose. Default: the sweep's objectives\n"
          "  --where SQL          extra filter on the points table, e.g. \"runtime_batch = 1\"\n"
          "  --csv                CSV instead of a table\n");
}

static const char *const show_knobs[] = { "quant_weights_bits", "quant_weights_format", "quant_weights_group",
                                          "quant_kv_cache", "attention_local", "attention_topk",
                                          "attention_window", "routing_mode", "routing_top_k", "runtime_batch" };
#define N_SHOW ((int)(sizeof show_knobs / sizeof show_knobs[0]))

int qsr_cmd_pareto(int argc, char **argv) {
  const char *db = NULL, *sweep = NULL, *objs = NULL, *where = NULL;
  int csv = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!strcmp(a, "--csv")) { csv = 1; continue; }
    if (!strcmp(a, "--sweep") && i + 1 < argc) { sweep = argv[++i]; continue; }
    if (!strcmp(a, "--objectives") && i + 1 < argc) { objs = argv[++i]; continue; }
    if (!strcmp(a, "--where") && i + 1 < argc) { where = argv[++i]; continue; }
    if (a[0] == '-' || db) { fprintf(stderr, "qsr pareto: unexpected '%s'\n", a); usage(stderr); return 2; }
    db = a;
  }
  if (!db) { usage(stderr); return 2; }
  char *err = NULL;
  qsr_store *st = NULL;
  int rc = qsr_store_open(db, 1, &st, &err);
  if (rc) return qsr_cli_fail(rc, err);
  sqlite3 *h = qsr_store_db(st);
  sqlite3_stmt *sq = NULL, *pq = NULL;
  rc = QSR_OK;
  if (sqlite3_prepare_v2(h, "SELECT id, name, objectives FROM sweeps WHERE ?1 IS NULL OR name = ?1 ORDER BY id", -1, &sq, NULL) != SQLITE_OK) {
    rc = qsr_errf(&err, QSR_ERR_DB, "%s: not a qsr results database (%s)", db, sqlite3_errmsg(h));
    goto out;
  }
  if (sweep) sqlite3_bind_text(sq, 1, sweep, -1, SQLITE_STATIC);
  int nsw = 0, header = 0;
  while (!rc && sqlite3_step(sq) == SQLITE_ROW) {
    nsw++;
    int64_t sid = sqlite3_column_int64(sq, 0);
    char sname[128];
    snprintf(sname, sizeof sname, "%s", sqlite3_column_text(sq, 1));
    struct qsr_objspec o;
    if ((rc = qsr_cli_objectives(objs ? objs : (const char *)sqlite3_column_text(sq, 2), &o, &err))) break;
    if (sqlite3_prepare_v2(h, "SELECT DISTINCT device, model FROM points WHERE sweep_id = ? ORDER BY device, model", -1, &pq, NULL) != SQLITE_OK) {
      rc = qsr_errf(&err, QSR_ERR_DB, "%s: %s", db, sqlite3_errmsg(h));
      break;
    }
    sqlite3_bind_int64(pq, 1, sid);
    while (!rc && sqlite3_step(pq) == SQLITE_ROW) {
      char dev[64], model[64];
      snprintf(dev, sizeof dev, "%s", sqlite3_column_text(pq, 0));
      snprintf(model, sizeof model, "%s", sqlite3_column_text(pq, 1));
      int64_t *idx;
      uint8_t *knee;
      size_t n;
      if ((rc = qsr_cli_front(h, sid, dev, model, &o, where, &idx, &knee, &n, &err))) break;
      if (!header) {
        if (csv) {
          printf("sweep,device,model,idx,knee");
          for (int j = 0; j < o.n; j++) printf(",%s", qsr_metric_tab[o.metric[j]].name);
          for (int k = 0; k < N_SHOW; k++) printf(",%s", show_knobs[k]);
          printf("\n");
        }
        header = 1;
      }
      if (!csv) {
        printf("\n%s: %s on %s -- %zu Pareto point%s (objectives", sname, model, dev, n, n == 1 ? "" : "s");
        for (int j = 0; j < o.n; j++) printf(" %s%s", qsr_metric_tab[o.metric[j]].name, o.maximise[j] ? "(max)" : "");
        printf(")\n   %10s", "idx");
        for (int j = 0; j < o.n; j++) printf(" %14s", qsr_metric_tab[o.metric[j]].name);
        printf("  bits fmt     grp kv    local topk  win  route  k  batch\n");
      }
      char sql[1024];
      size_t u = (size_t)snprintf(sql, sizeof sql, "SELECT ");
      for (int j = 0; j < o.n; j++) u += (size_t)snprintf(sql + u, sizeof sql - u, "%s, ", qsr_metric_tab[o.metric[j]].name);
      for (int k = 0; k < N_SHOW; k++) u += (size_t)snprintf(sql + u, sizeof sql - u, "%s%s", k ? ", " : "", show_knobs[k]);
      snprintf(sql + u, sizeof sql - u, " FROM points WHERE sweep_id = ? AND idx = ?");
      sqlite3_stmt *rq = NULL;
      if (sqlite3_prepare_v2(h, sql, -1, &rq, NULL) != SQLITE_OK) {
        rc = qsr_errf(&err, QSR_ERR_DB, "%s: %s", db, sqlite3_errmsg(h));
      }
      /* print the front ordered by the first objective */
      for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_reset(rq);
        sqlite3_bind_int64(rq, 1, sid);
        sqlite3_bind_int64(rq, 2, idx[i]);
        if (sqlite3_step(rq) != SQLITE_ROW) continue;
        if (csv) {
          printf("%s,%s,%s,%lld,%d", sname, dev, model, (long long)idx[i], knee[i]);
          for (int c = 0; c < o.n + N_SHOW; c++) printf(",%s", sqlite3_column_text(rq, c) ? (const char *)sqlite3_column_text(rq, c) : "");
          printf("\n");
        } else {
          printf(" %c %10lld", knee[i] ? '*' : ' ', (long long)idx[i]);
          for (int j = 0; j < o.n; j++) printf(" %14.5g", sqlite3_column_double(rq, j));
          const unsigned char *fmt = sqlite3_column_text(rq, o.n + 1), *kv = sqlite3_column_text(rq, o.n + 3),
                              *route = sqlite3_column_text(rq, o.n + 7);
          printf("  %4.0f %-7s %3.0f %-5s %5.2f %4.2f %4.0f %-6s %2.0f %5.0f\n", sqlite3_column_double(rq, o.n),
                 fmt ? (const char *)fmt : "", sqlite3_column_double(rq, o.n + 2), kv ? (const char *)kv : "",
                 sqlite3_column_double(rq, o.n + 4), sqlite3_column_double(rq, o.n + 5), sqlite3_column_double(rq, o.n + 6),
                 route ? (const char *)route : "", sqlite3_column_double(rq, o.n + 8), sqlite3_column_double(rq, o.n + 9));
        }
      }
      sqlite3_finalize(rq);
      free(idx);
      free(knee);
    }
    sqlite3_finalize(pq);
    pq = NULL;
  }
  if (!rc && !nsw) rc = qsr_errf(&err, QSR_ERR_USAGE, "%s: no sweep%s%s in this database", db, sweep ? " named " : "", sweep ? sweep : "");
out:
  sqlite3_finalize(sq);
  sqlite3_finalize(pq);
  qsr_store_close(st);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
