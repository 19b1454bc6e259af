/*
** ecache.h -- the expert cache of an offloaded MoE model.
**
** Per MoE layer, `capacity` experts are resident in device memory; the rest
** live in a lower tier. An access is a hit when the expert is resident. On a
** miss LRU and LFU bring it in (evicting the least recently / least
** frequently used one; LFU ties go to the least recent), pinned-hot keeps the
** `capacity` most popular experts of each layer resident for good and serves
** misses without caching them.
*/
#ifndef QSR_ECACHE_H
#define QSR_ECACHE_H

#include <stdint.h>

enum qsr_ecache_policy { QSR_ECACHE_LRU = 0, QSR_ECACHE_LFU = 1, QSR_ECACHE_PINNED = 2, QSR_ECACHE_COUNT };
extern const char *const qsr_ecache_policy_names[QSR_ECACHE_COUNT];  /* "lru", "lfu", "pinned" */

typedef struct qsr_ecache qsr_ecache;

/* pop: layers x experts popularity (row-major), used by pinned (required
** there) and to warm LRU/LFU with the most popular experts at start; may be
** NULL for LRU/LFU (then they start with experts 0..capacity-1). */
int qsr_ecache_new(int layers, int experts, int capacity, int policy, const double *pop, qsr_ecache **out,
                   char **err);
void qsr_ecache_free(qsr_ecache *c);   /* NULL-safe */

/* Returns 1 on a hit, 0 on a miss (and updates the cache). */
int qsr_ecache_access(qsr_ecache *c, int layer, int expert);

/* Counters since creation. */
uint64_t qsr_ecache_hits(const qsr_ecache *c);
uint64_t qsr_ecache_misses(const qsr_ecache *c);

#endif
