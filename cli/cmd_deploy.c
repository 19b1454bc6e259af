/*
** cmd_deploy.c -- `qsr deploy`: pick a design from a results database and
** write its deployment config; `qsr deploy --check FILE` validates one.
*/
#include "cli/cli.h"
#include "costmodel/costmodel.h"
#include "costmodel/metrics.h"
#include "sim/sweep.h"
#include "spec/deploy.h"
#include "spec/spec.h"
#include "store/store.h"
#include "util/err.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr deploy DB --device D [--model M] [--sweep NAME] [--pick P] [caps] [-o FILE]\n"
          "       qsr deploy --check FILE\n\n"
          "Picks one design of a results database for a device (and model) and writes its deployment\n"
          "config: per-layer weight precision and kernel variants, per-head attention types and kernels,\n"
          "routing, the predicted metrics and where the choice came from (docs/deploy.md).\n\n"
          "  --pick knee|min-tpot|min-memory|best-quality   (default knee: of the Pareto front over the\n"
          "                     sweep's objectives, the point nearest the utopia point)\n"
          "  --max-quality-loss X, --max-mem-mb X, --max-tpot-ms X   caps applied before picking\n"
          "  -o FILE            output (default: stdout)\n"
          "  --check FILE       re-read a deployment config, validate it against its model and the\n"
          "                     kernel variants, and re-predict it with the current cost model\n");
}

static int check(const char *file) {
  struct qsr_deploy_info info;
  char *err = NULL, path[PATH_MAX];
  int rc = qsr_deploy_check(file, &info, &err);
  if (rc) return qsr_cli_fail(rc, err);
  struct qsr_device dev;
  struct qsr_model m;
  struct qsr_result r;
  if ((rc = qsr_spec_resolve("devices", info.device, path, sizeof path, &err)) || (rc = qsr_device_load(path, &dev, &err)) ||
      (rc = qsr_spec_resolve("models", info.model, path, sizeof path, &err)) || (rc = qsr_model_load(path, &m, &err)) ||
      (rc = qsr_eval(&dev, &m, &info.d, NULL, &r, &err)))
    return qsr_cli_fail(rc, err);
  double dt = info.tpot_ms > 0 ? 100 * (r.tpot_ms / info.tpot_ms - 1) : 0;
  double dm = 100 * (r.mem_peak_mb / info.mem_peak_mb - 1);
  printf("%s: ok: %s on %s, %d layers; re-predicted tpot %.4g ms (file %.4g, %+.2f%%), peak %.0f MB (file %.0f, %+.2f%%)\n",
         file, info.model, info.device, info.layers, r.tpot_ms, info.tpot_ms, dt, r.mem_peak_mb, info.mem_peak_mb, dm);
  return 0;
}

