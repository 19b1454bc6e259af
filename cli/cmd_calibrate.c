/*
** cmd_calibrate.c -- `qsr calibrate DB --device D`: fit D's efficiency
** parameters to the kernel calls measured on it (costmodel/calibrate.c) and
** write the calibrated device file.
*/
#include "cli/cli.h"
#include "cli/measured.h"
#include "costmodel/calibrate.h"
#include "kernels/qformat_traits.h"
#include "spec/spec.h"
#include "store/store.h"
#include "util/err.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr calibrate DB --device D [-o FILE] [--where SQL] [--json] [--dry-run]\n\n"
          "Fits device D's cost-model parameters to the kernel calls measured on it (rows of DB's\n"
          "measurements table with device = D and split = 'fit', as written by qsr bench): per op class\n"
          "(gemv, gemm, attention, moe, elementwise, embedding) the compute and memory efficiencies and\n"
          "their half-work sizes, the launch cost, and the per-format decode cost (vector ops per weight\n"
          "or KV element decoded). GSL nonlinear least squares on log(predicted/measured); parameters\n"
          "the data cannot see stay near D's own values. Rows marked 'holdout' are left for qsr validate.\n\n"
          "  --device D     configs/devices/D.yaml or a path; 'host' is this machine (measured, cached)\n"
          "  -o FILE        calibrated device file (default: beside D's file, D.calibrated.yaml); it\n"
          "                 keeps every line of D's file and replaces only the fitted sections\n"
          "  --where SQL    extra condition on the measurements rows, e.g. \"kernel LIKE 'gemv%%'\"\n"
          "  --json         the fit report as JSON\n"
          "  --dry-run      fit and report, write nothing\n\n"
          "Then: qsr validate DB --device D.calibrated   (predicted vs measured on the held-out rows)\n");
}

static void default_out(const char *src, char *out, size_t cap) {
  size_t n = strlen(src);
  if (n > 16 && !strcmp(src + n - 16, ".calibrated.yaml")) { snprintf(out, cap, "%s", src); return; }
  if (n > 5 && !strcmp(src + n - 5, ".yaml")) n -= 5;
  snprintf(out, cap, "%.*s.calibrated.yaml", (int)n, src);
}

static const char *decode_name(const struct qsr_fit_report *r, int k, char *buf, size_t cap) {
  if (r->decode[k].kv >= 0) snprintf(buf, cap, "kv %s", qsr_kvfmt_names[r->decode[k].kv]);
  else qsr_wfmt_bits_name(r->decode[k].wfmt, r->decode[k].bits, buf, cap);
  return buf;
}

static void print_table(const struct qsr_fit_report *r) {
  printf("%-12s %5s %9s %8s %12s %10s %7s %7s %9s\n", "class", "calls", "compute", "memory", "c_half_gflop",
         "m_half_mb", "rms%", "mape%", "within10");
  for (int c = 0; c < QSR_OPCLASS_FITTED; c++) {
    const struct qsr_fit_class *k = &r->cls[c];
    if (!k->n) continue;
    printf("%-12s %5d %9.4f %8.4f %12.4g %10.4g %7.1f %7.1f %8.0f%%\n", qsr_opclass_name(c), k->n, k->eff.compute,
           k->eff.memory, k->eff.compute_half_gflop, k->eff.memory_half_mb, k->rms_log_pct, k->mape_pct,
           100 * k->within_10pct);
  }
  printf("%-12s %5d %9s %8s %12s %10s %7.1f %7.1f %8.0f%%\n", "all", r->n, "", "", "", "", r->rms_log_pct,
         r->mape_pct, 100 * r->within_10pct);
  printf("launch_us: %.3g (sd %.2g)\ndecode ops per element:", r->launch_us, r->launch_sd_us);
  char nm[48];
  for (int k = 0; k < r->n_decode; k++) printf(" %s %.3g", decode_name(r, k, nm, sizeof nm), r->decode[k].ops);
  printf("\n");
}

