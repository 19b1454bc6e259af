/*
** cmd_sweep.c -- `qsr sweep`: evaluate a design space on N threads and
** stream it to SQLite through one writer; resumable and shardable.
**
** Workers take chunks (QSR_SWEEP_CHUNK consecutive points) that are in
** this shard and not yet stored, evaluate them into a free slot of a small
** ring, and the main thread writes full slots, one transaction per chunk.
** Memory is the ring: flat in the size of the sweep.
*/
#include "cli/cli.h"
#include "sim/sweep.h"
#include "store/store.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_FREE, SLOT_BUSY, SLOT_FULL };

struct slot {
  int state;
  uint64_t chunk;
  int n;
  struct qsr_point *pts;
};

struct run {
  const struct qsr_sweep *sw;
  uint64_t *pending;            /* chunk ids still to store */
  uint64_t n_pending, next;     /* next = next pending index to hand out */
  struct slot *slots;
  int n_slots;
  int stop;                  /* writer failed: workers stop */
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void *worker(void *arg) {
  struct run *R = arg;
  for (;;) {
    pthread_mutex_lock(&R->mu);
    int s = -1;
    while (!R->stop && R->next < R->n_pending) {
      for (int i = 0; i < R->n_slots && s < 0; i++)
        if (R->slots[i].state == SLOT_FREE) s = i;
      if (s >= 0) break;
      pthread_cond_wait(&R->cv, &R->mu);
    }
    if (R->stop || R->next >= R->n_pending) { pthread_mutex_unlock(&R->mu); return NULL; }
    struct slot *sl = &R->slots[s];
    sl->state = SLOT_BUSY;
    sl->chunk = R->pending[R->next++];
    pthread_mutex_unlock(&R->mu);
    uint64_t first = sl->chunk * QSR_SWEEP_CHUNK, end = first + QSR_SWEEP_CHUNK;
    if (end > R->sw->total) end = R->sw->total;
    sl->n = (int)(end - first);
    for (uint64_t i = first; i < end; i++) qsr_sweep_eval(R->sw, i, &sl->pts[i - first]);
    pthread_mutex_lock(&R->mu);
    sl->state = SLOT_FULL;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr sweep SWEEP.yaml [-o DB] [-j N] [--shard I/N] [--quiet]\n\n"
          "Evaluates every point of a design space (configs/sweeps/*.yaml) and stores one row per point\n"
          "in SQLite, then the Pareto front of each (device, model). Resumes by default: rerunning the\n"
          "same command after an interruption (even kill -9) evaluates only what is missing.\n\n"
          "  -o, --output DB    database (default results/NAME.db; several sweeps may share one)\n"
          "  -j, --jobs N       evaluation threads (default: all cores)\n"
          "      --shard I/N    evaluate only chunks c with c mod N == I (0 <= I < N); combine the\n"
          "                     shard databases with qsr merge\n"
          "      --quiet        no progress line (it is shown only on a terminal anyway)\n");
}

int qsr_cmd_sweep(int argc, char **argv) {
  const char *file = NULL, *out = NULL;
  int jobs = (int)sysconf(_SC_NPROCESSORS_ONLN), quiet = 0;
  long shard_i = 0, shard_n = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
    if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) { out = argv[++i]; continue; }
    if ((!strcmp(a, "-j") || !strcmp(a, "--jobs")) && i + 1 < argc) {
      char *end;
      jobs = (int)strtol(argv[++i], &end, 10);
      if (*end || jobs < 1 || jobs > 256) { fprintf(stderr, "qsr sweep: -j: expected 1..256\n"); return 2; }
      continue;
    }
    if (!strcmp(a, "--shard") && i + 1 < argc) {
      char *end;
      shard_i = strtol(argv[++i], &end, 10);
      if (*end != '/' || (shard_n = strtol(end + 1, &end, 10)) < 1 || *end || shard_i < 0 || shard_i >= shard_n) {
        fprintf(stderr, "qsr sweep: --shard: expected I/N with 0 <= I < N\n");
        return 2;
      }
      continue;
    }
    if (a[0] == '-' || file) { fprintf(stderr, "qsr sweep: unexpected '%s'\n", a); usage(stderr); return 2; }
    file = a;
  }
  if (jobs < 1) jobs = 1;
  if (!file) { usage(stderr); return 2; }
  char path[PATH_MAX], dbpath[PATH_MAX], *err = NULL;
  int rc;
  static struct qsr_sweep sw;
  if ((rc = qsr_spec_resolve("sweeps", file, path, sizeof path, &err)) || (rc = qsr_sweep_load(path, &sw, &err)))
    return qsr_cli_fail(rc, err);
  if (out) snprintf(dbpath, sizeof dbpath, "%s", out);
  else {
    mkdir("results", 0777);
    snprintf(dbpath, sizeof dbpath, "results/%s.db", sw.name);
  }
  qsr_store *st = NULL;
  int64_t sid;
  uint64_t nch = qsr_sweep_chunks(&sw);
  uint8_t *done = malloc(nch ? nch : 1);
  uint64_t *pending = malloc((nch ? nch : 1) * sizeof *pending);
  struct run R;
  memset(&R, 0, sizeof R);
  if (!done || !pending) { rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory"); goto fail; }
  if ((rc = qsr_store_open(dbpath, 0, &st, &err)) || (rc = qsr_store_begin_sweep(st, &sw, &sid, &err)) ||
      (rc = qsr_store_done_chunks(st, sid, done, nch, &err)))
    goto fail;
  uint64_t n_pending = 0, already = 0;
  for (uint64_t c = 0; c < nch; c++) {
    if ((long)(c % (uint64_t)shard_n) != shard_i) continue;
    if (done[c]) already++;
    else pending[n_pending++] = c;
  }
  int tty = !quiet && isatty(2);
  if (!quiet)
    fprintf(stderr, "qsr sweep %s: %llu points (%llu chunks%s), %llu chunks to do, %d threads -> %s\n", sw.name,
            (unsigned long long)sw.total, (unsigned long long)nch, shard_n > 1 ? " in all shards" : "",
            (unsigned long long)n_pending, jobs, dbpath);
  R.sw = &sw;
  R.pending = pending;
  R.n_pending = n_pending;
  R.n_slots = jobs + 2;
  R.slots = calloc((size_t)R.n_slots, sizeof *R.slots);
  if (!R.slots) { rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory"); goto fail; }
  for (int i = 0; i < R.n_slots; i++)
    if (!(R.slots[i].pts = malloc(QSR_SWEEP_CHUNK * sizeof(struct qsr_point)))) {
      rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory");
      goto fail;
    }
  pthread_mutex_init(&R.mu, NULL);
  pthread_cond_init(&R.cv, NULL);
  pthread_t *th = calloc((size_t)jobs, sizeof *th);
  int started = 0;
  for (int i = 0; th && i < jobs; i++)
    if (pthread_create(&th[i], NULL, worker, &R) == 0) started++;
  if (!started) { rc = qsr_errf(&err, QSR_ERR_NOMEM, "cannot start threads"); free(th); goto fail; }
  double t0 = now_s(), last = t0;
  uint64_t written = 0, pts_written = 0;
  while (written < n_pending) {
    pthread_mutex_lock(&R.mu);
    int s = -1;
    for (;;) {
      for (int i = 0; i < R.n_slots && s < 0; i++)
        if (R.slots[i].state == SLOT_FULL) s = i;
      if (s >= 0) break;
      pthread_cond_wait(&R.cv, &R.mu);
    }
    pthread_mutex_unlock(&R.mu);
    struct slot *sl = &R.slots[s];
    rc = qsr_store_put_chunk(st, sid, sl->chunk, &sw, sl->pts, sl->n, &err);
    pthread_mutex_lock(&R.mu);
    sl->state = SLOT_FREE;
    if (rc) R.stop = 1;
    pthread_cond_broadcast(&R.cv);
    pthread_mutex_unlock(&R.mu);
    if (rc) break;
    written++;
    pts_written += (uint64_t)sl->n;
    double t = now_s();
    if (tty && (t - last > 0.5 || written == n_pending)) {
      double rate = pts_written / (t - t0 + 1e-9);
      uint64_t left = (n_pending - written) * QSR_SWEEP_CHUNK;
      fprintf(stderr, "\r  %llu/%llu chunks, %.0f points/s, ETA %.0f s   ", (unsigned long long)(written + already),
              (unsigned long long)(n_pending + already), rate, left / (rate + 1e-9));
      last = t;
    }
  }
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  free(th);
  pthread_mutex_destroy(&R.mu);
  pthread_cond_destroy(&R.cv);
  if (rc) goto fail;
  double dt = now_s() - t0;
  if (tty) fputc('\n', stderr);
  if (!quiet)
    fprintf(stderr, "  stored %llu points in %.2f s (%.0f points/s)\n", (unsigned long long)pts_written, dt,
            pts_written / (dt + 1e-9));
  if ((rc = qsr_store_finish_sweep(st, sid, &err))) goto fail;
  rc = qsr_cli_store_fronts(st, &sw, sid, &err);
fail:  /* success too: one exit frees everything */
  if (R.slots)
    for (int i = 0; i < R.n_slots; i++) free(R.slots[i].pts);
  free(R.slots);
  free(done);
  free(pending);
  qsr_store_close(st);
  qsr_sweep_free(&sw);
  return rc ? qsr_cli_fail(rc, err) : 0;
}
