/*
** cmd_plot.c -- `qsr plot`: gnuplot figures from a results database:
** sweeps (pareto, ablation, breakdown), qsr validate (validation) and
** serving simulations (cdf, timeline; store/simstore.h).
**
** Always writes OUT.dat (the data) and OUT.gp (the script) beside the
** image so a user can restyle; then runs gnuplot ($QSR_GNUPLOT or gnuplot
** on the PATH). PNG (pngcairo) or SVG by the output's extension.
*/
#include "cli/cli.h"
#include "costmodel/costmodel.h"
#include "sim/sweep.h"
#include "store/store.h"
#include "util/err.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_BG 4000  /* dominated points drawn per panel (evenly sampled) */

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr plot DB --kind pareto|ablation|breakdown|validation|cdf|timeline [-o plots/NAME.png|.svg]\n"
          "                   [--sweep NAME] [--device D] [--sim ID]\n\n"
          "  pareto     decode latency vs peak memory, colour = quality-loss proxy, the Pareto front as a\n"
          "             line, dominated points faint; one panel per (device, model)\n"
          "  ablation   the sweep's base designs (e.g. the seed's eight Q/S/R combinations) as grouped\n"
          "             bars of decode latency and peak memory, one row per device\n"
          "  breakdown  stacked decode time per op of the Pareto points of each (device, model)\n"
          "  validation predicted vs measured kernel time of the last qsr validate run (its validation\n"
          "             table), log axes, y = x and +-10%% lines, colour = what produced the prediction;\n"
          "             --device picks one device when the table holds several\n"
          "  cdf        empirical CDFs of TTFT, TPOT and end-to-end latency of the stored serving\n"
          "             simulations (three panels, log x), one curve per simulation; --sim picks one\n"
          "  timeline   one simulation over simulated time: output tokens/s, memory used vs available,\n"
          "             queued and running requests, bandwidth/compute scale (when not all 1), adaptation\n"
          "             level and expert-cache hit rate (when present); --sim ID, default the newest\n"
          "Writes NAME.dat and NAME.gp beside the image; needs gnuplot (gnuplot-nox) to render.\n");
}

struct plot {
  FILE *dat, *gp;
  char dat_path[PATH_MAX], gp_path[PATH_MAX], out[PATH_MAX];
  int svg;
};