static void print_json(const struct qsr_fit_report *r, const char *dev, const char *db, const char *out) {
  printf("{\n  \"device\": ");
  qsr_json_str(stdout, dev);
  printf(",\n  \"database\": ");
  qsr_json_str(stdout, db);
  printf(",\n  \"output\": ");
  if (out) qsr_json_str(stdout, out);
  else printf("null");
  printf(",\n  \"n\": %d, \"n_params\": %d, \"iterations\": %d, \"converged\": %s,\n", r->n, r->n_params,
         r->iterations, r->converged ? "true" : "false");
  printf("  \"rms_log_pct\": %.4g, \"mape_pct\": %.4g, \"within_10pct\": %.4g,\n", r->rms_log_pct, r->mape_pct,
         r->within_10pct);
  printf("  \"launch_us\": %.4g,\n  \"classes\": {", r->launch_us);
  int first = 1;
  for (int c = 0; c < QSR_OPCLASS_FITTED; c++) {
    const struct qsr_fit_class *k = &r->cls[c];
    if (!k->n) continue;
    printf("%s\n    \"%s\": {\"n\": %d, \"compute\": %.5g, \"memory\": %.5g, \"compute_half_gflop\": %.5g, "
           "\"memory_half_mb\": %.5g, \"compute_sd\": %.3g, \"rms_log_pct\": %.4g, \"mape_pct\": %.4g, "
           "\"within_10pct\": %.4g}",
           first ? "" : ",", qsr_opclass_name(c), k->n, k->eff.compute, k->eff.memory, k->eff.compute_half_gflop,
           k->eff.memory_half_mb, k->sd.compute, k->rms_log_pct, k->mape_pct, k->within_10pct);
    first = 0;
  }
  printf("\n  },\n  \"decode_ops\": {");
  char nm[48];
  for (int k = 0; k < r->n_decode; k++)
    printf("%s\"%s\": %.4g", k ? ", " : "", decode_name(r, k, nm, sizeof nm), r->decode[k].ops);
  printf("}\n}\n");
}

int qsr_cmd_calibrate(int argc, char **argv) {
  const char *db = NULL, *devname = NULL, *out = NULL, *where = NULL;
  int json = 0, dry = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--dry-run")) dry = 1;
    else if (v && (!strcmp(a, "--device") || !strcmp(a, "-d"))) { devname = v; i++; }
    else if (v && !strcmp(a, "-o")) { out = v; i++; }
    else if (v && !strcmp(a, "--where")) { where = v; i++; }
    else if (a[0] != '-' && !db) db = a;
    else { fprintf(stderr, "qsr calibrate: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
  }
  if (!db || !devname) { usage(stderr); return 2; }

  char src[PATH_MAX], outbuf[PATH_MAX + 32], *err = NULL;
  struct qsr_device dev;
  int rc = qsr_cli_device(devname, &dev, src, sizeof src, &err);
  if (rc) return qsr_cli_fail(rc, err);
  if (!out) { default_out(src, outbuf, sizeof outbuf); out = outbuf; }

  qsr_store *st = NULL;
  struct qsr_kset set = { 0 };
  struct qsr_kop *ops = NULL;
  double *us = NULL;
  if ((rc = qsr_store_open(db, 1, &st, &err))) goto out;
  if (!qsr_cli_has_measurements(qsr_store_db(st))) {
    rc = qsr_errf(&err, QSR_ERR_DB, "%s: no measurements table (run qsr bench -o %s)", db, db);
    goto out;
  }
  if ((rc = qsr_cli_kset_read(qsr_store_db(st), db, dev.name, "fit", where, &set, &err))) goto out;
  ops = calloc((size_t)set.n + 1, sizeof *ops);
  us = calloc((size_t)set.n + 1, sizeof *us);
  if (!ops || !us) { rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory"); goto out; }
  int n = 0, skipped = 0;
  for (int i = 0; i < set.n; i++) {
    if (qsr_kop_from_shape(&dev, &set.rows[i], &ops[n], NULL)) { skipped++; continue; }
    us[n++] = set.rows[i].median_us;
  }
  if (n == 0) {
    rc = qsr_errf(&err, QSR_ERR_CONFIG, "%s: no fit rows measured on device '%s' (measurements.device; qsr bench "
                                        "--device %s -o %s)", db, dev.name, dev.name, db);
    goto out;
  }
  struct qsr_fit_report rep;
  if ((rc = qsr_calibrate_fit(&dev, ops, us, n, &rep, &err))) goto out;
  if (!dry) {
    char note[1024], when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(note, sizeof note,
             "# qsr calibrate %s at %s: fitted to %d kernel calls (split 'fit', %d threads) of %s\n"
             "# qsr calibrate: %d parameters, %d iterations%s; fit error RMS %.1f%%, MAPE %.1f%%, %.0f%% within +-10%%\n"
             "# qsr calibrate: efficiency, launch_us and decode_ops below are fitted; all other figures are the source file's\n",
             QSR_VERSION, when, n, set.threads, db, rep.n_params, rep.iterations,
             rep.converged ? "" : " (not converged)", rep.rms_log_pct, rep.mape_pct, 100 * rep.within_10pct);
    if ((rc = qsr_device_write_fitted(src, out, &dev, note, &err))) goto out;
  }
  if (json) print_json(&rep, dev.name, db, dry ? NULL : out);
  else {
    printf("qsr calibrate: device '%s', %d fitted calls from %s (%d threads), %d parameters, %d iterations%s\n",
           dev.name, n, db, set.threads, rep.n_params, rep.iterations, rep.converged ? ", converged" : ", NOT converged");
    if (skipped) printf("  %d rows are not kernel calls the cost model knows (unknown format) and were left out\n", skipped);
    print_table(&rep);
    if (!dry) printf("wrote %s\n", out);
  }
out:
  free(ops);
  free(us);
  qsr_cli_kset_free(&set);
  qsr_store_close(st);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
