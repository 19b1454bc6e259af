/*
** bench_sweep.c -- `make bench`: sweep, storage and Pareto speed, and the
** peak RSS of whole sweeps of two sizes (it must stay flat). Prints only.
*/
#include "sim/pareto.h"
#include "sim/sweep.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void bench_sweep(void);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct job { const struct qsr_sweep *sw; uint64_t lo, hi; double sink; };

static void *eval_range(void *arg) {
  struct job *j = arg;
  struct qsr_point *p = malloc(sizeof *p);
  for (uint64_t i = j->lo; i < j->hi; i++) {
    qsr_sweep_eval(j->sw, i, p);
    j->sink += p->r.tpot_ms;
  }
  free(p);
  return NULL;
}

static double eval_rate(const struct qsr_sweep *sw, int threads, uint64_t n) {
  pthread_t th[64];
  struct job jobs[64];
  double t0 = now_s();
  for (int t = 0; t < threads; t++) {
    jobs[t] = (struct job){ sw, n * (uint64_t)t / (uint64_t)threads, n * (uint64_t)(t + 1) / (uint64_t)threads, 0 };
    pthread_create(&th[t], NULL, eval_range, &jobs[t]);
  }
  for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
  return n / (now_s() - t0);
}

/* Runs `./qsr sweep FILE -o DB`; returns seconds and the child's peak RSS. */
static double run_sweep(const char *file, const char *db, long *rss_kb) {
  char w[600];
  snprintf(w, sizeof w, "%s-wal", db);
  remove(db);
  remove(w);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    execl("./qsr", "./qsr", "sweep", file, "-o", db, "--quiet", (char *)NULL);
    _exit(127);
  }
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  *rss_kb = ru.ru_maxrss;
  return now_s() - t0;
}

void bench_sweep(void) {
  static struct qsr_sweep sw;
  char *err = NULL;
  if (qsr_sweep_load("configs/sweeps/edge-llm.yaml", &sw, &err)) { fprintf(stderr, "bench: %s\n", err); free(err); return; }
  int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 64) cores = 64;
  printf("\nsweep evaluation (edge-llm.yaml, %llu points; no storage):\n", (unsigned long long)sw.total);
  printf("  1 thread       %10.0f points/s\n", eval_rate(&sw, 1, 200000));
  printf("  %d threads      %10.0f points/s   (target >= 1,000,000 points/s per thread)\n", cores, eval_rate(&sw, cores, 400000));

  /* storage alone: pre-evaluated chunks into a fresh database */
  char db[256];
  snprintf(db, sizeof db, "/tmp/qsr-bench-%d.db", (int)getpid());
  remove(db);
  qsr_store *st = NULL;
  int64_t sid;
  struct qsr_point *pts = malloc(QSR_SWEEP_CHUNK * sizeof *pts);
  if (!pts || qsr_store_open(db, 0, &st, &err) || qsr_store_begin_sweep(st, &sw, &sid, &err)) {
    fprintf(stderr, "bench: %s\n", err ? err : "out of memory");
    free(err);
    free(pts);
    qsr_store_close(st);
    qsr_sweep_free(&sw);
    return;
  }
  for (int i = 0; i < QSR_SWEEP_CHUNK; i++) qsr_sweep_eval(&sw, (uint64_t)i, &pts[i]);
  double t0 = now_s();
  int chunks = 100;
  for (int c = 0; c < chunks; c++) {
    for (int i = 0; i < QSR_SWEEP_CHUNK; i++) pts[i].idx = (uint64_t)c * QSR_SWEEP_CHUNK + (uint64_t)i;
    if (qsr_store_put_chunk(st, sid, (uint64_t)c, &sw, pts, QSR_SWEEP_CHUNK, &err)) { fprintf(stderr, "bench: %s\n", err); free(err); break; }
  }
  printf("  rows stored    %10.0f rows/s (one writer, %d-row transactions)\n", chunks * QSR_SWEEP_CHUNK / (now_s() - t0), QSR_SWEEP_CHUNK);
  qsr_store_close(st);
  free(pts);
  qsr_sweep_free(&sw);
  remove(db);

  /* end to end, and RSS flat in sweep size */
  long rss_small, rss_big;
  double ts = run_sweep("tests/data/sweep-small.yaml", db, &rss_small);
  double tb = run_sweep("tests/data/sweep-big.yaml", db, &rss_big);
  printf("  end to end     %10.0f points/s (qsr sweep of 311,040 points into SQLite, then Pareto: %.2f s; target >= 300,000)\n",
         311040 / tb, tb);
  printf("  peak RSS       %ld MB for 3,024 points, %ld MB for 311,040 points (flat: the ring of chunks)\n",
         rss_small / 1024, rss_big / 1024);
  (void)ts;
  char w[300];
  snprintf(w, sizeof w, "%s-wal", db);
  remove(db);
  remove(w);

  /* Pareto of 10^7 points, 2 objectives */
  size_t n = 10000000;
  double *obj = malloc(n * 2 * sizeof *obj);
  uint8_t *front = malloc(n);
  if (!obj || !front) { free(obj); free(front); return; }
  srand(1);
  for (size_t i = 0; i < n; i++) {
    double x = rand() / (double)RAND_MAX;
    obj[2 * i] = x;
    obj[2 * i + 1] = 1 - x + (rand() / (double)RAND_MAX) * 0.5;
  }
  t0 = now_s();
  size_t nf = qsr_pareto_front(obj, n, 2, front);
  printf("\npareto front of 10^7 points, 2 objectives: %.2f s (%zu on the front; target < 3 s)\n", now_s() - t0, nf);
  free(obj);
  free(front);
}
