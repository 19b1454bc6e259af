/*
** pareto.c -- non-dominated sorting (see pareto.h).
*/
#include "sim/pareto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* qsort has no context argument: sort (key, index) records instead. */
struct rec { double key[4]; size_t i; };

static int cmp_rec(const void *a, const void *b) {
  const struct rec *x = a, *y = b;
  for (int j = 0; j < 4; j++) {
    if (x->key[j] < y->key[j]) return -1;
    if (x->key[j] > y->key[j]) return 1;
  }
  return x->i < y->i ? -1 : x->i > y->i;
}

/* 2-D prefilter, O(n): points are bucketed by the first objective; a point
** whose second objective exceeds the minimum of every earlier bucket is
** dominated by that minimum (no larger first, strictly smaller second) and
** is dropped. Only the survivors are sorted. */
#define PF_BUCKETS 65536
static struct rec *candidates_2d(const double *obj, size_t n, size_t *nc) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    double x = obj[2 * i];
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  double *bmin = malloc(PF_BUCKETS * sizeof *bmin);
  if (!bmin) return NULL;
  for (int b = 0; b < PF_BUCKETS; b++) bmin[b] = INFINITY;
  double scale = hi > lo ? (PF_BUCKETS - 1) / (hi - lo) : 0;
  for (size_t i = 0; i < n; i++) {
    int b = (int)((obj[2 * i] - lo) * scale);
    if (obj[2 * i + 1] < bmin[b]) bmin[b] = obj[2 * i + 1];
  }
  /* bmin[b] <- minimum over buckets strictly before b */
  double run = INFINITY;
  for (int b = 0; b < PF_BUCKETS; b++) {
    double m = bmin[b];
    bmin[b] = run;
    if (m < run) run = m;
  }
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += obj[2 * i + 1] <= bmin[(int)((obj[2 * i] - lo) * scale)];
  struct rec *r = malloc((c ? c : 1) * sizeof *r);
  if (r) {
    c = 0;
    for (size_t i = 0; i < n; i++)
      if (obj[2 * i + 1] <= bmin[(int)((obj[2 * i] - lo) * scale)]) {
        r[c].key[0] = obj[2 * i];
        r[c].key[1] = obj[2 * i + 1];
        r[c].key[2] = r[c].key[3] = 0;
        r[c].i = i;
        c++;
      }
  }
  free(bmin);
  *nc = c;
  return r;
}

size_t qsr_pareto_front(const double *obj, size_t n, int k, uint8_t *front) {
  if (k < 1 || k > 4) return (size_t)-1;
  memset(front, 0, n);
  if (!n) return 0;
  size_t nc = n;
  struct rec *r = k == 2 ? candidates_2d(obj, n, &nc) : malloc(n * sizeof *r);
  if (!r) return (size_t)-1;
  if (k != 2)
    for (size_t i = 0; i < n; i++) {
      for (int j = 0; j < 4; j++) r[i].key[j] = j < k ? obj[i * (size_t)k + (size_t)j] : 0;
      r[i].i = i;
    }
  n = nc;
  qsort(r, n, sizeof *r, cmp_rec);
  size_t count = 0;
  if (k == 1) {
    for (size_t i = 0; i < n && r[i].key[0] == r[0].key[0]; i++) front[r[i].i] = 1, count++;
  } else if (k == 2) {
    double best = INFINITY, last0 = NAN, last1 = NAN;
    for (size_t i = 0; i < n; i++) {
      double a = r[i].key[0], b = r[i].key[1];
      if (b < best || (a == last0 && b == last1)) {
        front[r[i].i] = 1;
        count++;
        best = b;
        last0 = a;
        last1 = b;
      }
    }
  } else {
    size_t *f = malloc(n * sizeof *f), nf = 0;
    if (!f) { free(r); return (size_t)-1; }
    for (size_t i = 0; i < n; i++) {
      const double *p = r[i].key;
      int dominated = 0;
      for (size_t j = 0; j < nf && !dominated; j++) {
        const double *q = r[f[j]].key;
        int le = 1, lt = 0;
        for (int d = 0; d < k; d++) {
          if (q[d] > p[d]) { le = 0; break; }
          if (q[d] < p[d]) lt = 1;
        }
        dominated = le && lt;
      }
      if (!dominated) { f[nf++] = i; front[r[i].i] = 1; }
    }
    count = nf;
    free(f);
  }
  free(r);
  return count;
}

size_t qsr_pareto_knee(const double *obj, size_t n, int k, const uint8_t *front) {
  double lo[4], hi[4];
  for (int d = 0; d < k; d++) { lo[d] = INFINITY; hi[d] = -INFINITY; }
  for (size_t i = 0; i < n; i++)
    if (front[i])
      for (int d = 0; d < k; d++) {
        double v = obj[i * (size_t)k + (size_t)d];
        if (v < lo[d]) lo[d] = v;
        if (v > hi[d]) hi[d] = v;
      }
  size_t best = n;
  double bd = INFINITY;
  for (size_t i = 0; i < n; i++) {
    if (!front[i]) continue;
    double s = 0;
    for (int d = 0; d < k; d++) {
      double span = hi[d] - lo[d];
      double x = span > 0 ? (obj[i * (size_t)k + (size_t)d] - lo[d]) / span : 0;
      s += x * x;
    }
    if (s < bd) { bd = s; best = i; }
  }
  return best;
}
