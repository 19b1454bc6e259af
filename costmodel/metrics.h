/*
** metrics.h -- the result metrics by name: one table that defines the
** SQLite columns, the Pareto objectives, constraints and plot labels.
*/
#ifndef QSR_METRICS_H
#define QSR_METRICS_H

#include <stddef.h>

#include "costmodel/types.h"

struct qsr_metric {
  const char *name;      /* column / objective name: "tpot_ms" */
  const char *unit;      /* "ms" */
  const char *desc;      /* one line, for docs and plot labels */
  size_t off;            /* offset of a double in struct qsr_result */
  int maximise;          /* natural direction: 1 = larger is better */
};

extern const struct qsr_metric qsr_metric_tab[];
extern const int qsr_metric_count;

int qsr_metric_find(const char *name);   /* -1 if unknown */
static inline double qsr_metric_get(const struct qsr_result *r, int m) {
  return *(const double *)((const char *)r + qsr_metric_tab[m].off);
}

#endif
