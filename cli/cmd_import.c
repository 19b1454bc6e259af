/*
** cmd_import.c -- `qsr import FILE... -o DB`: end-to-end measurements made
** with other engines (llama-bench CSV/JSON/JSONL, plain CSV) into the
** measurements table, for qsr validate and qsr calibrate. The readers are in
** spec/import.c; this file parses flags, writes rows and prints summaries.
**
** All files are read before anything is written, then written in one
** transaction: an error anywhere leaves the database as it was. A row equal
** to one already stored (same source, device, engine build, model, weights,
** shape and numbers) is skipped, so importing a file twice adds nothing.
*/
#include "cli/cli.h"
#include "spec/import.h"
#include "store/measure.h"
#include "store/store.h"
#include "util/err.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr import FILE... -o DB [--format F] [--device NAME] [--model NAME] [--split fit|holdout]\n"
          "                  [--dry-run]\n\n"
          "Reads end-to-end measurements made with other engines into the `measurements` table of DB\n"
          "(created if missing), one row per test, as kernel = op_class = 'e2e', backend = 'external',\n"
          "so that qsr validate and qsr calibrate can use them. Formats (docs/import.md):\n\n"
          "  llama-bench-csv    llama-bench -o csv     one row per test (pp, tg or pp+tg)\n"
          "  llama-bench-json   llama-bench -o json    an array of objects\n"
          "  llama-bench-jsonl  llama-bench -o jsonl   one object per line\n"
          "  csv                a header with device, model, quantisation, batch, prompt, generation,\n"
          "                     prompt_tok_s, gen_tok_s (any order; batch optional, default 1; at least\n"
          "                     one of the two rates per row; rates are tokens/s summed over the batch)\n\n"
          "llama-bench rows: a pp test (n_prompt > 0, n_gen = 0) gives prompt_tok_s = avg_ts, a tg test\n"
          "gives gen_tok_s = avg_ts; a pp+tg test keeps both counts and its time but no rate (avg_ts mixes\n"
          "the two). median_us = avg_ns / 1000 is llama-bench's MEAN; spread_pct = stddev / mean;\n"
          "p10/p90 and reps come from samples_ns (JSON). batch = 1 (llama-bench runs one sequence),\n"
          "ctx = n_depth, tokens = the prompt chunk (min(n_prompt, n_ubatch)), threads = n_threads,\n"
          "device_desc = gpu_info (cpu_info when no layer is offloaded), driver = backends,\n"
          "rev = build_commit, quant = the llama.cpp type (Q4_K_M...) from model_type or the file name,\n"
          "mapped to a qsr weight format (wfmt, bits, grp) by the table in docs/import.md. F32 and the\n"
          "IQ/TQ/MXFP4 types have no qsr format: such a row is an error.\n\n"
          "  -o DB          database to add rows to (required unless --dry-run)\n"
          "  --format F     auto (default: from the content), llama-bench-csv, llama-bench-json,\n"
          "                 llama-bench-jsonl or csv\n"
          "  --device NAME  the device the rows describe (a name from `qsr list devices`); replaces a csv\n"
          "                 file's device column. Without it llama-bench rows get device NULL, which\n"
          "                 qsr validate --device cannot select (a warning says so)\n"
          "  --model NAME   the model (a name from `qsr list models`); replaces a csv file's model column.\n"
          "                 Without it a llama-bench model is the bundled model of the same llama.cpp\n"
          "                 architecture within 2%% of model_n_params, else model_type without its type\n"
          "  --split S      fit (qsr calibrate may fit to these rows) or holdout (kept out of the fit, for\n"
          "                 qsr validate); default holdout: another engine's kernels are not qsr's\n"
          "  --dry-run      read and map the files, print the summaries, write nothing\n\n"
          "Errors name file, line, column and field, exit 1 and write nothing (every file is read\n"
          "first, then all rows go in one transaction). Rows already stored are skipped.\n\n"
          "examples:\n"
          "  llama-bench -m llama-2-7b.Q4_0.gguf -p 512 -n 128 -o json > a100.json\n"
          "  qsr import a100.json -o results/measured.db --device a100-80g\n"
          "  qsr import runs.csv -o results/measured.db --split fit\n");
}

