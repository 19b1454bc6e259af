/*
** ecache.c -- the per-layer expert cache of an offloaded MoE model (see ecache.h).
**
** Per layer, over expert ids (all arrays layers x experts, row-major):
**   LRU     a doubly linked list of the resident experts, most recent at the
**           head: a hit moves to the head, a miss evicts the tail. O(1).
**   LFU     accesses counted since creation (an evicted expert keeps its
**           count, so the cache converges on the popular ones); a miss
**           evicts the resident with the fewest accesses, ties to the least
**           recently used, by a scan of the layer's slots. O(capacity).
**   pinned  the `capacity` most popular experts (ties: lower id), fixed; a
**           miss is served from the lower tier and not cached.
** Warm start: LRU and LFU begin full with the `capacity` most popular experts
** (experts 0..capacity-1 without pop), ranked by popularity: the most popular
** is the most recently used (LFU: all counts 0, so ties evict the least
** popular first). A capacity of at least `experts` holds every expert.
*/
#include "sim/ecache.h"

#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const qsr_ecache_policy_names[QSR_ECACHE_COUNT] = {
  [QSR_ECACHE_LRU] = "lru",
  [QSR_ECACHE_LFU] = "lfu",
  [QSR_ECACHE_PINNED] = "pinned",
};
_Static_assert(QSR_ECACHE_COUNT == 3, "update qsr_ecache_policy_names");

struct qsr_ecache {
  int layers, experts;
  int capacity;              /* resident experts per layer, <= experts */
  int policy;                /* enum qsr_ecache_policy */
  uint64_t hits, misses;
  uint64_t clock;            /* access counter: LFU recency */
  uint8_t *resident;         /* layers x experts: 1 when in device memory */
  /* LRU */
  int32_t *next, *prev;      /* layers x experts: list links, -1 = none */
  int32_t *head, *tail;      /* layers: most / least recent, -1 = empty */
  /* LFU */
  uint64_t *count;           /* layers x experts: accesses since creation */
  uint64_t *last;            /* layers x experts: clock of the last access */
  int32_t *slot;             /* layers x capacity: resident experts */
};

struct rank { double pop; int e; };

static int cmp_rank(const void *a, const void *b) {
  const struct rank *x = a, *y = b;
  if (x->pop != y->pop) return x->pop > y->pop ? -1 : 1;
  return x->e < y->e ? -1 : x->e > y->e;
}

static void lru_unlink(qsr_ecache *c, size_t base, int e) {
  int l = (int)(base / (size_t)c->experts);
  int32_t p = c->prev[base + (size_t)e], n = c->next[base + (size_t)e];
  if (p >= 0) c->next[base + (size_t)p] = n; else c->head[l] = n;
  if (n >= 0) c->prev[base + (size_t)n] = p; else c->tail[l] = p;
}

static void lru_push_head(qsr_ecache *c, size_t base, int e) {
  int l = (int)(base / (size_t)c->experts);
  c->prev[base + (size_t)e] = -1;
  c->next[base + (size_t)e] = c->head[l];
  if (c->head[l] >= 0) c->prev[base + (size_t)c->head[l]] = e; else c->tail[l] = e;
  c->head[l] = e;
}

