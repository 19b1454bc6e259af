/*
** attention.c -- attn_{decode,prefill}_{dense,local,topk_exact,topk_paged} on
** the CPU. One task per (query, head): it picks the keys its head type
** allows, scores them, and takes the softmax-weighted sum of their values.
**
** Keys a query at position pos (n = pos + 1 keys so far) may see:
**   dense       j >= n - sliding_window (the model's own window), else all j < n
**   local       the dense span and j > pos - window
**   topk exact  the `topk` best scores q.k of the dense span (ties: lower j)
**   topk paged  all keys of the ceil(topk/page) pages with the highest bound
**               sum_c max(q_c kmin_c, q_c kmax_c) (ties: lower page), plus the
**               page holding pos, within the dense span
** Scores are scale * q.k in fp32; the softmax subtracts the maximum.
*/
#include "kernels/cpu/cpu.h"

#include "kernels/quant.h"
#include "util/err.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

struct pair { float s; int32_t i; };

/* Total order: higher score first, then lower index. */
static int before(struct pair a, struct pair b) { return a.s > b.s || (a.s == b.s && a.i < b.i); }

/* Moves the k first pairs in the total order to a[0..k) (quickselect). */
static void select_top(struct pair *a, int n, int k) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    struct pair piv = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (before(a[i], piv)) i++;
      while (before(piv, a[j])) j--;
      if (i <= j) { struct pair t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static float dotf(const float *a, const float *b, int n) {
  float s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

struct attn_job {
  const qsr_attn_cfg *cfg;
  const qsr_kvcache *c;
  int T;
  const float *q;
  float *out;
  float *scratch;
  uint64_t per_worker;     /* floats of scratch per worker */
};

static uint64_t per_worker_floats(const qsr_attn_cfg *cfg, int max_ctx) {
  return 4ull * (uint64_t)max_ctx + 2ull * (uint64_t)cfg->head_dim + 16;
}

uint64_t qsr_cpu_attn_scratch(const qsr_pool *p, const qsr_attn_cfg *cfg, int max_ctx) {
  return (uint64_t)qsr_pool_threads(p) * per_worker_floats(cfg, max_ctx);
}

/* Fills idx with the keys query (pos, head h) attends to, ascending; returns
** how many. scores[j] holds q.k*scale for every j the selection scored. */
static int select_keys(const struct attn_job *jb, int h, int pos, const float *q, float *scores,
                       struct pair *pairs, int32_t *idx, float *kbuf) {
  const qsr_attn_cfg *cfg = jb->cfg;
  const qsr_kvcache *c = jb->c;
  int n = pos + 1, d = cfg->head_dim, kvh = h / (cfg->heads / cfg->kv_heads);
  int type = cfg->head_type ? cfg->head_type[h] : QSR_HEAD_DENSE;
  int lo = cfg->sliding_window > 0 && n > cfg->sliding_window ? n - cfg->sliding_window : 0;
  int m = 0;
  if (type == QSR_HEAD_LOCAL && n - cfg->window > lo) lo = n - cfg->window;
  if (type == QSR_HEAD_TOPK && !cfg->paged && cfg->topk < n - lo) {
    for (int j = lo; j < n; j++) {
      qsr_kvcache_get(c, 0, kvh, j, kbuf);
      scores[j] = cfg->scale * dotf(q, kbuf, d);
      pairs[j - lo] = (struct pair){ scores[j], j };
    }
    int k = cfg->topk;
    select_top(pairs, n - lo, k);
    for (int i = 0; i < k; i++) idx[i] = pairs[i].i;
    qsort(idx, (size_t)k, sizeof *idx, cmp_int);
    return k;
  }
  if (type == QSR_HEAD_TOPK && cfg->paged && c->page > 0) {
    int P = c->page, first = lo / P, last = pos / P, np = 0;
    int keep = (cfg->topk + P - 1) / P;
    for (int pg = first; pg < last; pg++) {   /* the page holding pos is always kept */
      const float *mn = c->kmin + ((size_t)kvh * (size_t)qsr_kvcache_pages(c) + (size_t)pg) * (size_t)d;
      const float *mx = c->kmax + ((size_t)kvh * (size_t)qsr_kvcache_pages(c) + (size_t)pg) * (size_t)d;
      float b = 0;
      for (int i = 0; i < d; i++) b += fmaxf(q[i] * mn[i], q[i] * mx[i]);
      pairs[np++] = (struct pair){ b, pg };
    }
    if (keep < np) select_top(pairs, np, keep);
    else keep = np;
    pairs[keep++] = (struct pair){ 0, last };
    for (int i = 0; i < keep; i++) {
      int pg = pairs[i].i;
      for (int j = pg * P > lo ? pg * P : lo; j < (pg + 1) * P && j < n; j++) idx[m++] = j;
    }
    qsort(idx, (size_t)m, sizeof *idx, cmp_int);
  } else {
    for (int j = lo; j < n; j++) idx[m++] = j;
  }
  for (int i = 0; i < m; i++) {
    qsr_kvcache_get(c, 0, kvh, idx[i], kbuf);
    scores[idx[i]] = cfg->scale * dotf(q, kbuf, d);
  }
  return m;
}

static void attn_task(void *arg, int task, int worker) {
  const struct attn_job *jb = arg;
  const qsr_attn_cfg *cfg = jb->cfg;
  const qsr_kvcache *c = jb->c;
  int H = cfg->heads, d = cfg->head_dim, t = task / H, h = task % H;
  int pos = c->len - jb->T + t, kvh = h / (H / cfg->kv_heads);
  float *s = jb->scratch + (uint64_t)worker * jb->per_worker;
  float *scores = s, *kbuf = s + 4 * (size_t)c->max_ctx, *acc = kbuf + d;
  struct pair *pairs = (struct pair *)(s + c->max_ctx);
  int32_t *idx = (int32_t *)(s + 3 * (size_t)c->max_ctx);
  const float *q = jb->q + ((size_t)t * H + h) * d;
  int m = select_keys(jb, h, pos, q, scores, pairs, idx, kbuf);
  float mx = -INFINITY, sum = 0;
  for (int i = 0; i < m; i++) mx = fmaxf(mx, scores[idx[i]]);
  memset(acc, 0, (size_t)d * sizeof *acc);
  for (int i = 0; i < m; i++) {
    float p = expf(scores[idx[i]] - mx);
    sum += p;
    qsr_kvcache_get(c, 1, kvh, idx[i], kbuf);
    for (int e = 0; e < d; e++) acc[e] += p * kbuf[e];
  }
  float *o = jb->out + ((size_t)t * H + h) * d;
  for (int e = 0; e < d; e++) o[e] = m ? acc[e] / sum : 0;
}

void qsr_cpu_attn_prefill(qsr_pool *p, const qsr_attn_cfg *cfg, const qsr_kvcache *c, int T,
                          const float *q, float *out, float *scratch) {
  QSR_ASSERT(cfg->heads % cfg->kv_heads == 0 && cfg->kv_heads == c->kv_heads &&
             cfg->head_dim == c->head_dim && T <= c->len && (!cfg->paged || c->page > 0));
  struct attn_job jb = { cfg, c, T, q, out, scratch, per_worker_floats(cfg, c->max_ctx) };
  qsr_pool_run(p, T * cfg->heads, attn_task, &jb);
}

void qsr_cpu_attn_decode(qsr_pool *p, const qsr_attn_cfg *cfg, const qsr_kvcache *c,
                         const float *q, float *out, float *scratch) {
  qsr_cpu_attn_prefill(p, cfg, c, 1, q, out, scratch);
}
