/*
** cmd_validate.c -- `qsr validate DB --device D`: predicted vs measured on
** the kernel calls held out of the fit. Results are stored in the database
**   validation(id INTEGER PRIMARY KEY, measurement INTEGER (measurements.id),
**              device TEXT, mode TEXT ('auto' | 'roofline'), kernel TEXT,
**              op_class TEXT, measured_us REAL, predicted_us REAL, lo_us REAL,
**              hi_us REAL, source TEXT ('measured' | 'interpolated' |
**              'roofline'), err_pct REAL, created_at TEXT)
** (a run replaces the rows of its device and mode) for qsr plot --kind validation.
*/
#include "cli/cli.h"
#include "cli/measured.h"
#include "costmodel/calibrate.h"
#include "kernels/qformat_traits.h"
#include "spec/deploy.h"
#include "spec/spec.h"
#include "store/store.h"
#include "util/err.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr validate DB --device D [--mode auto|roofline] [--worst N] [--where SQL] [--json] [--no-store]\n\n"
          "Predicts every kernel call of DB's measurements table that was held out of the fit (split =\n"
          "'holdout', device = D's name) and compares with what was measured.\n\n"
          "  --device D     the device to predict with, usually the calibrated one: host.calibrated,\n"
          "                 h100-sxm.calibrated (configs/devices/D.yaml or a path)\n"
          "  --mode M       auto (default): the measured-lookup predictor -- the same shape measured in\n"
          "                 the fit rows, else interpolated between fit rows of the same kernel and shape\n"
          "                 along tokens (or context), else the calibrated roofline; roofline: the\n"
          "                 calibrated roofline only. Both figures are always printed.\n"
          "  --worst N      list the N largest errors (default 5)\n"
          "  --where SQL    extra condition on the measurements rows\n"
          "  --json         {n, mape_pct, median_abs_pct, within_10pct, worst: [...], by_source, by_class, roofline,\n"
          "                 e2e_rows, e2e}\n"
          "End-to-end rows of the device (kernel 'e2e': qsr import, qsr run) are predicted too: prompt and\n"
          "generation tokens/s, with the deployment config that was run or the model at the row's format.\n"
          "  --no-store     do not write the validation table\n");
}

struct vrow { int i; double pred, lo, hi, err; int src, cls; };

struct stats { int n; double mape, median, within; };

static void stats_of(const struct vrow *v, int n, int cls_filter, int src_filter, struct stats *s) {
  double *a = malloc((size_t)(n ? n : 1) * sizeof *a);
  int k = 0, w = 0;
  double sum = 0;
  for (int i = 0; i < n && a; i++) {
    if (src_filter >= 0 && v[i].src != src_filter) continue;
    if (cls_filter >= 0 && v[i].cls != cls_filter) continue;
    a[k++] = fabs(v[i].err);
    sum += fabs(v[i].err);
    w += fabs(v[i].err) <= 10;
  }
  s->n = k;
  s->mape = k ? sum / k : 0;
  s->within = k ? (double)w / k : 0;
  if (k) gsl_sort(a, 1, (size_t)k);
  s->median = k ? gsl_stats_median_from_sorted_data(a, 1, (size_t)k) : 0;
  free(a);
}

static int by_abs_err(const void *x, const void *y) {
  double a = fabs(((const struct vrow *)x)->err), b = fabs(((const struct vrow *)y)->err);
  return a < b ? 1 : a > b ? -1 : 0;
}

static void shape_text(const struct qsr_kshape *s, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "%s", s->kernel);
  int f = s->wfmt ? qsr_wfmt_from_name(s->wfmt) : -1;
  char wb[32];
  if (f >= 0 && n < cap) n += (size_t)snprintf(buf + n, cap - n, " %s", qsr_wfmt_bits_name(f, s->bits, wb, sizeof wb));
  if (s->kvfmt && n < cap) n += (size_t)snprintf(buf + n, cap - n, " kv %s", s->kvfmt);
  if (s->rows > 0 && n < cap) n += (size_t)snprintf(buf + n, cap - n, " %lldx%lld", (long long)s->rows, (long long)s->cols);
  if (s->tokens > 0 && n < cap) n += (size_t)snprintf(buf + n, cap - n, " T=%lld", (long long)s->tokens);
  if (s->ctx > 0 && n < cap) snprintf(buf + n, cap - n, " ctx=%lld", (long long)s->ctx);
}

