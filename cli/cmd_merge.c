/*
** cmd_merge.c -- `qsr merge OUT.db IN.db...`: shard databases into one.
*/
#include "cli/cli.h"
#include "sim/sweep.h"
#include "store/store.h"
#include "util/err.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

int qsr_cli_sweep_from_db(struct sqlite3 *db, int64_t sid, struct qsr_sweep *sw, char **err) {
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(db, "SELECT yaml, name FROM sweeps WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
    return qsr_errf(err, QSR_ERR_DB, "query sweeps: %s", sqlite3_errmsg(db));
  sqlite3_bind_int64(q, 1, sid);
  int rc = QSR_OK;
  if (sqlite3_step(q) != SQLITE_ROW) {
    rc = qsr_errf(err, QSR_ERR_DB, "sweep %lld not found", (long long)sid);
  } else {
    char origin[160], *text = strdup((const char *)sqlite3_column_text(q, 0));
    snprintf(origin, sizeof origin, "sweep '%s' stored in the database", sqlite3_column_text(q, 1));
    if (!text) rc = qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
    else rc = qsr_sweep_load_text(origin, text, sw, err);
  }
  sqlite3_finalize(q);
  return rc;
}

int qsr_cmd_merge(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: qsr merge OUT.db IN.db...\n\n"
            "Combines databases of shards of the same sweeps (qsr sweep --shard I/N), checked by the\n"
            "sweep file's hash, into OUT.db (created if missing); recomputes progress and Pareto fronts.\n"
            "The result holds exactly the rows of an unsharded run.\n");
    return argc < 2 ? 2 : 0;
  }
  if (argc < 3) { fprintf(stderr, "qsr merge: give at least one input database\n"); return 2; }
  char *err = NULL;
  qsr_store *st = NULL;
  int rc = qsr_store_open(argv[1], 0, &st, &err);
  for (int i = 2; !rc && i < argc; i++) {
    if (!strcmp(argv[i], argv[1])) { rc = qsr_errf(&err, QSR_ERR_USAGE, "%s: input is the output", argv[i]); break; }
    FILE *f = fopen(argv[i], "rb");
    if (!f) { rc = qsr_errf(&err, QSR_ERR_IO, "%s: cannot open", argv[i]); break; }
    fclose(f);
    rc = qsr_store_merge(st, argv[i], &err);
  }
  /* progress and fronts, from the sweep texts stored in the database */
  sqlite3_stmt *q = NULL;
  if (!rc && sqlite3_prepare_v2(qsr_store_db(st), "SELECT id FROM sweeps", -1, &q, NULL) != SQLITE_OK)
    rc = qsr_errf(&err, QSR_ERR_DB, "%s: %s", argv[1], sqlite3_errmsg(qsr_store_db(st)));
  while (!rc && q && sqlite3_step(q) == SQLITE_ROW) {
    int64_t sid = sqlite3_column_int64(q, 0);
    static struct qsr_sweep sw;
    if ((rc = qsr_cli_sweep_from_db(qsr_store_db(st), sid, &sw, &err))) break;
    rc = qsr_store_finish_sweep(st, sid, &err);
    if (!rc) rc = qsr_cli_store_fronts(st, &sw, sid, &err);
    qsr_sweep_free(&sw);
  }
  sqlite3_finalize(q);
  qsr_store_close(st);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