static void gp_header(struct plot *p, int rows, int cols, int w, int h) {
  if (p->svg) fprintf(p->gp, "set terminal svg size %d,%d dynamic font 'Sans,11'\n", w * cols, h * rows);
  else fprintf(p->gp, "set terminal pngcairo size %d,%d font 'Sans,10'\n", w * cols, h * rows);
  fprintf(p->gp, "set output '%s'\nset termoption noenhanced\nset datafile separator '\\t'\nset key top right\nset grid lc rgb '#e0e0e0'\n", p->out);
  static const char *const colors[] = { "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                                        "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b", "#17becf", "#7f7f7f" };
  for (int i = 0; i < 14; i++) fprintf(p->gp, "set linetype %d lc rgb '%s'\n", i + 1, colors[i]);
  fprintf(p->gp, "set multiplot layout %d,%d\n", rows, cols);
}

/* Basename of the .dat as gnuplot sees it (the script runs beside it). */
static const char *base(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static int sweep_id(sqlite3 *h, const char *name, int64_t *sid, char *sname, size_t cap, char **err) {
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(h, "SELECT id, name FROM sweeps WHERE ?1 IS NULL OR name = ?1 ORDER BY id", -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "not a qsr results database (%s)", sqlite3_errmsg(h));
  if (name) sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
  int n = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    if (!n++) { *sid = sqlite3_column_int64(q, 0); snprintf(sname, cap, "%s", sqlite3_column_text(q, 1)); }
  }
  sqlite3_finalize(q);
  if (!n) return qsr_errf(err, QSR_ERR_USAGE, "no sweep%s%s in the database", name ? " named " : "", name ? name : "");
  if (n > 1) return qsr_errf(err, QSR_ERR_USAGE, "%d sweeps in the database: choose one with --sweep", n);
  return QSR_OK;
}

static int pairs_of(sqlite3 *h, int64_t sid, char (**pairs)[2][64], int *n, char **err) {
  sqlite3_stmt *q = NULL;
  *pairs = NULL;
  *n = 0;
  if (sqlite3_prepare_v2(h, "SELECT DISTINCT device, model FROM points WHERE sweep_id = ? ORDER BY device, model", -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "%s", sqlite3_errmsg(h));
  sqlite3_bind_int64(q, 1, sid);
  while (sqlite3_step(q) == SQLITE_ROW) {
    *pairs = realloc(*pairs, (size_t)(*n + 1) * sizeof **pairs);
    if (!*pairs) abort();
    snprintf((*pairs)[*n][0], 64, "%s", sqlite3_column_text(q, 0));
    snprintf((*pairs)[*n][1], 64, "%s", sqlite3_column_text(q, 1));
    (*n)++;
  }
  sqlite3_finalize(q);
  return QSR_OK;
}

static int plot_pareto(sqlite3 *h, int64_t sid, const char *sname, struct plot *p, char **err) {
  char(*pairs)[2][64];
  int np, rc;
  if ((rc = pairs_of(h, sid, &pairs, &np, err))) return rc;
  if (!np) { free(pairs); return qsr_errf(err, QSR_ERR_USAGE, "sweep %s has no points", sname); }
  int cols = np < 2 ? 1 : 2, rows = (np + cols - 1) / cols;
  gp_header(p, rows, cols, 640, 480);
  fprintf(p->gp, "set logscale x\nset xlabel 'decode latency, ms/token (tpot)'\nset ylabel 'peak memory, MB'\n"
                 "set cblabel 'quality-loss proxy'\nset palette defined (0 '#1a9850', 0.5 '#fee08b', 1 '#d73027')\n");
  sqlite3_stmt *q = NULL;
  for (int i = 0; i < np && !rc; i++) {
    long total = 0;
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM points WHERE sweep_id = ? AND device = ? AND model = ? AND ok = 1", -1, &q, NULL) == SQLITE_OK) {
      sqlite3_bind_int64(q, 1, sid);
      sqlite3_bind_text(q, 2, pairs[i][0], -1, SQLITE_STATIC);
      sqlite3_bind_text(q, 3, pairs[i][1], -1, SQLITE_STATIC);
      if (sqlite3_step(q) == SQLITE_ROW) total = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    long stride = total > MAX_BG ? total / MAX_BG : 1;
    /* blocks 3i: feasible points (sampled); 3i+1: the stored front; 3i+2: its envelope */
    fprintf(p->dat, "# %s on %s: points that meet the constraints (every %ld-th of %ld)\n", pairs[i][1], pairs[i][0], stride, total);
    if (sqlite3_prepare_v2(h, "SELECT tpot_ms, mem_peak_mb, quality_loss FROM points WHERE sweep_id = ? AND device = ? AND model = ?"
                              " AND ok = 1 AND idx % ? = 0", -1, &q, NULL) != SQLITE_OK) { rc = qsr_errf(err, QSR_ERR_DB, "%s", sqlite3_errmsg(h)); break; }
    sqlite3_bind_int64(q, 1, sid);
    sqlite3_bind_text(q, 2, pairs[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, pairs[i][1], -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, stride);
    int any = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
      fprintf(p->dat, "%.6g\t%.6g\t%.6g\n", sqlite3_column_double(q, 0), sqlite3_column_double(q, 1), sqlite3_column_double(q, 2));
      any = 1;
    }
    if (!any) fprintf(p->dat, "NaN\tNaN\tNaN\n");
    sqlite3_finalize(q);
    fprintf(p->dat, "\n\n# %s on %s: Pareto front (knee = 1)\n", pairs[i][1], pairs[i][0]);
    if (sqlite3_prepare_v2(h, "SELECT tpot_ms, mem_peak_mb, quality_loss, knee FROM pareto WHERE sweep_id = ? AND device = ? AND model = ?"
                              " ORDER BY tpot_ms", -1, &q, NULL) != SQLITE_OK) { rc = qsr_errf(err, QSR_ERR_DB, "%s", sqlite3_errmsg(h)); break; }
    sqlite3_bind_int64(q, 1, sid);
    sqlite3_bind_text(q, 2, pairs[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, pairs[i][1], -1, SQLITE_STATIC);
    any = 0;
    double ex[512], ey[512];  /* the latency-memory envelope of the front, for the line */
    int ne = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
      double x = sqlite3_column_double(q, 0), y = sqlite3_column_double(q, 1);
      fprintf(p->dat, "%.6g\t%.6g\t%.6g\t%d\n", x, y, sqlite3_column_double(q, 2), sqlite3_column_int(q, 3));
      if (ne < 512 && (ne == 0 || y < ey[ne - 1])) { ex[ne] = x; ey[ne] = y; ne++; }
      any = 1;
    }
    if (!any) fprintf(p->dat, "NaN\tNaN\tNaN\t0\n");
    sqlite3_finalize(q);
    fprintf(p->dat, "\n\n# %s on %s: latency-memory envelope of the front\n", pairs[i][1], pairs[i][0]);
    for (int e = 0; e < ne; e++) fprintf(p->dat, "%.6g\t%.6g\n", ex[e], ey[e]);
    if (!ne) fprintf(p->dat, "NaN\tNaN\n");
    fprintf(p->dat, "\n\n");
    fprintf(p->gp, "set title '%s on %s'\n", pairs[i][1], pairs[i][0]);
    fprintf(p->gp,
            "plot '%s' index %d using 1:2 with points pt 7 ps 0.35 lc rgb '#d0d0d0' title 'meets constraints', \\\n"
            "     '' index %d using 1:2 with steps lw 1.5 lc rgb '#404040' title 'front (latency-memory)', \\\n"
            "     '' index %d using 1:2:3 with points pt 7 ps 1.0 lc palette title 'Pareto front', \\\n"
            "     '' index %d using ($4 > 0 ? $1 : NaN):2 with points pt 6 ps 2.2 lw 2 lc rgb 'black' title 'knee'\n",
            base(p->dat_path), 3 * i, 3 * i + 2, 3 * i + 1, 3 * i + 1);
  }
  fprintf(p->gp, "unset multiplot\n");
  free(pairs);
  return rc;
}

static int plot_ablation(sqlite3 *h, int64_t sid, const char *sname, struct plot *p, char **err) {
  char(*pairs)[2][64];
  int np, rc;
  if ((rc = pairs_of(h, sid, &pairs, &np, err))) return rc;
  /* devices and models */
  char devs[16][64], models[16][64];
  int nd = 0, nm = 0;
  for (int i = 0; i < np; i++) {
    int f = 0;
    for (int j = 0; j < nd; j++) f |= !strcmp(devs[j], pairs[i][0]);
    if (!f && nd < 16) snprintf(devs[nd++], 64, "%s", pairs[i][0]);
    f = 0;
    for (int j = 0; j < nm; j++) f |= !strcmp(models[j], pairs[i][1]);
    if (!f && nm < 16) snprintf(models[nm++], 64, "%s", pairs[i][1]);
  }
  free(pairs);
  if (!nd) return qsr_errf(err, QSR_ERR_USAGE, "sweep %s has no points", sname);
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(h, "SELECT design, min(idx) FROM points WHERE sweep_id = ? GROUP BY design ORDER BY min(idx)", -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "%s (a database from before the design column?)", sqlite3_errmsg(h));
  sqlite3_bind_int64(q, 1, sid);
  char designs[64][64];
  int nds = 0;
  while (sqlite3_step(q) == SQLITE_ROW && nds < 64) snprintf(designs[nds++], 64, "%s", sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  if (nds < 2) return qsr_errf(err, QSR_ERR_USAGE, "sweep %s has %d base design(s): an ablation plot needs a designs: list", sname, nds);
  gp_header(p, nd, 2, 620, 380);
  fprintf(p->gp, "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
                 "set boxwidth 0.9\nset xtics rotate by -30 nomirror\nset key top right\nset logscale y\n");
  for (int di = 0; di < nd; di++) {
    for (int metric = 0; metric < 2; metric++) {
      fprintf(p->dat, "# %s: %s per design; columns: design", devs[di], metric ? "peak memory MB" : "decode ms/token");
      for (int mi = 0; mi < nm; mi++) fprintf(p->dat, "\t%s", models[mi]);
      fprintf(p->dat, "\ndesign");
      for (int mi = 0; mi < nm; mi++) fprintf(p->dat, "\t%s", models[mi]);
      fprintf(p->dat, "\n");
      for (int k = 0; k < nds; k++) {
        const char *lab = designs[k];
        if (!strncmp(lab, "ablation-", 9)) lab += 9;
        fprintf(p->dat, "%s", lab);
        for (int mi = 0; mi < nm; mi++) {
          double v = NAN;
          if (sqlite3_prepare_v2(h, metric ? "SELECT avg(mem_peak_mb) FROM points WHERE sweep_id=? AND device=? AND model=? AND design=? AND feasible=1"
                                           : "SELECT avg(tpot_ms) FROM points WHERE sweep_id=? AND device=? AND model=? AND design=? AND feasible=1",
                                 -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, sid);
            sqlite3_bind_text(q, 2, devs[di], -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, models[mi], -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, designs[k], -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) v = sqlite3_column_double(q, 0);
          }
          sqlite3_finalize(q);
          fprintf(p->dat, "\t%.6g", v);
        }
        fprintf(p->dat, "\n");
      }
      fprintf(p->dat, "\n\n");
      fprintf(p->gp, "set title '%s: %s'\nset ylabel '%s'\n", devs[di], metric ? "peak memory" : "decode latency",
              metric ? "MB (log)" : "ms/token (log)");
      fprintf(p->gp, "plot for [c=2:%d] '%s' index %d using c:xtic(1) title columnheader(c)\n", nm + 1, base(p->dat_path),
              2 * di + metric);
    }
  }
  fprintf(p->gp, "unset multiplot\n");
  return QSR_OK;
}

static int plot_breakdown(sqlite3 *h, int64_t sid, const char *sname, struct plot *p, char **err) {
  static struct qsr_sweep sw;
  int rc = qsr_cli_sweep_from_db(h, sid, &sw, err);
  if (rc) return rc;
  char(*pairs)[2][64];
  int np;
  if ((rc = pairs_of(h, sid, &pairs, &np, err))) { qsr_sweep_free(&sw); return rc; }
  int cols = np < 2 ? 1 : 2, rows = (np + cols - 1) / cols;
  gp_header(p, rows, cols, 680, 440);
  fprintf(p->gp, "set style data histograms\nset style histogram rowstacked\nset style fill solid 0.9 border -1\n"
                 "set boxwidth 0.75\nset xtics rotate by -35 nomirror font ',8'\nset key outside right font ',8'\n"
                 "set ylabel 'decode ms/token'\n");
  sqlite3_stmt *q = NULL;
  for (int i = 0; i < np && !rc; i++) {
    if (sqlite3_prepare_v2(h, "SELECT idx, quant_weights_format || CAST(quant_weights_bits AS INT) || '/kv-' || quant_kv_cache"
                              " || '/L' || attention_local || '/' || routing_mode || '/b' || CAST(runtime_batch AS INT) FROM pareto"
                              " WHERE sweep_id = ? AND device = ? AND model = ? ORDER BY tpot_ms LIMIT 10", -1, &q, NULL) != SQLITE_OK) {
      rc = qsr_errf(err, QSR_ERR_DB, "%s", sqlite3_errmsg(h));
      break;
    }
    sqlite3_bind_int64(q, 1, sid);
    sqlite3_bind_text(q, 2, pairs[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, pairs[i][1], -1, SQLITE_STATIC);
    double ms[10][QSR_OP_COUNT];
    char lab[10][96];
    int nr = 0, used[QSR_OP_COUNT] = { 0 };
    while (nr < 10 && sqlite3_step(q) == SQLITE_ROW) {
      struct qsr_point pt;
      qsr_sweep_eval(&sw, (uint64_t)sqlite3_column_int64(q, 0), &pt);
      int dit = sw.models[pt.model].family == QSR_FAMILY_DIT;
      memset(ms[nr], 0, sizeof ms[nr]);
      for (int o = 0; o < pt.r.n_ops; o++)
        if (pt.r.ops[o].phase == (dit ? QSR_PHASE_PREFILL : QSR_PHASE_DECODE)) {
          ms[nr][pt.r.ops[o].kind] += pt.r.ops[o].ms;
          used[pt.r.ops[o].kind] |= pt.r.ops[o].ms > 0;
        }
      snprintf(lab[nr], sizeof lab[nr], "%s", sqlite3_column_text(q, 1) ? (const char *)sqlite3_column_text(q, 1) : "?");
      for (char *c = lab[nr]; *c; c++) if (*c == '\t' || *c == ' ') *c = '_';
      nr++;
    }
    sqlite3_finalize(q);
    fprintf(p->dat, "# %s on %s: decode time per op (ms/token) of up to 10 Pareto points\npoint", pairs[i][1], pairs[i][0]);
    int ncol = 0;
    for (int k = 0; k < QSR_OP_COUNT; k++) if (used[k]) { fprintf(p->dat, "\t%s", qsr_op_name(k)); ncol++; }
    fprintf(p->dat, "\n");
    for (int r = 0; r < nr; r++) {
      fprintf(p->dat, "%s", lab[r]);
      for (int k = 0; k < QSR_OP_COUNT; k++) if (used[k]) fprintf(p->dat, "\t%.6g", ms[r][k]);
      fprintf(p->dat, "\n");
    }
    if (!nr || !ncol) { fprintf(p->dat, "none\t0\n"); ncol = 1; }
    fprintf(p->dat, "\n\n");
    fprintf(p->gp, "set title '%s on %s (Pareto points, fastest first)'\n", pairs[i][1], pairs[i][0]);
    fprintf(p->gp, "plot for [c=2:%d] '%s' index %d using c:xtic(1) title columnheader(c)\n", ncol + 1, base(p->dat_path), i);
  }
  fprintf(p->gp, "unset multiplot\n");
  free(pairs);
  qsr_sweep_free(&sw);
  (void)sname;
  return rc;
}

/* Scatter of the validation table: one block per prediction source. */
static int plot_validation(sqlite3 *h, const char *device, struct plot *p, char **err) {
  static const char *const srcs[] = { "measured", "interpolated", "roofline" };
  sqlite3_stmt *q = NULL;
  char dev[64] = "", mode[16] = "";
  if (sqlite3_prepare_v2(h, "SELECT device, mode FROM validation WHERE ?1 IS NULL OR device = ?1 ORDER BY id DESC LIMIT 1",
                         -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_USAGE, "no validation table in the database: run qsr validate DB --device D first");
  if (device) sqlite3_bind_text(q, 1, device, -1, SQLITE_STATIC);
  if (sqlite3_step(q) == SQLITE_ROW) {
    snprintf(dev, sizeof dev, "%s", sqlite3_column_text(q, 0));
    snprintf(mode, sizeof mode, "%s", sqlite3_column_text(q, 1));
  }
  sqlite3_finalize(q);
  if (!dev[0]) return qsr_errf(err, QSR_ERR_USAGE, "no validation rows%s%s", device ? " for device " : "", device ? device : "");
  double lo = 1e300, hi = 0;
  int n[3] = { 0, 0, 0 };
  for (int s = 0; s < 3; s++) {
    fprintf(p->dat, "# %s: measured_us predicted_us kernel err_pct\n", srcs[s]);
    if (sqlite3_prepare_v2(h, "SELECT measured_us, predicted_us, kernel, err_pct FROM validation WHERE device = ? AND mode = ? "
                              "AND source = ? AND measured_us > 0 AND predicted_us > 0", -1, &q, NULL) != SQLITE_OK)
      return qsr_errf(err, QSR_ERR_DB, "%s", sqlite3_errmsg(h));
    sqlite3_bind_text(q, 1, dev, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mode, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, srcs[s], -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
      double m = sqlite3_column_double(q, 0), pr = sqlite3_column_double(q, 1);
      fprintf(p->dat, "%.6g\t%.6g\t%s\t%.3g\n", m, pr, sqlite3_column_text(q, 2), sqlite3_column_double(q, 3));
      if (m < lo) lo = m;
      if (pr < lo) lo = pr;
      if (m > hi) hi = m;
      if (pr > hi) hi = pr;
      n[s]++;
    }
    sqlite3_finalize(q);
    fprintf(p->dat, "%s\n\n", n[s] ? "" : "nan\tnan\t-\tnan\n");   /* keep the block numbering */
  }
  gp_header(p, 1, 1, 720, 640);
  fprintf(p->gp, "set logscale xy\nset xlabel 'measured, us'\nset ylabel 'predicted, us'\nset size ratio -1\n"
                 "set title 'qsr validate: %s (%s), %d held-out kernel calls'\nset key top left\n"
                 "set xrange [%g:%g]\nset yrange [%g:%g]\n",
          dev, mode, n[0] + n[1] + n[2], lo / 1.5, hi * 1.5, lo / 1.5, hi * 1.5);
  fprintf(p->gp, "plot x title 'y = x' lc rgb '#333333' dt 1, 1.1*x title '+-10%%' lc rgb '#999999' dt 2, "
                 "0.9*x notitle lc rgb '#999999' dt 2");
  for (int s = 0; s < 3; s++)
    if (n[s]) fprintf(p->gp, ", '%s' index %d using 1:2 with points pt 7 ps 0.8 lt %d title '%s (%d)'", base(p->dat_path), s,
                      s + 1, srcs[s], n[s]);
  fprintf(p->gp, "\nunset multiplot\n");
  return QSR_OK;
}

/* ---- serving simulations (tables of store/simstore.c) ----------------- */

#define MAX_CDF_ROWS 4000  /* points per CDF curve (evenly spaced ranks) */
#define MAX_CDF_SIMS 64

/* A curve label: the run's name (else #id), batching/adaptation/xRATE; no quotes or
** control characters (it goes inside a gnuplot '...' string). */
static void sim_label(sqlite3_stmt *q, int col0, char *out, size_t cap) {
  const char *name = (const char *)sqlite3_column_text(q, col0);
  const char *pol = (const char *)sqlite3_column_text(q, col0 + 1), *bat = (const char *)sqlite3_column_text(q, col0 + 2);
  char rate[32] = "";
  if (sqlite3_column_type(q, col0 + 3) != SQLITE_NULL) snprintf(rate, sizeof rate, "/x%g", sqlite3_column_double(q, col0 + 3));
  if (name && *name) snprintf(out, cap, "%s %s/%s%s", name, bat ? bat : "-", pol ? pol : "-", rate);
  else snprintf(out, cap, "#%lld %s/%s%s", (long long)sqlite3_column_int64(q, 0), bat ? bat : "-", pol ? pol : "-", rate);
  for (char *c = out; *c; c++)
    if (*c == '\'' || (unsigned char)*c < ' ') *c = *c == '\'' ? '`' : ' ';
}

/* The simulation to show: `want`, or the newest when want < 0. */
static int sim_pick(sqlite3 *h, int64_t want, int64_t *sid, char **err) {
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(h, "SELECT id FROM simulations WHERE ?1 IS NULL OR id = ?1 ORDER BY id DESC LIMIT 1", -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "no simulations table in the database: store a serving simulation first (qsr simulate ... -o DB)");
  if (want >= 0) sqlite3_bind_int64(q, 1, want);
  int found = sqlite3_step(q) == SQLITE_ROW;
  if (found) *sid = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  if (!found && want >= 0) return qsr_errf(err, QSR_ERR_USAGE, "no simulation with id %lld in the database", (long long)want);
  if (!found) return qsr_errf(err, QSR_ERR_DB, "no simulations in the database (the simulations table is empty)");
  return QSR_OK;
}

/* Empirical CDFs: block 3*s + m holds simulation s's metric m, sorted, with
** the fraction of requests at or below each value. */
static int plot_cdf(sqlite3 *h, int64_t want, struct plot *p, char **err) {
  static const char *const cols[3] = { "ttft_ms", "tpot_ms", "e2e_ms" };
  static const char *const titles[3] = { "time to first token", "time per output token", "end-to-end latency" };
  static const char *const xlabels[3] = { "TTFT, ms (log)", "TPOT, ms (log)", "arrival to last token, ms (log)" };
  sqlite3_stmt *q = NULL, *c = NULL, *v = NULL;
  int64_t ids[MAX_CDF_SIMS];
  char labels[MAX_CDF_SIMS][96];
  long long counts[MAX_CDF_SIMS][3];
  int ns = 0, rc = QSR_OK;
  long long total = 0;
  if (sqlite3_prepare_v2(h, "SELECT id, name, policy, batching, rate_scale FROM simulations WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
                         -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "no simulations table in the database: store a serving simulation first (qsr simulate ... -o DB)");
  if (want >= 0) sqlite3_bind_int64(q, 1, want);
  while (sqlite3_step(q) == SQLITE_ROW) {
    if (ns == MAX_CDF_SIMS) {
      sqlite3_finalize(q);
      return qsr_errf(err, QSR_ERR_USAGE, "more than %d simulations in the database: pick one with --sim ID", MAX_CDF_SIMS);
    }
    ids[ns] = sqlite3_column_int64(q, 0);
    sim_label(q, 1, labels[ns], sizeof labels[ns]);
    ns++;
  }
  sqlite3_finalize(q);
  q = NULL;
  if (!ns && want >= 0) return qsr_errf(err, QSR_ERR_USAGE, "no simulation with id %lld in the database", (long long)want);
  if (!ns) return qsr_errf(err, QSR_ERR_DB, "no simulations in the database (the simulations table is empty)");
  char sql[160];
  for (int s = 0; s < ns && !rc; s++)
    for (int m = 0; m < 3 && !rc; m++) {
      snprintf(sql, sizeof sql, "SELECT count(*) FROM sim_requests WHERE sim_id = ?1 AND %s > 0", cols[m]);
      if (sqlite3_prepare_v2(h, sql, -1, &c, NULL) != SQLITE_OK) {
        rc = qsr_errf(err, QSR_ERR_DB, "no sim_requests table in the database: %s", sqlite3_errmsg(h));
        break;
      }
      sqlite3_bind_int64(c, 1, ids[s]);
      counts[s][m] = sqlite3_step(c) == SQLITE_ROW ? sqlite3_column_int64(c, 0) : 0;
      sqlite3_finalize(c);
      c = NULL;
      total += counts[s][m];
      fprintf(p->dat, "# simulation %lld (%s): %s, %lld requests with %s > 0; columns: %s, fraction <= it\n",
              (long long)ids[s], labels[s], cols[m], counts[s][m], cols[m], cols[m]);
      long long n = counts[s][m], stride = n > MAX_CDF_ROWS ? (n + MAX_CDF_ROWS - 1) / MAX_CDF_ROWS : 1, i = 0;
      snprintf(sql, sizeof sql, "SELECT %s FROM sim_requests WHERE sim_id = ?1 AND %s > 0 ORDER BY %s", cols[m], cols[m], cols[m]);
      if (n && sqlite3_prepare_v2(h, sql, -1, &v, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(v, 1, ids[s]);
        while (sqlite3_step(v) == SQLITE_ROW) {
          if (i % stride == 0 || i == n - 1)
            fprintf(p->dat, "%.6g\t%.6g\n", sqlite3_column_double(v, 0), (double)(i + 1) / (double)n);
          i++;
        }
      }
      sqlite3_finalize(v);
      v = NULL;
      if (!i) fprintf(p->dat, "NaN\tNaN\n");   /* keep the block numbering */
      fprintf(p->dat, "\n\n");
    }
  if (rc) return rc;
  if (!total)
    return qsr_errf(err, QSR_ERR_DB, "no requests stored for %s (the sim_requests table has no rows with latencies > 0)",
                    want >= 0 ? "this simulation" : "any simulation");
  gp_header(p, 1, 3, 560, 440);
  fprintf(p->gp, "set yrange [0:1]\nset ylabel 'fraction of requests at or below x'\nset key bottom right\n");
  for (int m = 0; m < 3; m++) {
    int any = 0;
    for (int s = 0; s < ns; s++) any |= counts[s][m] > 0;
    fprintf(p->gp, "set title '%s'\nset xlabel '%s'\n", titles[m], xlabels[m]);
    if (!any) {   /* e.g. TPOT when every request produced one token */
      fprintf(p->gp, "unset logscale x\nset xrange [0:1]\nset label 1 'no request with %s > 0' at graph 0.5,0.5 center\n"
                     "plot 2 notitle\nunset label 1\nset autoscale x\n", cols[m]);
      continue;
    }
    fprintf(p->gp, "set logscale x\nplot ");
    int first = 1;
    for (int s = 0; s < ns; s++) {
      if (!counts[s][m]) continue;
      fprintf(p->gp, "%s'%s' index %d using 1:2 with steps lw 1.6 lt %d title '%s (n=%lld)'", first ? "" : ", \\\n     ",
              base(p->dat_path), 3 * s + m, s % 14 + 1, labels[s], counts[s][m]);
      first = 0;
    }
    fprintf(p->gp, "\n");
  }
  fprintf(p->gp, "unset multiplot\n");
  return QSR_OK;
}

/* Counts down the timeline's panels; the last one gets the time axis label. */
static void next_panel(struct plot *p, int *left) {
  if (--*left == 0) fprintf(p->gp, "set xlabel 'simulated time, s'\n");
}

/* One simulation over simulated time: one block, one row per sample. */
static int plot_timeline(sqlite3 *h, int64_t want, struct plot *p, int64_t *shown, char **err) {
  sqlite3_stmt *q = NULL;
  int64_t sid;
  int rc = sim_pick(h, want, &sid, err);
  if (rc) return rc;
  *shown = sid;
  char label[96] = "", what[200] = "";
  if (sqlite3_prepare_v2(h, "SELECT id, name, policy, batching, rate_scale, device, model, fluctuation FROM simulations WHERE id = ?1",
                         -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(q, 1, sid);
    if (sqlite3_step(q) == SQLITE_ROW) {
      sim_label(q, 1, label, sizeof label);
      const char *dev = (const char *)sqlite3_column_text(q, 5), *mod = (const char *)sqlite3_column_text(q, 6),
                 *fl = (const char *)sqlite3_column_text(q, 7);
      snprintf(what, sizeof what, "%s on %s%s%s", mod ? mod : "?", dev ? dev : "?", fl ? ", fluctuation " : "", fl ? fl : "");
      for (char *ch = what; *ch; ch++)
        if (*ch == '\'' || (unsigned char)*ch < ' ') *ch = ' ';
    }
  }
  sqlite3_finalize(q);
  q = NULL;
  if (sqlite3_prepare_v2(h, "SELECT t_s, queued, running, kv_mb, mem_used_mb, mem_avail_mb, tok_s, bw_scale, compute_scale, level,"
                            " hit_rate FROM sim_timeline WHERE sim_id = ?1 ORDER BY t_s", -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "no sim_timeline table in the database: %s", sqlite3_errmsg(h));
  sqlite3_bind_int64(q, 1, sid);
  fprintf(p->dat, "# simulation %lld (%s): %s\n# t_s\tqueued\trunning\tkv_mb\tmem_used_mb\tmem_avail_mb\ttok_s\tbw_scale"
                  "\tcompute_scale\tlevel\thit_rate\n", (long long)sid, label, what);
  long n = 0;
  int any_scale = 0, any_level = 0, any_hit = 0, max_level = 0;
  double t0 = 0, t1 = 0, max_scale = 1;
  while (sqlite3_step(q) == SQLITE_ROW) {
    for (int col = 0; col < 11; col++) {
      int null = sqlite3_column_type(q, col) == SQLITE_NULL;
      double x = sqlite3_column_double(q, col);
      if (null) fprintf(p->dat, "%sNaN", col ? "\t" : "");
      else fprintf(p->dat, "%s%.6g", col ? "\t" : "", x);
      if (null) continue;
      if ((col == 7 || col == 8) && fabs(x - 1) > 1e-9) any_scale = 1;
      if ((col == 7 || col == 8) && x > max_scale) max_scale = x;
      if (col == 9 && x != 0) any_level = 1;
      if (col == 9 && x > max_level) max_level = (int)x;
      if (col == 10) any_hit = 1;
    }
    fprintf(p->dat, "\n");
    double t = sqlite3_column_double(q, 0);
    if (!n || t < t0) t0 = t;
    if (!n || t > t1) t1 = t;
    n++;
  }
  sqlite3_finalize(q);
  if (!n) return qsr_errf(err, QSR_ERR_DB, "simulation %lld has no timeline samples (the sim_timeline table has no rows for it)", (long long)sid);
  if (t1 <= t0) t1 = t0 + 1;
  int panels = 3 + any_scale + (any_level || any_hit);
  gp_header(p, panels, 1, 960, 250);
  const char *d = base(p->dat_path);
  /* aligned panels on one time axis, labelled once under the last */
  fprintf(p->gp, "set lmargin 12\nset rmargin 12\nset xrange [%g:%g]\nset key top right\nunset xlabel\n"
                 "set offsets 0, 0, graph 0.45, 0   # headroom for the key above the data\n", t0, t1);
  int left = panels;
  next_panel(p, &left);
  fprintf(p->gp, "set title 'simulation %lld: %s (%s)'\nset ylabel 'output tokens/s'\nset yrange [0:*]\n"
                 "plot '%s' using 1:7 with lines lw 1.5 lt 1 title 'output tokens/s'\n", (long long)sid, label, what, d);
  next_panel(p, &left);
  fprintf(p->gp, "set title 'memory'\nset ylabel 'MB'\n"
                 "plot '%s' using 1:5 with lines lw 1.5 lt 2 title 'used (weights, KV, activations, caches)', \\\n"
                 "     '' using 1:4 with lines lw 1 dt 2 lt 4 title 'KV cache', \\\n"
                 "     '' using 1:6 with steps lw 1.5 lt 3 title 'available'\n", d);
  next_panel(p, &left);
  fprintf(p->gp, "set title 'requests'\nset ylabel 'requests'\n"
                 "plot '%s' using 1:2 with steps lw 1.5 lt 3 title 'queued', '' using 1:3 with steps lw 1.5 lt 5 title 'running'\n", d);
  if (any_scale) {
    next_panel(p, &left);
    fprintf(p->gp, "set title 'resources (fluctuation)'\nset ylabel 'x the device'\nset yrange [0:%g]\n"
                   "plot '%s' using 1:8 with steps lw 1.5 lt 1 title 'bandwidth scale', '' using 1:9 with steps lw 1.5 lt 2 dt 2 title 'compute scale'\n",
            max_scale * 1.5, d);
  }
  if (any_level || any_hit) {
    next_panel(p, &left);
    fprintf(p->gp, "set title 'adaptation'\nset ylabel 'level (0 = the base design)'\nset yrange [-0.1:%g]\nset ytics 0, 1, %d\n"
                   "set y2range [0:1.5]\nset y2label 'hit rate'\nset y2tics 0, 0.2, 1\nplot ", max_level * 1.5 + 0.6, max_level > 0 ? max_level : 1);
    if (any_level) fprintf(p->gp, "'%s' using 1:10 with steps lw 1.5 lt 7 title 'adaptation level'%s", d, any_hit ? ", " : "");
    if (any_hit) fprintf(p->gp, "'%s' using 1:11 axes x1y2 with lines lw 1.5 lt 6 title 'expert-cache hit rate'", d);
    fprintf(p->gp, "\nunset y2tics\nunset y2label\n");
  }
  fprintf(p->gp, "unset multiplot\n");
  return QSR_OK;
}

int qsr_cmd_plot(int argc, char **argv) {
  const char *db = NULL, *kind = NULL, *out = NULL, *sweep = NULL, *device = NULL;
  long long sim = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!strcmp(a, "--kind") && i + 1 < argc) { kind = argv[++i]; continue; }
    if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) { out = argv[++i]; continue; }
    if (!strcmp(a, "--sweep") && i + 1 < argc) { sweep = argv[++i]; continue; }
    if (!strcmp(a, "--device") && i + 1 < argc) { device = argv[++i]; continue; }
    if (!strcmp(a, "--sim") && i + 1 < argc) {
      char *end;
      sim = strtoll(argv[++i], &end, 10);
      if (*end || end == argv[i] || sim < 1) { fprintf(stderr, "qsr plot: --sim: expected a simulation id (1, 2, ...), got '%s'\n", argv[i]); return 2; }
      continue;
    }
    if (a[0] == '-' || db) { fprintf(stderr, "qsr plot: unexpected '%s'\n", a); usage(stderr); return 2; }
    db = a;
  }
  if (!db || !kind) { usage(stderr); return 2; }
  int validation = !strcmp(kind, "validation"), cdf = !strcmp(kind, "cdf"), timeline = !strcmp(kind, "timeline");
  if (strcmp(kind, "pareto") && strcmp(kind, "ablation") && strcmp(kind, "breakdown") && !validation && !cdf && !timeline) {
    fprintf(stderr, "qsr plot: --kind: expected pareto, ablation, breakdown, validation, cdf or timeline\n");
    return 2;
  }
  if (sim >= 0 && !cdf && !timeline) {
    fprintf(stderr, "qsr plot: --sim applies to --kind cdf and timeline\n");
    return 2;
  }
  char *err = NULL, sname[64], defout[PATH_MAX];
  qsr_store *st = NULL;
  struct plot p;
  memset(&p, 0, sizeof p);
  int rc = qsr_store_open(db, 1, &st, &err);
  if (rc) return qsr_cli_fail(rc, err);
  int64_t sid = -1;
  if (validation) {
    snprintf(sname, sizeof sname, "%s", device ? device : "validation");
  } else if (cdf || timeline) {  /* plots/<db stem>[-simID]-<kind>.png */
    const char *b = base(db);
    int n = (int)strcspn(b, ".");
    if ((rc = sim_pick(qsr_store_db(st), sim, &sid, &err))) goto out;   /* before any file is written */
    if (timeline) snprintf(sname, sizeof sname, "%.*s-sim%lld", n > 40 ? 40 : n, b, (long long)sid);
    else if (sim >= 0) snprintf(sname, sizeof sname, "%.*s-sim%lld", n > 40 ? 40 : n, b, sim);
    else snprintf(sname, sizeof sname, "%.*s", n > 60 ? 60 : n, b);
  } else if ((rc = sweep_id(qsr_store_db(st), sweep, &sid, sname, sizeof sname, &err))) {
    goto out;
  }
  if (!out) {
    mkdir("plots", 0777);
    snprintf(defout, sizeof defout, "plots/%s-%s.png", sname, kind);
    out = defout;
  }
  size_t ol = strlen(out);
  p.svg = ol > 4 && !strcmp(out + ol - 4, ".svg");
  if (!p.svg && !(ol > 4 && !strcmp(out + ol - 4, ".png"))) { rc = qsr_errf(&err, QSR_ERR_USAGE, "%s: the output must end in .png or .svg", out); goto out; }
  snprintf(p.out, sizeof p.out, "%s", base(out));
  snprintf(p.dat_path, sizeof p.dat_path, "%.*s.dat", (int)(ol - 4), out);
  snprintf(p.gp_path, sizeof p.gp_path, "%.*s.gp", (int)(ol - 4), out);
  if (!(p.dat = fopen(p.dat_path, "w")) || !(p.gp = fopen(p.gp_path, "w"))) {
    rc = qsr_errf(&err, QSR_ERR_IO, "%s: cannot write", p.dat ? p.gp_path : p.dat_path);
    goto out;
  }
  fprintf(p.gp, "# qsr plot --kind %s of %s (%s %s). Run from this folder: gnuplot %s\n", kind, db,
          cdf || timeline ? "simulations" : validation ? "device" : "sweep", sname, base(p.gp_path));
  if (validation) rc = plot_validation(qsr_store_db(st), device, &p, &err);
  else if (cdf) rc = plot_cdf(qsr_store_db(st), sim, &p, &err);
  else if (timeline) rc = plot_timeline(qsr_store_db(st), sid, &p, &sid, &err);
  else if (!strcmp(kind, "pareto")) rc = plot_pareto(qsr_store_db(st), sid, sname, &p, &err);
  else if (!strcmp(kind, "ablation")) rc = plot_ablation(qsr_store_db(st), sid, sname, &p, &err);
  else rc = plot_breakdown(qsr_store_db(st), sid, sname, &p, &err);
  fclose(p.dat);
  fclose(p.gp);
  p.dat = p.gp = NULL;
  if (rc) goto out;
  const char *gnuplot = getenv("QSR_GNUPLOT");
  if (!gnuplot || !*gnuplot) gnuplot = "gnuplot";
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", p.gp_path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir)) _exit(126);
    execlp(gnuplot, gnuplot, base(p.gp_path), (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) { rc = qsr_errf(&err, QSR_ERR_IO, "cannot run %s", gnuplot); goto out; }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    rc = qsr_errf(&err, QSR_ERR_IO, "%s not found (install gnuplot-nox, or set QSR_GNUPLOT); the data and script are written: %s, %s",
                  gnuplot, p.dat_path, p.gp_path);
    goto out;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status)) {
    rc = qsr_errf(&err, QSR_ERR_IO, "%s failed on %s (exit %d)", gnuplot, p.gp_path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    goto out;
  }
  fprintf(stderr, "qsr plot: %s (data %s, script %s)\n", out, p.dat_path, p.gp_path);
out:
  if (p.dat) fclose(p.dat);
  if (p.gp) fclose(p.gp);
  qsr_store_close(st);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
