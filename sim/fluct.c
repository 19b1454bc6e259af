/*
** fluct.c -- resource fluctuation traces as a step function of time.
**
** A trace is points[0..n) with t_s strictly ascending and points[0].t_s = 0;
** point i is in force on [t_s[i], t_s[i+1]) and the last one until the end
** (period_s = 0) or until the period wraps to point 0 (period_s > 0; every
** t_s is then below period_s, as spec/fluct_spec.c checks).
**
** Periodic times are reduced as t - k*period with k = floor(t / period).
** A boundary k*period + t_s[i] computed in floating point may land a few
** ulps below t_s[i] after the reduction; both functions therefore treat a
** reduced time within QSR_FLUCT_EPS_S of a boundary as on it, so that
** qsr_fluct_at(qsr_fluct_next(t)) is always the new segment and
** qsr_fluct_next never returns a time <= t (a simulator loop stepping from
** change to change always advances).
*/
#include "sim/fluct.h"

#include <math.h>
#include <stddef.h>

#define QSR_FLUCT_EPS_S 1e-9  /* seconds: far below any meaningful segment length */

/* Index of the last point with t_s <= x (0 when none: t_s[0] = 0). */
static int last_at_or_before(const struct qsr_fluct *f, double x) {
  int lo = 0, hi = f->n - 1;
  while (lo < hi) {               /* invariant: answer in [lo, hi] */
    int mid = lo + (hi - lo + 1) / 2;
    if (f->pts[mid].t_s <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* Splits t into whole periods k and the offset within the period. */
static void reduce(const struct qsr_fluct *f, double t, double *k, double *off) {
  *k = floor(t / f->period_s);
  *off = t - *k * f->period_s;
  if (*off < 0) *off = 0;
  if (*off >= f->period_s) { *k += 1; *off -= f->period_s; }
}

const struct qsr_fluct_point *qsr_fluct_at(const struct qsr_fluct *f, double t) {
  if (!f || f->n <= 0) return NULL;
  if (!(t > 0)) return &f->pts[0];          /* t <= 0 or NaN: the start */
  if (f->period_s > 0) {
    double k, off;
    reduce(f, t, &k, &off);
    if (off >= f->period_s - QSR_FLUCT_EPS_S) return &f->pts[0];  /* on the wrap */
    return &f->pts[last_at_or_before(f, off + QSR_FLUCT_EPS_S)];
  }
  return &f->pts[last_at_or_before(f, t)];
}

double qsr_fluct_next(const struct qsr_fluct *f, double t) {
  if (!f || f->n <= 1) return INFINITY;     /* one segment never changes, periodic or not */
  if (!(t >= 0)) t = 0;
  if (f->period_s <= 0) {
    int i = last_at_or_before(f, t) + 1;    /* first point after t */
    return i < f->n ? f->pts[i].t_s : INFINITY;
  }
  double k, off;
  reduce(f, t, &k, &off);
  int i = last_at_or_before(f, off + QSR_FLUCT_EPS_S) + 1;
  /* candidates in order: the next points of this period, then the wrap;
  ** skip any that rounding put at or before t */
  for (int step = 0; step <= f->n + 1; step++, i++) {
    double next;
    if (i < f->n) {
      next = k * f->period_s + f->pts[i].t_s;
    } else {
      next = (k + 1) * f->period_s;
      k += 1;
      i = 0;                                /* the loop's i++ moves to point 1 */
    }
    if (next > t) return next;
  }
  return INFINITY;                          /* not reached for a valid trace */
}