int qsr_cmd_deploy(int argc, char **argv) {
  const char *db = NULL, *dev = NULL, *model = NULL, *sweep = NULL, *pick = "knee", *out = NULL;
  double cap_q = 0, cap_mem = 0, cap_tpot = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!strcmp(a, "--check")) {
      if (i + 1 >= argc) { usage(stderr); return 2; }
      return check(argv[i + 1]);
    }
    const char **sv = !strcmp(a, "--device") || !strcmp(a, "-d") ? &dev : !strcmp(a, "--model") || !strcmp(a, "-m") ? &model
                    : !strcmp(a, "--sweep") ? &sweep : !strcmp(a, "--pick") ? &pick : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out : NULL;
    double *dv = !strcmp(a, "--max-quality-loss") ? &cap_q : !strcmp(a, "--max-mem-mb") ? &cap_mem : !strcmp(a, "--max-tpot-ms") ? &cap_tpot : NULL;
    if ((sv || dv) && i + 1 >= argc) { fprintf(stderr, "qsr deploy: %s needs a value\n", a); return 2; }
    if (sv) { *sv = argv[++i]; continue; }
    if (dv) {
      char *end;
      *dv = strtod(argv[++i], &end);
      if (*end || *dv <= 0) { fprintf(stderr, "qsr deploy: %s: expected a positive number\n", a); return 2; }
      continue;
    }
    if (a[0] == '-' || db) { fprintf(stderr, "qsr deploy: unexpected '%s'\n", a); usage(stderr); return 2; }
    db = a;
  }
  if (!db || !dev) { fprintf(stderr, "qsr deploy: DB and --device are required\n"); usage(stderr); return 2; }
  if (strcmp(pick, "knee") && strcmp(pick, "min-tpot") && strcmp(pick, "min-memory") && strcmp(pick, "best-quality")) {
    fprintf(stderr, "qsr deploy: --pick: expected knee, min-tpot, min-memory or best-quality\n");
    return 2;
  }
  char *err = NULL, where[256];
  qsr_store *st = NULL;
  sqlite3_stmt *q = NULL;
  static struct qsr_sweep sw;
  int have_sw = 0;
  int rc = qsr_store_open(db, 1, &st, &err);
  if (rc) return qsr_cli_fail(rc, err);
  sqlite3 *h = qsr_store_db(st);
  /* the (sweep, model) pairs that have this device */
  if (sqlite3_prepare_v2(h, "SELECT DISTINCT s.id, s.name, s.objectives, p.model FROM points p JOIN sweeps s ON s.id = p.sweep_id"
                            " WHERE p.device = ?1 AND (?2 IS NULL OR p.model = ?2) AND (?3 IS NULL OR s.name = ?3)", -1, &q, NULL) != SQLITE_OK) {
    rc = qsr_errf(&err, QSR_ERR_DB, "%s: not a qsr results database (%s)", db, sqlite3_errmsg(h));
    goto out;
  }
  sqlite3_bind_text(q, 1, dev, -1, SQLITE_STATIC);
  if (model) sqlite3_bind_text(q, 2, model, -1, SQLITE_STATIC);
  if (sweep) sqlite3_bind_text(q, 3, sweep, -1, SQLITE_STATIC);
  int64_t sid = -1;
  char objs[256] = "", mname[64] = "", sname[64] = "";
  int pairs = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    if (pairs++) continue;
    sid = sqlite3_column_int64(q, 0);
    snprintf(sname, sizeof sname, "%s", sqlite3_column_text(q, 1));
    snprintf(objs, sizeof objs, "%s", sqlite3_column_text(q, 2));
    snprintf(mname, sizeof mname, "%s", sqlite3_column_text(q, 3));
  }
  sqlite3_finalize(q);
  q = NULL;
  if (!pairs) { rc = qsr_errf(&err, QSR_ERR_USAGE, "%s: no points for device %s%s%s", db, dev, model ? " and model " : "", model ? model : ""); goto out; }
  if (pairs > 1) { rc = qsr_errf(&err, QSR_ERR_USAGE, "%s: several sweeps or models for %s: choose with --model and --sweep", db, dev); goto out; }
  size_t u = 0;
  where[0] = '\0';
  if (cap_q > 0) u += (size_t)snprintf(where + u, sizeof where - u, "quality_loss <= %.17g", cap_q);
  if (cap_mem > 0) u += (size_t)snprintf(where + u, sizeof where - u, "%smem_peak_mb <= %.17g", u ? " AND " : "", cap_mem);
  if (cap_tpot > 0) u += (size_t)snprintf(where + u, sizeof where - u, "%stpot_ms <= %.17g", u ? " AND " : "", cap_tpot);
  int64_t idx = -1;
  if (!strcmp(pick, "knee")) {
    struct qsr_objspec o;
    int64_t *fi;
    uint8_t *fk;
    size_t n;
    if ((rc = qsr_cli_objectives(objs, &o, &err)) || (rc = qsr_cli_front(h, sid, dev, mname, &o, u ? where : NULL, &fi, &fk, &n, &err))) goto out;
    for (size_t i = 0; i < n; i++)
      if (fk[i]) idx = fi[i];
    free(fi);
    free(fk);
  } else {
    const char *order = !strcmp(pick, "min-tpot") ? "tpot_ms, mem_peak_mb" : !strcmp(pick, "min-memory") ? "mem_peak_mb, tpot_ms"
                      : "quality_loss, tpot_ms";
    char sql[768];
    snprintf(sql, sizeof sql, "SELECT idx FROM points WHERE sweep_id = ? AND device = ? AND model = ? AND ok = 1%s%s%s ORDER BY %s, idx LIMIT 1",
             u ? " AND (" : "", where, u ? ")" : "", order);
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) != SQLITE_OK) { rc = qsr_errf(&err, QSR_ERR_DB, "%s: %s", db, sqlite3_errmsg(h)); goto out; }
    sqlite3_bind_int64(q, 1, sid);
    sqlite3_bind_text(q, 2, dev, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, mname, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) idx = sqlite3_column_int64(q, 0);
  }
  if (idx < 0) { rc = qsr_errf(&err, QSR_ERR_USAGE, "%s: no design of %s on %s meets the constraints%s%s", db, mname, dev, u ? " and " : "", where); goto out; }
  if ((rc = qsr_cli_sweep_from_db(h, sid, &sw, &err))) goto out;
  have_sw = 1;
  struct qsr_point pt;
  qsr_sweep_eval(&sw, (uint64_t)idx, &pt);
  if (!pt.valid || !pt.r.feasible) { rc = qsr_errf(&err, QSR_ERR_CONFIG, "point %lld no longer evaluates: %s", (long long)idx, pt.why); goto out; }
  struct qsr_provenance pv;
  memset(&pv, 0, sizeof pv);
  snprintf(pv.database, sizeof pv.database, "%s", db);
  snprintf(pv.sweep, sizeof pv.sweep, "%s", sname);
  snprintf(pv.sweep_hash, sizeof pv.sweep_hash, "%s", sw.hash);
  pv.point = idx;
  snprintf(pv.pick, sizeof pv.pick, "%s", pick);
  FILE *f = stdout;
  char tmp[PATH_MAX];
  if (out) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash) {  /* create the parent folders (results/deploy/) */
      *slash = '\0';
      for (char *p = dir + 1; *p; p++)
        if (*p == '/') { *p = '\0'; mkdir(dir, 0777); *p = '/'; }
      mkdir(dir, 0777);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (!(f = fopen(tmp, "w"))) { rc = qsr_errf(&err, QSR_ERR_IO, "%s: cannot write", tmp); goto out; }
  }
  rc = qsr_deploy_write(f, &sw.devs[pt.dev], &sw.models[pt.model], &pt.d, &pt.r, &pv, &err);
  if (out) {
    if (fclose(f) && !rc) rc = qsr_errf(&err, QSR_ERR_IO, "%s: write failed", tmp);
    if (!rc && rename(tmp, out)) rc = qsr_errf(&err, QSR_ERR_IO, "%s: cannot write", out);
    if (rc) remove(tmp);
    else fprintf(stderr, "qsr deploy: %s on %s, point %lld (%s): tpot %.4g ms, peak %.0f MB, quality proxy %.4f -> %s\n",
                 mname, dev, (long long)idx, pick, pt.r.tpot_ms, pt.r.mem_peak_mb, pt.r.quality_loss, out);
  }
out:
  sqlite3_finalize(q);
  if (have_sw) qsr_sweep_free(&sw);
  qsr_store_close(st);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
