/*
** fluct.h -- resource fluctuation traces: thermal throttling, a power-mode
** change, a co-running program. A step function of time: from each point's
** t_s on, bandwidth and compute are scaled and the memory available to the
** model is capped, until the next point. A period > 0 repeats the trace.
** Loaded from the YAML files in configs/fluctuation by spec/ (qsr_fluct_load).
*/
#ifndef QSR_FLUCT_H
#define QSR_FLUCT_H

#define QSR_FLUCT_MAX 256

struct qsr_fluct_point {
  double t_s;             /* start of this segment, seconds from the simulation start */
  double bw_scale;        /* memory bandwidth, x the device's (0 < s <= 4) */
  double compute_scale;   /* compute peaks, x the device's */
  double mem_gb;          /* memory available to the model; < 0 = the device's usable_gb */
};

struct qsr_fluct {
  char name[64];          /* file stem */
  char desc[256];         /* what it models and where its numbers come from (one line) */
  double period_s;        /* 0 = hold the last point for ever */
  int n;                  /* points, t_s strictly ascending, first at 0 */
  struct qsr_fluct_point pts[QSR_FLUCT_MAX];
};

/* The segment in force at time t (>= 0). */
const struct qsr_fluct_point *qsr_fluct_at(const struct qsr_fluct *f, double t);
/* The next time after t at which the segment changes (INFINITY if never). */
double qsr_fluct_next(const struct qsr_fluct *f, double t);

#endif
