/*
** measured.h -- reading measured kernel calls for calibrate and validate.
*/
#ifndef QSR_CLI_MEASURED_H
#define QSR_CLI_MEASURED_H

#include "costmodel/calibrate.h"

struct sqlite3;

struct qsr_kset {
  struct qsr_kshape *rows;   /* strings owned (strdup) */
  int n;
  int threads;               /* thread count of the rows (the device's largest) */
};

/* Kernel calls measured on `device` (measurements.device), newest row per
** shape, at the largest thread count measured there; split "fit",
** "holdout" or NULL for both; `where` an optional SQL condition. */
int qsr_cli_kset_read(struct sqlite3 *db, const char *path, const char *device, const char *split,
                      const char *where, struct qsr_kset *out, char **err);
void qsr_cli_kset_free(struct qsr_kset *s);   /* NULL-safe */
int qsr_cli_has_measurements(struct sqlite3 *db);

#endif
