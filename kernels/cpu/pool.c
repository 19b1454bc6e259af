/*
** pool.c -- a fixed set of worker threads for the C kernels. A run hands out
** task indices from one atomic counter; the calling thread works too (it is
** worker 0), so a pool of 1 is the calling thread alone and no thread is made.
** Workers sleep on a condition variable between runs: a kernel call costs a
** wake-up (a few microseconds), not a thread creation.
*/
#include "kernels/cpu/cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct qsr_pool {
  int n_threads;                          /* workers including the caller */
  pthread_t *tid;                         /* [n_threads - 1] */
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  uint64_t gen;                           /* run generation, under mu */
  int busy;                               /* workers still in this run, under mu */
  int quit;                               /* under mu */
  void (*fn)(void *arg, int i, int worker);
  void *arg;
  int n;                                  /* tasks in this run */
  atomic_int next;                        /* next task index */
};

struct worker { qsr_pool *p; int id; };

static void drain(qsr_pool *p, int id) {
  for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n;) p->fn(p->arg, i, id);
}

static void *worker_main(void *v) {
  struct worker w = *(struct worker *)v;
  free(v);
  qsr_pool *p = w.p;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    pthread_mutex_unlock(&p->mu);
    drain(p, w.id);
    pthread_mutex_lock(&p->mu);
    if (--p->busy == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

qsr_pool *qsr_pool_new(int n_threads) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
  }
  qsr_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n_threads = 1;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  p->tid = calloc((size_t)n_threads, sizeof *p->tid);
  if (!p->tid) { qsr_pool_free(p); return NULL; }
  for (int i = 1; i < n_threads; i++) {
    struct worker *w = malloc(sizeof *w);
    if (!w) { qsr_pool_free(p); return NULL; }
    w->p = p;
    w->id = i;
    if (pthread_create(&p->tid[i - 1], NULL, worker_main, w)) {
      free(w);
      qsr_pool_free(p);
      return NULL;
    }
    p->n_threads++;
  }
  return p;
}

void qsr_pool_free(qsr_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->tid[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p->tid);
  free(p);
}

int qsr_pool_threads(const qsr_pool *p) { return p ? p->n_threads : 1; }

void qsr_pool_run(qsr_pool *p, int n, void (*fn)(void *arg, int i, int worker), void *arg) {
  if (!p || p->n_threads == 1 || n <= 1) {
    for (int i = 0; i < n; i++) fn(arg, i, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  atomic_store(&p->next, 0);
  p->busy = p->n_threads - 1;
  p->gen++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  drain(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->busy) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