/* Binds v (NULL when negative / not finite, as qsr_measure_put stores it). */
static int bind_i64(sqlite3_stmt *st, int i, int64_t v) {
  return v >= 0 ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}
static int bind_real(sqlite3_stmt *st, int i, double v) {
  return isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}
static int bind_text(sqlite3_stmt *st, int i, const char *s) {
  return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static const char SQL_DUP[] =
  "SELECT 1 FROM measurements WHERE id <= ?1 AND kernel = 'e2e' AND source IS ?2 AND device IS ?3"
  " AND device_desc IS ?4 AND driver IS ?5 AND rev IS ?6 AND model IS ?7 AND quant IS ?8 AND threads IS ?9"
  " AND batch IS ?10 AND prompt IS ?11 AND gen IS ?12 AND ctx IS ?13 AND tokens IS ?14 AND kvfmt IS ?15"
  " AND median_us IS ?16 AND prompt_tok_s IS ?17 AND gen_tok_s IS ?18 LIMIT 1";

/* Is m already stored in a row with id <= max_id? 1 yes, 0 no, < 0 SQLite error. */
static int is_dup(sqlite3_stmt *st, int64_t max_id, const struct qsr_meas *m) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  int rc = sqlite3_bind_int64(st, 1, max_id);
  if (!rc) rc = bind_text(st, 2, m->source);
  if (!rc) rc = bind_text(st, 3, m->device);
  if (!rc) rc = bind_text(st, 4, m->device_desc);
  if (!rc) rc = bind_text(st, 5, m->driver);
  if (!rc) rc = bind_text(st, 6, m->rev);
  if (!rc) rc = bind_text(st, 7, m->model);
  if (!rc) rc = bind_text(st, 8, m->quant);
  if (!rc) rc = bind_i64(st, 9, m->threads);
  if (!rc) rc = bind_i64(st, 10, m->batch);
  if (!rc) rc = bind_i64(st, 11, m->prompt);
  if (!rc) rc = bind_i64(st, 12, m->gen);
  if (!rc) rc = bind_i64(st, 13, m->ctx);
  if (!rc) rc = bind_i64(st, 14, m->tokens);
  if (!rc) rc = bind_text(st, 15, m->kvfmt);
  if (!rc) rc = bind_real(st, 16, m->median_us);
  if (!rc) rc = bind_real(st, 17, m->prompt_tok_s);
  if (!rc) rc = bind_real(st, 18, m->gen_tok_s);
  if (rc) return -1;
  rc = sqlite3_step(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int64_t max_id(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int64_t id = 0;
  if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM measurements", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    id = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return id;
}

/* Writes every file's rows in one transaction; skipped[i] = duplicates of file i. */
static int write_all(const char *out, struct qsr_import *im, const char *const *files, int nfiles, size_t *skipped,
                     char **err) {
  qsr_store *store = NULL;
  sqlite3_stmt *dup = NULL;
  int rc = qsr_store_open(out, 0, &store, err), in_tx = 0;
  sqlite3 *db = store ? qsr_store_db(store) : NULL;
  if (!rc) rc = qsr_measure_schema(db, out, err);
  if (!rc && sqlite3_prepare_v2(db, SQL_DUP, -1, &dup, NULL) != SQLITE_OK)
    rc = qsr_errf(err, QSR_ERR_DB, "%s: %s", out, sqlite3_errmsg(db));
  if (!rc && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    rc = qsr_errf(err, QSR_ERR_DB, "%s: begin: %s", out, sqlite3_errmsg(db));
  in_tx = !rc;
  for (int f = 0; !rc && f < nfiles; f++) {
    int64_t before = max_id(db);          /* rows of earlier files count as stored */
    for (size_t i = 0; !rc && i < im[f].n; i++) {
      int d = is_dup(dup, before, &im[f].rows[i]);
      if (d < 0) rc = qsr_errf(err, QSR_ERR_DB, "%s: %s", out, sqlite3_errmsg(db));
      else if (d) skipped[f]++;
      else if ((rc = qsr_measure_put(db, out, &im[f].rows[i], err))) {
        char *msg = *err;                 /* name the file and row too */
        *err = NULL;
        qsr_errf(err, rc, "%s (row %zu of %s)", msg, i + 1, files[f]);
        free(msg);
      }
    }
  }
  sqlite3_finalize(dup);
  if (in_tx && sqlite3_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !rc)
    rc = qsr_errf(err, QSR_ERR_DB, "%s: commit: %s", out, sqlite3_errmsg(db));
  qsr_store_close(store);
  return rc;
}

int qsr_cmd_import(int argc, char **argv) {
  const char *out = NULL, *split = "holdout";
  struct qsr_import_opts o = { QSR_IMPORT_AUTO, NULL, NULL, NULL };
  const char **files = calloc((size_t)argc, sizeof *files);
  int nfiles = 0, dry = 0;
  if (!files) return qsr_cli_fail(QSR_ERR_NOMEM, NULL);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(files); return 0; }
    else if (!strcmp(a, "--dry-run")) dry = 1;
    else if (v && !strcmp(a, "-o")) { out = v; i++; }
    else if (v && !strcmp(a, "--device")) { o.device = v; i++; }
    else if (v && !strcmp(a, "--model")) { o.model = v; i++; }
    else if (v && !strcmp(a, "--split")) { split = v; i++; }
    else if (v && !strcmp(a, "--format")) {
      if ((o.format = qsr_import_fmt_from_name(v)) < 0) {
        fprintf(stderr, "qsr import: --format %s: expected auto, llama-bench-csv, llama-bench-json, "
                        "llama-bench-jsonl or csv\n", v);
        free(files);
        return 2;
      }
      i++;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "qsr import: unknown or incomplete option '%s' (qsr import --help)\n", a);
      free(files);
      return 2;
    } else files[nfiles++] = a;
  }
  const char *bad = !nfiles ? "give at least one FILE"
                    : !out && !dry ? "give the database: -o DB"
                    : strcmp(split, "fit") && strcmp(split, "holdout") ? "--split: expected fit or holdout"
                    : o.device && !*o.device ? "--device: empty name"
                    : o.model && !*o.model ? "--model: empty name" : NULL;
  if (bad) {
    fprintf(stderr, "qsr import: %s\n", bad);
    if (!nfiles) usage(stderr);
    free(files);
    return 2;
  }
  o.split = split;

  char *err = NULL;
  int rc = QSR_OK;
  struct qsr_import *im = calloc((size_t)nfiles, sizeof *im);
  size_t *skipped = calloc((size_t)nfiles, sizeof *skipped);
  if (!im || !skipped) rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory");
  for (int f = 0; !rc && f < nfiles; f++) rc = qsr_import_file(files[f], &o, &im[f], &err);
  if (!rc && !dry) rc = write_all(out, im, files, nfiles, skipped, &err);
  for (int f = 0; !rc && f < nfiles; f++) {
    const struct qsr_import *x = &im[f];
    size_t n = x->n - skipped[f];
    printf("qsr import: %s (%s): %zu row%s", files[f], qsr_import_fmt_names[x->format], n, n == 1 ? "" : "s");
    if (dry) printf(" read, nothing written");
    else printf(" -> %s", out);
    printf(" (%zu pp, %zu tg, %zu pp+tg)", x->n_pp, x->n_tg, x->n_pg);
    if (skipped[f]) printf(", %zu already stored (skipped)", skipped[f]);
    printf("; device %s, split %s\n", o.device ? o.device : x->format == QSR_IMPORT_CSV ? "from the file" : "NULL",
           split);
    for (size_t k = 0; k < x->n_notes; k++) printf("  %s\n", x->notes[k]);
    if (!o.device && x->format != QSR_IMPORT_CSV) {
      fflush(stdout);                     /* the warning after its file's summary */
      fprintf(stderr, "qsr import: warning: %s: no --device, so these rows have device NULL; qsr validate "
                      "--device D only compares rows of device D (import again with --device NAME)\n", files[f]);
    }
  }
  for (int f = 0; im && f < nfiles; f++) qsr_import_free(&im[f]);
  free(im);
  free(skipped);
  free(files);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