static int store_rows(sqlite3 *db, const char *path, const char *device, const char *mode, const struct qsr_kset *set,
                      const struct vrow *v, int n, char **err) {
  static const char *const schema =
      "CREATE TABLE IF NOT EXISTS validation(id INTEGER PRIMARY KEY, measurement INTEGER, device TEXT, mode TEXT, "
      "kernel TEXT, op_class TEXT, measured_us REAL, predicted_us REAL, lo_us REAL, hi_us REAL, source TEXT, "
      "err_pct REAL, created_at TEXT DEFAULT CURRENT_TIMESTAMP)";
  sqlite3_stmt *del = NULL, *ins = NULL;
  int rc = SQLITE_OK;
  if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) goto out;
  if ((rc = sqlite3_exec(db, schema, NULL, NULL, NULL)) != SQLITE_OK) goto out;
  if ((rc = sqlite3_prepare_v2(db, "DELETE FROM validation WHERE device = ? AND mode = ?", -1, &del, NULL)) != SQLITE_OK)
    goto out;
  sqlite3_bind_text(del, 1, device, -1, SQLITE_STATIC);
  sqlite3_bind_text(del, 2, mode, -1, SQLITE_STATIC);
  if ((rc = sqlite3_step(del)) != SQLITE_DONE) goto out;
  if ((rc = sqlite3_prepare_v2(db, "INSERT INTO validation(measurement, device, mode, kernel, op_class, measured_us, "
                                   "predicted_us, lo_us, hi_us, source, err_pct) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                               -1, &ins, NULL)) != SQLITE_OK)
    goto out;
  rc = SQLITE_DONE;
  for (int i = 0; i < n && rc == SQLITE_DONE; i++) {
    const struct qsr_kshape *s = &set->rows[v[i].i];
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, s->id);
    sqlite3_bind_text(ins, 2, device, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, mode, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, s->kernel, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, s->op_class, -1, SQLITE_STATIC);
    sqlite3_bind_double(ins, 6, s->median_us);
    sqlite3_bind_double(ins, 7, v[i].pred);
    sqlite3_bind_double(ins, 8, v[i].lo);
    sqlite3_bind_double(ins, 9, v[i].hi);
    sqlite3_bind_text(ins, 10, qsr_psource_name(v[i].src), -1, SQLITE_STATIC);
    sqlite3_bind_double(ins, 11, v[i].err);
    rc = sqlite3_step(ins);
  }
  if (rc == SQLITE_DONE) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
out:
  if (rc != SQLITE_OK && rc != SQLITE_DONE) {
    int r = qsr_errf(err, QSR_ERR_DB, "%s: validation table: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return r;
  }
  sqlite3_finalize(del);
  sqlite3_finalize(ins);
  return QSR_OK;
}

static void json_stats(const char *name, const struct stats *s, int last) {
  printf("    \"%s\": {\"n\": %d, \"mape_pct\": %.4g, \"median_abs_pct\": %.4g, \"within_10pct\": %.4g}%s\n", name,
         s->n, s->mape, s->median, s->within, last ? "" : ",");
}

/* End-to-end rows (kernel 'e2e': qsr import, qsr run) of the device: the
** design is the deployment config that was run (qsr run) or the model's
** baseline at the row's weight format (imports); prompt and generation
** throughput are predicted and compared. Returns how many were compared. */
struct e2e_stats { int n; double sum_abs, within; };

static int validate_e2e(sqlite3 *h, const struct qsr_device *dev, const char *where, int json, struct e2e_stats *es) {
  memset(es, 0, sizeof *es);
  char *sql = sqlite3_mprintf("SELECT id, model, wfmt, bits, grp, batch, prompt, gen, prompt_tok_s, gen_tok_s, config, quant "
                              "FROM measurements WHERE kernel = 'e2e' AND device = %Q AND (%s) ORDER BY id",
                              dev->name, where && *where ? where : "1");
  sqlite3_stmt *q = NULL;
  int shown = 0;
  if (!sql || sqlite3_prepare_v2(h, sql, -1, &q, NULL) != SQLITE_OK) { sqlite3_free(sql); return 0; }
  static struct qsr_design_builder b;
  static struct qsr_deploy_info info;
  while (sqlite3_step(q) == SQLITE_ROW) {
    const char *model = (const char *)sqlite3_column_text(q, 1), *wfmt = (const char *)sqlite3_column_text(q, 2);
    const char *config = (const char *)sqlite3_column_text(q, 10), *quant = (const char *)sqlite3_column_text(q, 11);
    char path[PATH_MAX], *err = NULL;
    struct qsr_model m;
    struct qsr_result r;
    if (!model || qsr_spec_resolve("models", model, path, sizeof path, &err) || qsr_model_load(path, &m, &err)) {
      free(err);
      continue;
    }
    struct qsr_design d;
    if (config && !qsr_deploy_check(config, &info, &err)) d = info.d;
    else {
      free(err);
      err = NULL;
      int f = wfmt ? qsr_wfmt_from_name(wfmt) : -1;
      if (f < 0) continue;
      qsr_design_begin(&b, &m);
      b.d.weights = (struct qsr_wq){ f, sqlite3_column_int(q, 3), sqlite3_column_int(q, 4) };
      if (qsr_design_finish(&b, &m, &err)) { free(err); continue; }
      d = b.d;
    }
    free(err);
    err = NULL;
    d.batch = sqlite3_column_int(q, 5) > 0 ? sqlite3_column_int(q, 5) : 1;
    d.prompt = sqlite3_column_int(q, 6) > 0 ? sqlite3_column_int(q, 6) : 1;
    d.gen = sqlite3_column_int(q, 7) > 0 ? sqlite3_column_int(q, 7) : 1;
    if (qsr_eval(dev, &m, &d, NULL, &r, &err) || !r.feasible) { free(err); continue; }
    double pm = sqlite3_column_double(q, 8), gm = sqlite3_column_double(q, 9);
    double pp = d.batch * d.prompt / (r.prefill_ms / 1e3), gp = d.batch / (r.tpot_ms / 1e3);
    double ev[2] = { pm > 0 ? 100 * (pp - pm) / pm : NAN, gm > 0 ? 100 * (gp - gm) / gm : NAN };
    for (int k = 0; k < 2; k++)
      if (isfinite(ev[k])) { es->n++; es->sum_abs += fabs(ev[k]); es->within += fabs(ev[k]) <= 10; }
    if (json) {
      printf("%s\n    {\"measurement\": %lld, \"model\": ", shown++ ? "," : "", (long long)sqlite3_column_int64(q, 0));
      qsr_json_str(stdout, model);
      printf(", \"quant\": ");
      qsr_json_str(stdout, quant ? quant : "");
      printf(", \"batch\": %d, \"prompt\": %d, \"gen\": %d, \"prompt_tok_s\": [%.4g, %.4g], \"gen_tok_s\": [%.4g, %.4g]}",
             d.batch, d.prompt, d.gen, pm, pp, gm, gp);
    } else {
      if (!shown++) printf("end to end (measured / predicted tokens/s):\n");
      printf("  %-16s %-10s b%d p%d g%d   prompt %9.1f / %9.1f (%+.1f%%)   gen %8.2f / %8.2f (%+.1f%%)\n", model,
             quant ? quant : "", d.batch, d.prompt, d.gen, pm, pp, ev[0], gm, gp, ev[1]);
    }
  }
  sqlite3_finalize(q);
  sqlite3_free(sql);
  return shown;
}

int qsr_cmd_validate(int argc, char **argv) {
  const char *db = NULL, *devname = NULL, *where = NULL, *mode = "auto";
  int json = 0, nworst = 5, store = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--no-store")) store = 0;
    else if (v && (!strcmp(a, "--device") || !strcmp(a, "-d"))) { devname = v; i++; }
    else if (v && !strcmp(a, "--mode")) { mode = v; i++; }
    else if (v && !strcmp(a, "--where")) { where = v; i++; }
    else if (v && !strcmp(a, "--worst")) { nworst = atoi(v); i++; if (nworst < 0) nworst = 0; }
    else if (a[0] != '-' && !db) db = a;
    else { fprintf(stderr, "qsr validate: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
  }
  if (!db || !devname) { usage(stderr); return 2; }
  if (strcmp(mode, "auto") && strcmp(mode, "roofline")) {
    fprintf(stderr, "qsr validate: --mode %s: expected auto or roofline\n", mode);
    return 2;
  }
  char src[PATH_MAX], *err = NULL;
  struct qsr_device dev;
  int rc = qsr_cli_device(devname, &dev, src, sizeof src, &err);
  if (rc) return qsr_cli_fail(rc, err);

  qsr_store *st = NULL;
  struct qsr_kset fit = { 0 }, hold = { 0 };
  qsr_lookup *lk = NULL;
  struct vrow *v = NULL, *vr = NULL;
  if ((rc = qsr_store_open(db, !store, &st, &err))) goto out;
  sqlite3 *h = qsr_store_db(st);
  if (!qsr_cli_has_measurements(h)) {
    rc = qsr_errf(&err, QSR_ERR_DB, "%s: no measurements table (run qsr bench -o %s)", db, db);
    goto out;
  }
  if ((rc = qsr_cli_kset_read(h, db, dev.name, "fit", where, &fit, &err)) ||
      (rc = qsr_cli_kset_read(h, db, dev.name, "holdout", where, &hold, &err)) ||
      (rc = qsr_lookup_new(fit.rows, fit.n, &lk, &err)))
    goto out;
  v = calloc((size_t)hold.n + 1, sizeof *v);
  vr = calloc((size_t)hold.n + 1, sizeof *vr);
  if (!v || !vr) { rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory"); goto out; }
  int n = 0;
  for (int i = 0; i < hold.n; i++) {
    struct qsr_prediction pa, pr;
    qsr_lookup_predict(lk, &dev, &hold.rows[i], &pa);
    qsr_lookup_predict(NULL, &dev, &hold.rows[i], &pr);
    struct qsr_kop op;
    if (!isfinite(pr.us) || qsr_kop_from_shape(&dev, &hold.rows[i], &op, NULL)) continue;   /* not a known call */
    double m = hold.rows[i].median_us;
    v[n] = (struct vrow){ i, pa.us, pa.lo_us, pa.hi_us, 100 * (pa.us - m) / m, pa.source, op.cls };
    vr[n] = (struct vrow){ i, pr.us, pr.lo_us, pr.hi_us, 100 * (pr.us - m) / m, pr.source, op.cls };
    n++;
  }
  if (!n) {   /* imported end-to-end rows alone */
    struct e2e_stats es;
    if (json) printf("{\n  \"device\": \"%s\", \"n\": 0,\n  \"e2e_rows\": [", dev.name);
    int k = validate_e2e(h, &dev, where, json, &es);
    if (json) printf("\n  ],\n  \"e2e\": {\"n\": %d, \"mape_pct\": %.4g, \"within_10pct\": %.4g}\n}\n", es.n,
                     es.n ? es.sum_abs / es.n : 0, es.n ? es.within / es.n : 0);
    else if (k && es.n) printf("  end to end: %d throughputs, MAPE %.1f%%, %.0f%% within +-10%%\n", es.n,
                               es.sum_abs / es.n, 100 * es.within / es.n);
    if (!k) rc = qsr_errf(&err, QSR_ERR_CONFIG, "%s: nothing measured on device '%s' to validate (no held-out kernel "
                                                "calls, no end-to-end rows of a bundled model)", db, dev.name);
    goto out;
  }
  int roof = !strcmp(mode, "roofline");
  struct vrow *sel = roof ? vr : v;
  if (store && (rc = store_rows(h, db, dev.name, mode, &hold, sel, n, &err))) goto out;
  struct stats all, rf, src_s[QSR_PSOURCE_COUNT], cls_s[QSR_OPCLASS_COUNT];
  stats_of(sel, n, -1, -1, &all);
  stats_of(vr, n, -1, -1, &rf);
  for (int s = 0; s < QSR_PSOURCE_COUNT; s++) stats_of(sel, n, -1, s, &src_s[s]);
  for (int c = 0; c < QSR_OPCLASS_COUNT; c++) stats_of(sel, n, c, -1, &cls_s[c]);
  qsort(sel, (size_t)n, sizeof *sel, by_abs_err);
  if (nworst > n) nworst = n;
  char shape[256];
  if (json) {
    printf("{\n  \"device\": ");
    qsr_json_str(stdout, dev.name);
    printf(", \"device_file\": ");
    qsr_json_str(stdout, src);
    printf(", \"database\": ");
    qsr_json_str(stdout, db);
    printf(", \"mode\": \"%s\", \"fitted\": %s,\n", mode, dev.eff_fitted ? "true" : "false");
    printf("  \"n\": %d,\n  \"mape_pct\": %.4g,\n  \"median_abs_pct\": %.4g,\n  \"within_10pct\": %.4g,\n  \"worst\": [",
           all.n, all.mape, all.median, all.within);
    for (int i = 0; i < nworst; i++) {
      const struct qsr_kshape *s = &hold.rows[sel[i].i];
      shape_text(s, shape, sizeof shape);
      printf("%s\n    {\"measurement\": %lld, \"call\": ", i ? "," : "", (long long)s->id);
      qsr_json_str(stdout, shape);
      printf(", \"measured_us\": %.6g, \"predicted_us\": %.6g, \"err_pct\": %.4g, \"source\": \"%s\"}", s->median_us,
             sel[i].pred, sel[i].err, qsr_psource_name(sel[i].src));
    }
    printf("\n  ],\n  \"by_source\": {\n");
    for (int s = 0; s < QSR_PSOURCE_COUNT; s++) json_stats(qsr_psource_name(s), &src_s[s], s == QSR_PSOURCE_COUNT - 1);
    printf("  },\n  \"by_class\": {\n");
    int last = -1;
    for (int c = 0; c < QSR_OPCLASS_COUNT; c++) if (cls_s[c].n) last = c;
    for (int c = 0; c < QSR_OPCLASS_COUNT; c++)
      if (cls_s[c].n) json_stats(qsr_opclass_name(c), &cls_s[c], c == last);
    printf("  },\n  \"roofline\": {\"n\": %d, \"mape_pct\": %.4g, \"median_abs_pct\": %.4g, \"within_10pct\": %.4g},\n",
           rf.n, rf.mape, rf.median, rf.within);
    struct e2e_stats es;
    printf("  \"e2e_rows\": [");
    validate_e2e(h, &dev, where, 1, &es);
    printf("\n  ],\n  \"e2e\": {\"n\": %d, \"mape_pct\": %.4g, \"within_10pct\": %.4g}\n}\n", es.n,
           es.n ? es.sum_abs / es.n : 0, es.n ? es.within / es.n : 0);
  } else {
    printf("qsr validate: device '%s' (%s, %s), %d held-out kernel calls of %s, %d fit rows for lookup\n", dev.name,
           src, dev.eff_fitted ? "calibrated" : "NOT calibrated: run qsr calibrate first", n, db, fit.n);
    printf("%-22s %5s %9s %9s %9s\n", "predictor", "calls", "MAPE%", "median%", "within10");
    printf("%-22s %5d %9.1f %9.1f %8.0f%%\n", mode, all.n, all.mape, all.median, 100 * all.within);
    if (!roof) {
      for (int s = 0; s < QSR_PSOURCE_COUNT; s++)
        if (src_s[s].n)
          printf("  %-20s %5d %9.1f %9.1f %8.0f%%\n", qsr_psource_name(s), src_s[s].n, src_s[s].mape, src_s[s].median,
                 100 * src_s[s].within);
      printf("%-22s %5d %9.1f %9.1f %8.0f%%\n", "roofline only", rf.n, rf.mape, rf.median, 100 * rf.within);
    }
    printf("by op class (%s):\n", mode);
    for (int c = 0; c < QSR_OPCLASS_COUNT; c++)
      if (cls_s[c].n)
        printf("  %-20s %5d %9.1f %9.1f %8.0f%%\n", qsr_opclass_name(c), cls_s[c].n, cls_s[c].mape, cls_s[c].median,
               100 * cls_s[c].within);
    if (nworst) printf("worst %d:\n", nworst);
    for (int i = 0; i < nworst; i++) {
      const struct qsr_kshape *s = &hold.rows[sel[i].i];
      shape_text(s, shape, sizeof shape);
      printf("  %-48s measured %10.1f us  predicted %10.1f us  %+6.1f%%  (%s)\n", shape, s->median_us, sel[i].pred,
             sel[i].err, qsr_psource_name(sel[i].src));
    }
    struct e2e_stats es;
    if (validate_e2e(h, &dev, where, 0, &es) && es.n)
      printf("  end to end: %d throughputs, MAPE %.1f%%, %.0f%% within +-10%%\n", es.n, es.sum_abs / es.n,
             100 * es.within / es.n);
  }
out:
  free(v);
  free(vr);
  qsr_lookup_free(lk);
  qsr_cli_kset_free(&fit);
  qsr_cli_kset_free(&hold);
  qsr_store_close(st);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
