/*
** pareto.h -- non-dominated sets and knee points.
**
** obj is n rows of k objectives, oriented so that smaller is better (negate
** a maximised objective first). A point is dominated when another is no
** worse in every objective and strictly better in one; duplicates of a
** non-dominated point are all kept.
*/
#ifndef QSR_PARETO_H
#define QSR_PARETO_H

#include <stddef.h>
#include <stdint.h>

/* Sets front[i] = 1 for non-dominated rows; returns their count, or
** (size_t)-1 when out of memory. O(n log n) for k = 2; exact for k <= 4
** (lexicographic sort, then each point against the front so far). */
size_t qsr_pareto_front(const double *obj, size_t n, int k, uint8_t *front);

/* The knee of a front: objectives scaled to [0,1] over the front, the
** point nearest the utopia point (all zeros). Returns its row, or n if the
** front is empty. */
size_t qsr_pareto_knee(const double *obj, size_t n, int k, const uint8_t *front);

#endif