int qsr_ecache_new(int layers, int experts, int capacity, int policy, const double *pop, qsr_ecache **out,
                   char **err) {
  qsr_ecache *c = NULL;
  struct rank *rk = NULL;
  int rc = QSR_OK;
  if (err) *err = NULL;
  *out = NULL;
  if (layers < 1 || experts < 1) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "ecache: %d layers of %d experts: both must be >= 1", layers, experts);
    goto out;
  }
  if (capacity < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "ecache: capacity %d < 0", capacity);
    goto out;
  }
  if (policy < 0 || policy >= QSR_ECACHE_COUNT) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "ecache: policy %d out of range (0 lru, 1 lfu, 2 pinned)", policy);
    goto out;
  }
  if (policy == QSR_ECACHE_PINNED && !pop) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "ecache: pinned needs the experts' popularity (pop is NULL)");
    goto out;
  }
  size_t n = (size_t)layers * (size_t)experts;
  if (pop)
    for (size_t i = 0; i < n; i++)
      if (!isfinite(pop[i]) || pop[i] < 0) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "ecache: popularity of layer %zu expert %zu is %g, not a number >= 0",
                      i / (size_t)experts, i % (size_t)experts, pop[i]);
        goto out;
      }
  int cap = capacity < experts ? capacity : experts;
  size_t nl = (size_t)layers, ns = nl * (size_t)(cap ? cap : 1);
  if (!(c = calloc(1, sizeof *c)) || !(c->resident = calloc(n, 1)) || !(c->next = malloc(n * sizeof *c->next)) ||
      !(c->prev = malloc(n * sizeof *c->prev)) || !(c->head = malloc(nl * sizeof *c->head)) ||
      !(c->tail = malloc(nl * sizeof *c->tail)) ||
      !(c->count = calloc(n, sizeof *c->count)) || !(c->last = calloc(n, sizeof *c->last)) ||
      !(c->slot = malloc(ns * sizeof *c->slot)) || !(rk = malloc((size_t)experts * sizeof *rk))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "ecache: out of memory");
    goto out;
  }
  c->layers = layers;
  c->experts = experts;
  c->capacity = cap;
  c->policy = policy;
  for (size_t i = 0; i < n; i++) c->next[i] = c->prev[i] = -1;
  for (int l = 0; l < layers; l++) {
    size_t base = (size_t)l * (size_t)experts;
    c->head[l] = c->tail[l] = -1;
    for (int e = 0; e < experts; e++) rk[e] = (struct rank){pop ? pop[base + (size_t)e] : 0, e};
    if (pop) qsort(rk, (size_t)experts, sizeof *rk, cmp_rank);
    /* least popular of the warm set first: the most popular ends most recent */
    for (int i = cap - 1; i >= 0; i--) {
      int e = rk[i].e;
      c->resident[base + (size_t)e] = 1;
      c->slot[(size_t)l * (size_t)cap + (size_t)i] = e;
      c->last[base + (size_t)e] = (uint64_t)(cap - i);
      lru_push_head(c, base, e);
    }
  }
  c->clock = (uint64_t)cap;
  *out = c;
  c = NULL;
out:
  qsr_ecache_free(c);
  free(rk);
  return rc;
}

void qsr_ecache_free(qsr_ecache *c) {
  if (!c) return;
  free(c->resident);
  free(c->next);
  free(c->prev);
  free(c->head);
  free(c->tail);
  free(c->count);
  free(c->last);
  free(c->slot);
  free(c);
}

int qsr_ecache_access(qsr_ecache *c, int layer, int expert) {
  QSR_ASSERT(layer >= 0 && layer < c->layers && expert >= 0 && expert < c->experts);
  size_t base = (size_t)layer * (size_t)c->experts, i = base + (size_t)expert;
  uint64_t now = ++c->clock;
  c->count[i]++;
  int hit = c->resident[i];
  if (hit) c->hits++; else c->misses++;
  switch (c->policy) {
  case QSR_ECACHE_LRU:
    if (hit) {
      if (c->head[layer] != expert) {
        lru_unlink(c, base, expert);
        lru_push_head(c, base, expert);
      }
    } else if (c->capacity > 0) {
      int victim = c->tail[layer];
      lru_unlink(c, base, victim);
      c->resident[base + (size_t)victim] = 0;
      lru_push_head(c, base, expert);
      c->resident[i] = 1;
    }
    break;
  case QSR_ECACHE_LFU:
    if (!hit && c->capacity > 0) {
      int32_t *slot = c->slot + (size_t)layer * (size_t)c->capacity;
      int v = 0;
      for (int s = 1; s < c->capacity; s++) {
        size_t a = base + (size_t)slot[s], b = base + (size_t)slot[v];
        if (c->count[a] < c->count[b] || (c->count[a] == c->count[b] && c->last[a] < c->last[b])) v = s;
      }
      c->resident[base + (size_t)slot[v]] = 0;
      slot[v] = expert;
      c->resident[i] = 1;
    }
    c->last[i] = now;
    break;
  default:  /* pinned: nothing moves */
    break;
  }
  return hit;
}

uint64_t qsr_ecache_hits(const qsr_ecache *c) { return c->hits; }
uint64_t qsr_ecache_misses(const qsr_ecache *c) { return c->misses; }
