/*
** cli.h -- the qsr command: one function per subcommand.
** Each returns the process exit status (0 ok, 1 runtime error, 2 usage).
*/
#ifndef QSR_CLI_H
#define QSR_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int qsr_cmd_list(int argc, char **argv);
int qsr_cmd_predict(int argc, char **argv);
int qsr_cmd_sweep(int argc, char **argv);
int qsr_cmd_pareto(int argc, char **argv);
int qsr_cmd_merge(int argc, char **argv);

struct qsr_sweep;
struct qsr_store;
struct sqlite3;

/* Pareto objectives as parsed from "a,b:max,c". */
struct qsr_objspec {
  int n;
  int metric[4];
  int maximise[4];
};
int qsr_cli_objectives(const char *s, struct qsr_objspec *o, char **err);
/* Front of (sweep, device, model) among ok points and `where`, ordered by
** the first objective; *idx and *knee are malloc'ed (caller frees). */
int qsr_cli_front(struct sqlite3 *db, int64_t sid, const char *dev, const char *model, const struct qsr_objspec *o,
                  const char *where, int64_t **idx, uint8_t **knee, size_t *n, char **err);
/* Stores the fronts of every (device, model) of a sweep. */
int qsr_cli_store_fronts(struct qsr_store *st, const struct qsr_sweep *sw, int64_t sid, char **err);
/* Rebuilds a sweep from the YAML text stored in a database. */
int qsr_cli_sweep_from_db(struct sqlite3 *db, int64_t sid, struct qsr_sweep *sw, char **err);

int qsr_cmd_deploy(int argc, char **argv);
int qsr_cmd_plot(int argc, char **argv);
int qsr_cmd_bench(int argc, char **argv);
int qsr_cmd_import(int argc, char **argv);
int qsr_cmd_run(int argc, char **argv);

/* "CPU model name (N threads)" from /proc/cpuinfo (host.c). */
void qsr_cli_cpu_desc(char *buf, size_t n, int threads);
/* QSR_VERSION + "+" + the git revision, when git can tell (cmd_bench.c). */
void qsr_cli_revision(char *buf, size_t n);

int qsr_cmd_calibrate(int argc, char **argv);
int qsr_cmd_validate(int argc, char **argv);
int qsr_cmd_simulate(int argc, char **argv);

/* Loads a device by name or path into *dev and its file path into path;
** "host" is this machine, measured and cached on first use (cli/host.c). */
struct qsr_device;
int qsr_cli_device(const char *name, struct qsr_device *dev, char *path, size_t cap, char **err);
/* Prints "qsr: msg" on stderr, frees msg, returns the exit status for rc. */
int qsr_cli_fail(int rc, char *msg);
/* Writes s as a JSON string literal. */
void qsr_json_str(FILE *f, const char *s);

#include "util/version.h"

#endif
