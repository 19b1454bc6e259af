/*
** serve.c -- the trace-driven serving simulator.
**
** One loop, one event per iteration: arrivals up to now join the queue; the
** scheduler admits requests while the batch has room and their KV cache (a
** reservation of prompt + output tokens, so nothing is ever preempted) fits
** the memory left; the iteration is formed (prefills, chunks, one decode
** token per running sequence), costed part by part with costmodel/step, and
** time advances by its cost. Idle time jumps to the next arrival.
**
** What repeats is tabulated lazily: the per-token ops of T tokens and the
** head of R rows per (level, resource scales), and one sequence's decode
** attention work per (level, layer group, context). An iteration then costs
** O(batch + layers), which is what lets a 10^8-token trace run in seconds.
**
** Experts: with a routing source every token draws its experts per layer;
** the distinct experts an iteration touches set the expert FFN cost and go
** through the expert cache; misses are fetched from the lower tier (at full
** or lower precision) or computed on the host CPU, overlapped with compute
** or not. Without a routing source the cost model's expectation is used.
*/
#include "sim/serve.h"

#include "util/err.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const qsr_batching_names[QSR_BATCHING_COUNT] = { "static", "continuous", "chunked" };
const char *const qsr_miss_names[QSR_MISS_COUNT] = { "fetch", "lowbit", "cpu" };
const char *const qsr_adapt_names[QSR_ADAPT_COUNT] = { "static", "pressure", "token-aware" };

#define MAX_SCALES 64         /* distinct (compute, bandwidth) scale pairs tabulated */
#define BODY_TAB_MAX 65536    /* tokens per iteration tabulated; larger passes are costed directly */
#define ROUTE_SAMPLE 256      /* prompt tokens of a chunk that draw experts; the rest are scaled */

struct seq {
  int64_t req;                /* trace index */
  int32_t prompt, output, cached;
  int32_t done_prompt;        /* prompt tokens in the KV cache */
  int32_t gen;                /* output tokens produced */
  int32_t steps;              /* decode steps run (static padding keeps stepping) */
  int finished;               /* static batching: done, kept as padding */
  double kv_res;              /* KV bytes reserved */
  double admit_s, first_s;
  double qsum;                /* quality proxy summed over its output tokens */
  float cx;                   /* complexity from the trace, < 0 none */
  int chunk;                  /* tokens of its prompt in this iteration */
  int k;                      /* experts per token this iteration */
};

struct level {
  struct qsr_step st;
  double quality;             /* proxy per token */
  double lowbit_dq;           /* extra proxy of a token whose experts were all low-bit copies */
  double *body[MAX_SCALES];   /* [scale][T] ms, NAN = not yet */
  double *head[MAX_SCALES];   /* [scale][rows] */
  struct qsr_work *dec[QSR_STEP_GROUPS]; /* [group][L] one sequence's decode work */
  int dec_cap;
};

/* Prefix cache: LRU over block ids, open addressing + a doubly linked list. */
struct pcache {
  int64_t cap, n;
  uint32_t *key;              /* hash slots: block id + 1, 0 = empty */
  int32_t *slot_node;         /* node index of a slot */
  int32_t *prev, *next;       /* LRU list over nodes; head = most recent */
  uint32_t *node_key;
  int64_t *node_slot;
  int32_t head, tail;
  int64_t mask;
};

struct eng {
  struct qsr_serve_cfg *cfg;
  const struct qsr_trace *t;
  struct level lv[QSR_SERVE_LEVELS];
  int n_lv;
  double scales[MAX_SCALES][2];
  int n_scales;
  int body_cap, head_cap;
  /* memory */
  double usable, weights_res, act, prefix_bytes, kv_used, nonexpert, stream_bytes;
  int cache_n;                /* resident experts per layer (E = all) */
  double tier_bw;             /* bytes/ms */
  double peak_mem;
  /* state */
  struct seq *run;
  int n_run;
  int64_t *queue;             /* FIFO of trace indices */
  int64_t q_head, q_tail;
  unsigned char *rstate;      /* routing state per run slot */
  size_t rstate_sz;
  qsr_ecache *ec;
  struct pcache pc;
  gsl_rng *rng;
  uint8_t *touched;           /* [layer][expert] */
  int *tlist;                 /* touched (layer*E+e) this iteration */
  int n_t;
  int *per_layer;             /* distinct experts per layer this iteration */
  struct qsr_step cpu_st;     /* the expert FFN on the host CPU (miss = cpu) */
  double *assign;             /* assignments per layer this iteration */
  int *ids;                   /* layers * kmax */
  /* output */
  double *ttft, *tpot, *e2e, *queue_ms;
  int64_t n_done, rejected;
  double tok_in, tok_out, qual_sum, prefix_tok, prompt_tok;
  double iters, dec_rows, offload_bytes, cpu_misses, misses, hits;
  double level_iters[QSR_SERVE_LEVELS];
  double ewma_iter_ms;
  /* sampling */
  double next_sample, samp_tok, samp_hits, samp_miss;
  int level;
};

/* ---- prefix cache ------------------------------------------------------ */

static int pc_init(struct pcache *p, int64_t cap) {
  memset(p, 0, sizeof *p);
  p->head = p->tail = -1;
  if (cap <= 0) return QSR_OK;
  int64_t slots = 16;
  while (slots < 2 * cap) slots *= 2;
  p->cap = cap;
  p->mask = slots - 1;
  p->key = calloc((size_t)slots, sizeof *p->key);
  p->slot_node = calloc((size_t)slots, sizeof *p->slot_node);
  p->prev = malloc((size_t)cap * sizeof *p->prev);
  p->next = malloc((size_t)cap * sizeof *p->next);
  p->node_key = malloc((size_t)cap * sizeof *p->node_key);
  p->node_slot = malloc((size_t)cap * sizeof *p->node_slot);
  if (!p->key || !p->slot_node || !p->prev || !p->next || !p->node_key || !p->node_slot) return QSR_ERR_NOMEM;
  return QSR_OK;
}

static void pc_free(struct pcache *p) {
  free(p->key);
  free(p->slot_node);
  free(p->prev);
  free(p->next);
  free(p->node_key);
  free(p->node_slot);
}

static int64_t pc_find(const struct pcache *p, uint32_t id) {
  int64_t i = (int64_t)((id * 2654435761u) & (uint64_t)p->mask);
  while (p->key[i]) {
    if (p->key[i] == id + 1) return i;
    i = (i + 1) & p->mask;
  }
  return -1 - i;  /* the empty slot where it would go */
}

static void pc_unlink(struct pcache *p, int32_t n) {
  if (p->prev[n] >= 0) p->next[p->prev[n]] = p->next[n]; else p->head = p->next[n];
  if (p->next[n] >= 0) p->prev[p->next[n]] = p->prev[n]; else p->tail = p->prev[n];
}

static void pc_front(struct pcache *p, int32_t n) {
  p->prev[n] = -1;
  p->next[n] = p->head;
  if (p->head >= 0) p->prev[p->head] = n;
  p->head = n;
  if (p->tail < 0) p->tail = n;
}

/* Removes slot i keeping the probe chains intact (backward shift). */
static void pc_del_slot(struct pcache *p, int64_t i) {
  p->key[i] = 0;
  int64_t j = i;
  for (;;) {
    j = (j + 1) & p->mask;
    if (!p->key[j]) return;
    int64_t home = (int64_t)(((p->key[j] - 1) * 2654435761u) & (uint64_t)p->mask);
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      p->key[i] = p->key[j];
      p->slot_node[i] = p->slot_node[j];
      p->node_slot[p->slot_node[i]] = i;
      p->key[j] = 0;
      i = j;
    }
  }
}

static int pc_lookup(struct pcache *p, uint32_t id) {
  int64_t i = pc_find(p, id);
  if (i < 0) return 0;
  int32_t n = p->slot_node[i];
  pc_unlink(p, n);
  pc_front(p, n);
  return 1;
}

static void pc_insert(struct pcache *p, uint32_t id) {
  int64_t i = pc_find(p, id);
  if (i >= 0) { pc_lookup(p, id); return; }
  int32_t n;
  if (p->n < p->cap) n = (int32_t)p->n++;
  else {
    n = p->tail;
    pc_unlink(p, n);
    pc_del_slot(p, p->node_slot[n]);
    i = pc_find(p, id);
  }
  i = -1 - i;
  p->key[i] = id + 1;
  p->slot_node[i] = n;
  p->node_key[n] = id;
  p->node_slot[n] = i;
  pc_front(p, n);
}

/* ---- tables ------------------------------------------------------------ */

static int scale_slot(struct eng *e, double cs, double bs) {
  for (int i = 0; i < e->n_scales; i++)
    if (e->scales[i][0] == cs && e->scales[i][1] == bs) return i;
  if (e->n_scales == MAX_SCALES) return -1;
  e->scales[e->n_scales][0] = cs;
  e->scales[e->n_scales][1] = bs;
  return e->n_scales++;
}

static double *nan_table(int n) {
  double *t = malloc((size_t)n * sizeof *t);
  if (t)
    for (int i = 0; i < n; i++) t[i] = NAN;
  return t;
}

static double body_ms(struct eng *e, struct level *L, int si, double cs, double bs, int T) {
  if (si < 0 || T >= e->body_cap) return qsr_step_body_ms(&L->st, cs, bs, T);
  if (!L->body[si] && !(L->body[si] = nan_table(e->body_cap))) return qsr_step_body_ms(&L->st, cs, bs, T);
  double *v = &L->body[si][T];
  if (isnan(*v)) *v = qsr_step_body_ms(&L->st, cs, bs, T);
  return *v;
}

static double head_ms(struct eng *e, struct level *L, int si, double cs, double bs, int rows) {
  if (si < 0 || rows >= e->head_cap) return qsr_step_head_ms(&L->st, cs, bs, rows);
  if (!L->head[si] && !(L->head[si] = nan_table(e->head_cap))) return qsr_step_head_ms(&L->st, cs, bs, rows);
  double *v = &L->head[si][rows];
  if (isnan(*v)) *v = qsr_step_head_ms(&L->st, cs, bs, rows);
  return *v;
}

static void dec_work(struct level *L, int g, int ctx, struct qsr_work *w) {
  if (ctx >= L->dec_cap || !L->dec[g]) { qsr_step_attn_work(&L->st, g, ctx, 0, w); return; }
  struct qsr_work *c = &L->dec[g][ctx];
  if (isnan(c->flops)) {
    struct qsr_work z = { 0, 0, 0 };
    qsr_step_attn_work(&L->st, g, ctx, 0, &z);
    *c = z;
  }
  w->flops += c->flops;
  w->vec_ops += c->vec_ops;
  w->bytes += c->bytes;
}

/* ---- setup ------------------------------------------------------------- */

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

static int setup(struct eng *e, char **err) {
  struct qsr_serve_cfg *c = e->cfg;
  const struct qsr_trace *t = e->t;
  int rc;
  e->n_lv = c->n_levels;
  int32_t max_prompt = 1, max_ctx = 2;
  for (size_t i = 0; i < t->n; i++) {
    if (t->req[i].prompt > max_prompt) max_prompt = t->req[i].prompt;
    if (t->req[i].prompt + t->req[i].output + 1 > max_ctx) max_ctx = t->req[i].prompt + t->req[i].output + 1;
  }
  double Tcap = c->batching == QSR_BATCHING_CHUNKED ? c->chunk_tokens + c->max_batch
              : c->batching == QSR_BATCHING_STATIC ? (double)c->max_batch * max_prompt
                                                   : (double)max_prompt + c->max_batch;
  e->body_cap = (int)(Tcap + 1 < BODY_TAB_MAX ? Tcap + 1 : BODY_TAB_MAX);
  e->head_cap = c->max_batch + 1;
  double wmax = 0, wsum = 0, wseen[QSR_SERVE_LEVELS];
  int nseen = 0;
  for (int l = 0; l < e->n_lv; l++) {
    struct level *L = &e->lv[l];
    if ((rc = qsr_step_init(&L->st, c->dev, c->m, c->levels[l], err))) {
      if (l) {
        char *m = NULL;
        qsr_errf(&m, rc, "adaptation level %d: %s", l, *err);
        free(*err);
        *err = m;
      }
      return rc;
    }
    struct qsr_result res;
    if ((rc = qsr_eval(c->dev, c->m, c->levels[l], c->q, &res, err))) return rc;
    L->quality = res.quality_loss;
    if (c->miss == QSR_MISS_LOWBIT && c->q && L->st.r.on) {
      struct qsr_design dl = *c->levels[l];
      dl.layer[QSR_LCLASS_EXPERTS] = dl.weights;
      dl.layer[QSR_LCLASS_EXPERTS].bits = c->miss_bits;
      if ((rc = qsr_eval(c->dev, c->m, &dl, c->q, &res, err))) return rc;
      L->lowbit_dq = fmax(0, res.quality_loss - L->quality);
    }
    L->dec_cap = max_ctx + 1;
    for (int g = 0; g < L->st.n_groups; g++) {
      L->dec[g] = malloc((size_t)L->dec_cap * sizeof *L->dec[g]);
      if (!L->dec[g]) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory for the attention table");
      for (int i = 0; i < L->dec_cap; i++) L->dec[g][i].flops = NAN;
    }
    double wb = L->st.weight_bytes;
    if (wb > wmax) wmax = wb;
    int dup = 0;
    for (int i = 0; i < nseen; i++) dup |= fabs(wseen[i] - wb) < 1;
    if (!dup) { wseen[nseen++] = wb; wsum += wb; }
  }
  /* memory */
  const struct qsr_step *s0 = &e->lv[0].st;
  const struct qsr_model *m = c->m;
  e->usable = c->dev->usable_gb * 1e9;
  double weights = c->nested ? wmax : wsum;
  e->act = qsr_step_act_bytes(s0, e->body_cap - 1, c->max_batch);
  e->prefix_bytes = c->prefix_blocks > 0 && t->block_tokens > 0
                        ? (double)c->prefix_blocks * qsr_step_kv_bytes(s0, t->block_tokens) : 0;
  double experts_all = 0;
  if (s0->r.on)
    for (int l = 0; l < m->layers; l++) experts_all += s0->r.experts * s0->expert_bytes[s0->layer_group[l]];
  e->nonexpert = weights - experts_all;
  /* room for the KV of a full batch of mean-length requests */
  double mean_len = 0;
  for (size_t i = 0; i < t->n; i++) mean_len += t->req[i].prompt + t->req[i].output;
  mean_len = t->n ? mean_len / t->n : 1;
  double kv_want = c->max_batch * qsr_step_kv_bytes(s0, mean_len);
  e->cache_n = s0->r.on ? s0->r.experts : 0;
  e->tier_bw = 0;
  int tier = c->tier;
  if (tier < 0)
    for (int i = 0; i < QSR_TIER_COUNT; i++)
      if (c->dev->offload[i].bw_gbps > 0 && (tier < 0 || c->dev->offload[i].bw_gbps > c->dev->offload[tier].bw_gbps))
        tier = i;
  static const char *const tiers[] = { "host DRAM", "NVMe", "flash" };
  if (tier >= 0) e->tier_bw = c->dev->offload[tier].bw_gbps * 1e6;
  int want_cache = s0->r.on && (c->expert_cache >= 0 || weights + e->act + kv_want > e->usable);
  if (want_cache) {
    double per_slot = 0;
    for (int l = 0; l < m->layers; l++) per_slot += s0->expert_bytes[s0->layer_group[l]];
    int n = c->expert_cache;
    if (n < 0) {
      double room = e->usable - e->nonexpert - e->act - e->prefix_bytes - kv_want;
      n = per_slot > 0 ? (int)floor(room / per_slot) : 0;
      if (n < 0) n = 0;
    }
    if (n > s0->r.experts) n = s0->r.experts;
    e->cache_n = n;
    if (n < s0->r.experts && e->tier_bw <= 0 && c->miss != QSR_MISS_CPU)
      return qsr_errf(err, QSR_ERR_CONFIG, "%s: %d of %d experts per layer are resident and %s has no offload tier "
                      "for the rest (offload: in its device file)", m->name, n, s0->r.experts, c->dev->name);
    if (c->miss == QSR_MISS_CPU && n < s0->r.experts && tier != QSR_TIER_HOST)
      return qsr_errf(err, QSR_ERR_CONFIG, "--miss cpu computes a missed expert where it lives, in host DRAM; %s's "
                      "offloaded experts would live in %s (no host tier in its device file)", c->dev->name,
                      tier >= 0 ? tiers[tier] : "no tier");
    if (c->miss == QSR_MISS_CPU) {
      if (!c->cpu) return qsr_errf(err, QSR_ERR_CONFIG, "--miss cpu needs the host CPU's device (--cpu-device)");
      if ((rc = qsr_step_init(&e->cpu_st, c->cpu, m, c->levels[0], err))) return rc;
    }
    e->weights_res = e->nonexpert + n * per_slot;
    if (n < s0->r.experts) {
      const double *pop = NULL;
      double *popbuf = NULL;
      if (c->routes) {
        popbuf = malloc((size_t)m->layers * s0->r.experts * sizeof *popbuf);
        if (!popbuf) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
        for (int l = 0; l < m->layers; l++)
          memcpy(popbuf + (size_t)l * s0->r.experts, qsr_routes_popularity(c->routes, l),
                 (size_t)s0->r.experts * sizeof *popbuf);
        pop = popbuf;
      }
      if (c->cache_policy == QSR_ECACHE_PINNED && !pop) {
        free(popbuf);
        return qsr_errf(err, QSR_ERR_CONFIG, "--cache pinned needs expert popularity: give --routing");
      }
      rc = qsr_ecache_new(m->layers, s0->r.experts, n, c->cache_policy, pop, &e->ec, err);
      free(popbuf);
      if (rc) return rc;
    }
    snprintf(c->note, sizeof c->note, "expert cache: %d of %d experts per layer resident (%s)%s%s", n,
             s0->r.experts, qsr_ecache_policy_names[c->cache_policy], n < s0->r.experts ? ", misses from " : "",
             n < s0->r.experts ? (tier >= 0 ? tiers[tier] : "the host CPU") : "");
  } else {
    e->weights_res = weights;
    if (weights + e->act > e->usable) {
      if (e->tier_bw <= 0)
        return qsr_errf(err, QSR_ERR_CONFIG, "%s needs %.0f MB of weights, %.0f MB usable on %s, and no offload tier",
                        m->name, weights / 1e6, e->usable / 1e6, c->dev->name);
      e->stream_bytes = weights + e->act + kv_want - e->usable;
      if (e->stream_bytes > weights) e->stream_bytes = weights;
      e->weights_res = weights - e->stream_bytes;
      snprintf(c->note, sizeof c->note, "%.0f MB of weights live in %s and stream every iteration",
               e->stream_bytes / 1e6, tiers[tier]);
    }
  }
  if (c->n_levels > 1 && !c->note[0])
    snprintf(c->note, sizeof c->note, "%d resident levels (%s): %.0f MB of weights", c->n_levels,
             c->nested ? "nested bit-planes" : "stored copies", weights / 1e6);
  /* the scale pairs of the fluctuation trace */
  scale_slot(e, 1, 1);
  if (c->fluct)
    for (int i = 0; i < c->fluct->n; i++) scale_slot(e, c->fluct->pts[i].compute_scale, c->fluct->pts[i].bw_scale);
  /* state */
  size_t n = t->n ? t->n : 1;
  e->run = calloc((size_t)c->max_batch, sizeof *e->run);
  e->queue = malloc(n * sizeof *e->queue);
  e->ttft = malloc(n * sizeof(double));
  e->tpot = malloc(n * sizeof(double));
  e->e2e = malloc(n * sizeof(double));
  e->queue_ms = malloc(n * sizeof(double));
  e->rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!e->run || !e->queue || !e->ttft || !e->tpot || !e->e2e || !e->queue_ms || !e->rng)
    return qsr_errf(err, QSR_ERR_NOMEM, "out of memory for %zu requests", t->n);
  gsl_rng_set(e->rng, c->seed ? c->seed : 1);
  if (s0->r.on) {
    int L = m->layers, E = s0->r.experts;
    e->touched = calloc((size_t)L * E, 1);
    e->tlist = malloc((size_t)L * E * sizeof *e->tlist);
    e->assign = calloc((size_t)L, sizeof *e->assign);
    e->ids = malloc((size_t)L * (s0->r.kmax + 1) * sizeof *e->ids);
    e->per_layer = calloc((size_t)L, sizeof *e->per_layer);
    if (!e->touched || !e->tlist || !e->assign || !e->ids || !e->per_layer) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
    if (c->routes) {
      if (qsr_routes_layers(c->routes) != L || qsr_routes_experts(c->routes) != E)
        return qsr_errf(err, QSR_ERR_CONFIG, "routing trace has %d layers x %d experts, %s %d x %d",
                        qsr_routes_layers(c->routes), qsr_routes_experts(c->routes), m->name, L, E);
      e->rstate_sz = qsr_routes_state_size(c->routes);
      e->rstate = calloc((size_t)c->max_batch, e->rstate_sz ? e->rstate_sz : 1);
      if (!e->rstate) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
    }
  } else if (c->routes) {
    return qsr_errf(err, QSR_ERR_CONFIG, "--routing given but %s has no experts", m->name);
  }
  if ((rc = pc_init(&e->pc, t->block_tokens > 0 ? c->prefix_blocks : 0)))
    return qsr_errf(err, rc, "out of memory for the prefix cache");
  return QSR_OK;
}

static void teardown(struct eng *e) {
  for (int l = 0; l < QSR_SERVE_LEVELS; l++) {
    for (int i = 0; i < MAX_SCALES; i++) { free(e->lv[l].body[i]); free(e->lv[l].head[i]); }
    for (int g = 0; g < QSR_STEP_GROUPS; g++) free(e->lv[l].dec[g]);
  }
  free(e->run);
  free(e->queue);
  free(e->ttft);
  free(e->tpot);
  free(e->e2e);
  free(e->queue_ms);
  free(e->rstate);
  free(e->touched);
  free(e->tlist);
  free(e->assign);
  free(e->ids);
  free(e->per_layer);
  qsr_ecache_free(e->ec);
  pc_free(&e->pc);
  gsl_rng_free(e->rng);
}

/* ---- the loop ---------------------------------------------------------- */

static double mem_avail(const struct eng *e, double now) {
  if (e->cfg->fluct) {
    const struct qsr_fluct_point *p = qsr_fluct_at(e->cfg->fluct, now);
    if (p->mem_gb > 0) return p->mem_gb * 1e9 < e->usable ? p->mem_gb * 1e9 : e->usable;
  }
  return e->usable;
}

static double kv_cap(const struct eng *e, double now) {
  return mem_avail(e, now) - e->weights_res - e->act - e->prefix_bytes;
}

/* Admits one request, whose KV reservation is `need` bytes, into the next
** run slot; returns 0 when that does not fit now. */
static int admit(struct eng *e, int64_t ri, double need, double now) {
  const struct qsr_request *r = &e->t->req[ri];
  if (e->kv_used + need > kv_cap(e, now)) return 0;
  struct seq *s = &e->run[e->n_run];
  memset(s, 0, sizeof *s);
  s->req = ri;
  s->prompt = r->prompt;
  s->output = r->output;
  s->kv_res = need;
  s->admit_s = now;
  s->cx = r->complexity;
  if (e->pc.cap > 0 && r->n_blocks) {
    uint32_t hit = 0;
    for (uint32_t b = 0; b < r->n_blocks && pc_lookup(&e->pc, e->t->blocks[r->block_off + b]); b++) hit++;
    int64_t ct = (int64_t)hit * e->t->block_tokens;
    if (ct > r->prompt - 1) ct = r->prompt - 1;
    s->cached = (int32_t)ct;
  }
  s->done_prompt = s->cached;
  if (e->cfg->routes) qsr_routes_seq_init(e->cfg->routes, e->rstate + (size_t)e->n_run * e->rstate_sz, (uint64_t)ri);
  e->kv_used += need;
  e->n_run++;
  return 1;
}

static void finish(struct eng *e, struct seq *s, double now) {
  struct qsr_serve_cfg *c = e->cfg;
  const struct qsr_request *r = &e->t->req[s->req];
  struct qsr_req_rec rec;
  memset(&rec, 0, sizeof rec);
  rec.id = s->req;
  rec.arrival_s = r->arrival_s;
  rec.admit_s = s->admit_s;
  rec.first_token_s = s->first_s;
  rec.finish_s = now;
  rec.prompt = s->prompt;
  rec.output = s->output;
  rec.cached_tokens = s->cached;
  rec.ttft_ms = (s->first_s - r->arrival_s) * 1e3;
  rec.tpot_ms = s->output > 1 ? (now - s->first_s) * 1e3 / (s->output - 1) : 0;
  rec.e2e_ms = (now - r->arrival_s) * 1e3;
  rec.queue_ms = (s->admit_s - r->arrival_s) * 1e3;
  rec.quality_loss = s->output ? s->qsum / s->output : 0;
  rec.met_slo = (c->slo_ttft_ms <= 0 || rec.ttft_ms <= c->slo_ttft_ms) &&
                (c->slo_tpot_ms <= 0 || s->output <= 1 || rec.tpot_ms <= c->slo_tpot_ms);
  int64_t k = e->n_done++;
  e->ttft[k] = rec.ttft_ms;
  e->tpot[k] = rec.tpot_ms;
  e->e2e[k] = rec.e2e_ms;
  e->queue_ms[k] = rec.queue_ms;
  e->tok_in += s->prompt;
  e->tok_out += s->output;
  e->qual_sum += s->qsum;
  e->prefix_tok += s->cached;
  e->prompt_tok += s->prompt;
  e->kv_used -= s->kv_res;
  if (c->on_request) c->on_request(c->ud, &rec);
}

/* Per-token complexity in [0,1]. */
static double complexity(struct eng *e, const struct seq *s) {
  if (s->cx >= 0) return s->cx;
  const struct qsr_design *d = e->lv[0].st.d;
  double a = d->cx_alpha > 0 ? d->cx_alpha : 2, b = d->cx_beta > 0 ? d->cx_beta : 2;
  return gsl_ran_beta(e->rng, a, b);
}

static int pick_level(struct eng *e, double cs, double bs, double cmean) {
  struct qsr_serve_cfg *c = e->cfg;
  if (c->adapt == QSR_ADAPT_STATIC || e->n_lv < 2) return 0;
  double waiting = (double)(e->q_tail - e->q_head);
  double p = clampd(waiting / c->max_batch, 0, 1);
  if (c->slo_tpot_ms > 0) p = fmax(p, clampd((e->ewma_iter_ms / c->slo_tpot_ms - 0.5) / 0.5, 0, 1));
  p = fmax(p, clampd(2 * (1 - fmin(cs, bs)), 0, 1));
  /* token-aware: easy batches go cheaper than the pressure alone says, hard ones stay precise */
  if (c->adapt == QSR_ADAPT_TOKEN) p = clampd(p + 0.5 - cmean, 0, 1);
  double x = p * (e->n_lv - 1);
  int lv = (int)floor(x + 0.5);
  return lv < 0 ? 0 : lv >= e->n_lv ? e->n_lv - 1 : lv;
}

static void sample(struct eng *e, double now, double cs, double bs) {
  struct qsr_serve_cfg *c = e->cfg;
  double dt = c->sample_dt_s > 0 ? c->sample_dt_s : 1;
  while (e->next_sample <= now) {
    struct qsr_sample sm;
    memset(&sm, 0, sizeof sm);
    sm.t_s = e->next_sample;
    sm.queued = (int)(e->q_tail - e->q_head);
    sm.running = e->n_run;
    sm.kv_mb = e->kv_used / 1e6;
    sm.mem_used_mb = (e->weights_res + e->act + e->prefix_bytes + e->kv_used) / 1e6;
    sm.mem_avail_mb = mem_avail(e, e->next_sample) / 1e6;
    sm.tok_s = e->samp_tok / dt;
    sm.bw_scale = bs;
    sm.compute_scale = cs;
    sm.level = e->level;
    sm.hit_rate = e->ec ? (e->samp_hits + e->samp_miss > 0 ? e->samp_hits / (e->samp_hits + e->samp_miss) : 1) : -1;
    if (c->on_sample) c->on_sample(c->ud, &sm);
    e->samp_tok = e->samp_hits = e->samp_miss = 0;
    e->next_sample += dt;
  }
}

/* Draws the experts of `ntok` tokens of run slot si (k each) into the
** iteration's touched sets; `scale` multiplies the assignments counted. */
static void route_tokens(struct eng *e, int si, int ntok, int k, double scale) {
  const struct qsr_step *s0 = &e->lv[0].st;
  int L = e->cfg->m->layers, E = s0->r.experts;
  for (int i = 0; i < ntok; i++) {
    qsr_routes_token(e->cfg->routes, e->rstate + (size_t)si * e->rstate_sz, k, e->ids);
    for (int l = 0; l < L; l++) {
      e->assign[l] += k * scale;
      for (int j = 0; j < k; j++) {
        int x = l * E + e->ids[l * k + j];
        if (!e->touched[x]) { e->touched[x] = 1; e->tlist[e->n_t++] = x; }
      }
    }
  }
}

/* Expert FFN and miss handling of one iteration: returns compute ms, adds transfer ms. */
static double experts_cost(struct eng *e, struct level *L, double cs, double bs, double T, double k_mean,
                           double *xfer_ms, double *lowbit_frac) {
  struct qsr_serve_cfg *c = e->cfg;
  const struct qsr_step *st = &L->st;
  int nl = c->m->layers, E = st->r.experts;
  double ms = 0, xfer = 0, lowbit_assign = 0, all_assign = 0;
  double wbits = st->d->weights.bits > 0 ? st->d->weights.bits : 16;
  double lowr = c->miss == QSR_MISS_LOWBIT ? fmin(1, c->miss_bits / wbits) : 1;
  if (!c->routes) {
    double A, D;
    qsr_step_experts_expect(st, T, &A, &D);
    A *= k_mean / st->r.k_mean;
    for (int g = 0; g < st->n_groups; g++) ms += st->g_layers[g] * qsr_step_experts_ms(st, cs, bs, g, A, D);
    if (e->cache_n < E) {  /* expected misses: uniform residency */
      double miss = D * (1 - (double)e->cache_n / E);
      for (int l = 0; l < nl; l++) {
        double b = miss * st->expert_bytes[st->layer_group[l]];
        xfer += b * lowr / e->tier_bw;
        e->offload_bytes += b * lowr;
      }
      e->misses += miss * nl;
      e->hits += (D - miss) * nl;
      e->samp_miss += miss * nl;
      e->samp_hits += (D - miss) * nl;
      if (c->miss == QSR_MISS_LOWBIT) lowbit_assign = all_assign = 1;
    }
    *xfer_ms += xfer;
    *lowbit_frac = lowbit_assign > 0 ? (1 - (double)e->cache_n / E) : 0;
    return ms;
  }
  /* distinct experts per layer from the tokens drawn */
  int *per_layer = e->per_layer;
  for (int i = 0; i < e->n_t; i++) per_layer[e->tlist[i] / E]++;
  for (int l = 0; l < nl; l++) {
    if (e->assign[l] <= 0) continue;
    int g = st->layer_group[l];
    ms += qsr_step_experts_ms(st, cs, bs, g, e->assign[l], per_layer[l]);
    all_assign += e->assign[l];
  }
  if (e->ec) {
    for (int i = 0; i < e->n_t; i++) {
      int x = e->tlist[i], l = x / E, ex = x % E;
      int g = st->layer_group[l];
      if (qsr_ecache_access(e->ec, l, ex)) { e->hits++; e->samp_hits++; continue; }
      e->misses++;
      e->samp_miss++;
      double b = st->expert_bytes[g];
      double fetch = e->tier_bw > 0 ? b * lowr / e->tier_bw : INFINITY;
      double share = per_layer[l] > 0 ? e->assign[l] / per_layer[l] : 0;  /* tokens on this expert */
      if (c->miss == QSR_MISS_CPU) {
        double cpu_ms = qsr_step_experts_ms(&e->cpu_st, 1, 1, e->cpu_st.layer_group[l], share, 1);
        if (cpu_ms < fetch) { xfer += cpu_ms; e->cpu_misses++; continue; }
      }
      xfer += fetch;
      e->offload_bytes += b * lowr;
      if (c->miss == QSR_MISS_LOWBIT) lowbit_assign += share;
    }
  }
  for (int i = 0; i < e->n_t; i++) e->touched[e->tlist[i]] = 0;
  e->n_t = 0;
  for (int l = 0; l < nl; l++) e->assign[l] = per_layer[l] = 0;
  *xfer_ms += xfer;
  *lowbit_frac = all_assign > 0 ? lowbit_assign / all_assign : 0;
  return ms;
}

static void pct(double *v, int64_t n, struct qsr_pct *p) {
  memset(p, 0, sizeof *p);
  if (n <= 0) return;
  gsl_sort(v, 1, (size_t)n);
  p->p50 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)n, 0.50);
  p->p90 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)n, 0.90);
  p->p99 = gsl_stats_quantile_from_sorted_data(v, 1, (size_t)n, 0.99);
  p->max = v[n - 1];
  p->mean = gsl_stats_mean(v, 1, (size_t)n);
}

int qsr_serve_run(struct qsr_serve_cfg *cfg, const struct qsr_trace *t, struct qsr_serve_summary *out, char **err) {
  struct eng E;
  memset(&E, 0, sizeof E);
  struct eng *e = &E;
  e->cfg = cfg;
  e->t = t;
  cfg->note[0] = 0;
  memset(out, 0, sizeof *out);
  int rc = QSR_OK;
  if (cfg->n_levels < 1 || cfg->n_levels > QSR_SERVE_LEVELS || cfg->max_batch < 1 ||
      (cfg->batching == QSR_BATCHING_CHUNKED && cfg->chunk_tokens < 1)) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "bad serving configuration (levels %d, max batch %d, chunk %d)",
                  cfg->n_levels, cfg->max_batch, cfg->chunk_tokens);
    goto out;
  }
  if ((rc = setup(e, err))) goto out;
  const struct qsr_routing *r0 = &e->lv[0].st.r;
  int64_t ai = 0, n = (int64_t)t->n;
  double now = n ? t->req[0].arrival_s : 0, first = now;
  e->next_sample = now;
  double cs = 1, bs = 1;
  while (e->n_done + e->rejected < n) {
    while (ai < n && t->req[ai].arrival_s <= now) e->queue[e->q_tail++] = ai++;
    if (e->n_run == 0 && e->q_head == e->q_tail) {
      now = t->req[ai].arrival_s;
      continue;
    }
    if (cfg->fluct) {
      const struct qsr_fluct_point *fp = qsr_fluct_at(cfg->fluct, now - first);
      cs = fp->compute_scale;
      bs = fp->bw_scale;
    }
    /* admission */
    if (cfg->batching != QSR_BATCHING_STATIC || e->n_run == 0) {
      while (e->q_head < e->q_tail && e->n_run < cfg->max_batch) {
        int64_t ri = e->queue[e->q_head];
        const struct qsr_request *rq = &t->req[ri];
        double need = qsr_step_kv_bytes(&e->lv[0].st, (double)rq->prompt + rq->output);
        if (need > e->usable - e->weights_res - e->act - e->prefix_bytes) {  /* could never fit */
          e->rejected++;
          e->q_head++;
          continue;
        }
        if (!admit(e, ri, need, now)) break;
        e->q_head++;
      }
      if (e->n_run == 0) {  /* memory is short for now (fluctuation): wait for the next change */
        double nx = cfg->fluct ? first + qsr_fluct_next(cfg->fluct, now - first) : INFINITY;
        double na = ai < n ? t->req[ai].arrival_s : INFINITY;
        double w = fmin(nx, na);
        if (!isfinite(w)) { e->rejected += e->q_tail - e->q_head; e->q_head = e->q_tail; break; }
        now = w > now ? w : now + 1e-3;
        continue;
      }
    }
    /* form the iteration */
    double T = 0, rows = 0, csum = 0, ncx = 0, k_sum = 0, ktok = 0;
    int ndec = 0, nchunk = 0;
    int budget = cfg->batching == QSR_BATCHING_CHUNKED ? cfg->chunk_tokens : INT32_MAX;
    for (int i = 0; i < e->n_run; i++) {
      struct seq *s = &e->run[i];
      s->chunk = 0;
      if (s->done_prompt >= s->prompt) { ndec++; budget--; }
    }
    int dyn = r0->on && e->lv[0].st.d->dynamic;
    int want_cx = cfg->adapt == QSR_ADAPT_TOKEN || dyn;
    for (int i = 0; i < e->n_run; i++) {
      struct seq *s = &e->run[i];
      if (s->done_prompt < s->prompt) {
        int c = s->prompt - s->done_prompt;
        if (cfg->batching == QSR_BATCHING_CHUNKED) {
          if (budget <= 0) continue;
          if (c > budget) c = budget;
          budget -= c;
        }
        s->chunk = c;
        T += c;
        nchunk++;
        if (s->done_prompt + c >= s->prompt) rows++;
      } else {
        T += 1;
        rows += 1;
      }
      s->k = r0->top_k;
      if (want_cx && s->done_prompt >= s->prompt && !s->finished) {
        double cx = complexity(e, s);
        csum += cx;
        ncx++;
        if (r0->on && (dyn || cfg->adapt == QSR_ADAPT_TOKEN)) {
          int kmin = dyn ? e->lv[0].st.d->k_min : 1, kmax = r0->kmax;
          s->k = kmin + (int)floor(cx * (kmax - kmin + 1));
          if (s->k > kmax) s->k = kmax;
        }
      }
    }
    e->level = pick_level(e, cs, bs, ncx > 0 ? csum / ncx : 0.5);
    struct level *L = &e->lv[e->level];
    e->level_iters[e->level]++;
    int si = scale_slot(e, cs, bs);
    double ms = body_ms(e, L, si, cs, bs, (int)T) + head_ms(e, L, si, cs, bs, (int)rows) + L->st.sync_ms;
    for (int g = 0; g < L->st.n_groups; g++) {
      struct qsr_work w = { 0, 0, 0 };
      for (int i = 0; i < e->n_run; i++) {
        const struct seq *s = &e->run[i];
        if (s->chunk) qsr_step_attn_work(&L->st, g, s->done_prompt, s->chunk, &w);
        else if (s->done_prompt >= s->prompt) dec_work(L, g, s->prompt + s->steps + 1, &w);
      }
      ms += qsr_step_attn_ms(&L->st, cs, bs, g, &w, ndec > 0);
    }
    double xfer = 0, lowbit = 0;
    if (r0->on) {
      if (cfg->routes)
        for (int i = 0; i < e->n_run; i++) {
          struct seq *s = &e->run[i];
          if (s->chunk) {
            int nt = s->chunk < ROUTE_SAMPLE ? s->chunk : ROUTE_SAMPLE;
            route_tokens(e, i, nt, r0->top_k, (double)s->chunk / nt);
          } else if (s->done_prompt >= s->prompt) {
            route_tokens(e, i, 1, s->k, 1);
          }
        }
      for (int i = 0; i < e->n_run; i++) {
        k_sum += e->run[i].chunk ? (double)e->run[i].chunk * r0->top_k : e->run[i].k;
        ktok += e->run[i].chunk ? e->run[i].chunk : 1;
      }
      ms += experts_cost(e, L, cs, bs, T, ktok > 0 ? k_sum / ktok : r0->k_mean, &xfer, &lowbit);
    }
    if (e->stream_bytes > 0) xfer += e->stream_bytes / e->tier_bw;
    double dt_ms = cfg->overlap ? fmax(ms, xfer) : ms + xfer;
    e->ewma_iter_ms = e->iters ? 0.9 * e->ewma_iter_ms + 0.1 * dt_ms : dt_ms;
    e->iters++;
    e->dec_rows += ndec;
    now += dt_ms * 1e-3;
    double mem = e->weights_res + e->act + e->prefix_bytes + e->kv_used;
    if (mem > e->peak_mem) e->peak_mem = mem;
    /* quality of a low-precision expert copy */
    double qtok = L->quality;
    qtok += lowbit * L->lowbit_dq;
    /* advance the sequences */
    int all_done = 1;
    for (int i = 0; i < e->n_run; i++) {
      struct seq *s = &e->run[i];
      if (s->chunk) {
        s->done_prompt += s->chunk;
        if (s->done_prompt >= s->prompt && e->pc.cap > 0) {
          const struct qsr_request *rq = &t->req[s->req];
          for (uint32_t b = 0; b < rq->n_blocks; b++) pc_insert(&e->pc, t->blocks[rq->block_off + b]);
        }
      } else if (s->done_prompt >= s->prompt) {
        s->steps++;
        if (!s->finished) {
          s->gen++;
          s->qsum += qtok;
          e->samp_tok++;
          if (s->gen == 1) s->first_s = now;
          if (s->gen >= s->output) {
            if (cfg->batching == QSR_BATCHING_STATIC) {
              finish(e, s, now);
              s->finished = 1;
              s->kv_res = 0;
            } else {
              finish(e, s, now);
              s->finished = 2;
            }
          }
        }
      }
      if (!s->finished) all_done = 0;
    }
    if (cfg->batching == QSR_BATCHING_STATIC) {
      if (all_done) e->n_run = 0;
    } else {  /* compact */
      int j = 0;
      for (int i = 0; i < e->n_run; i++) {
        if (e->run[i].finished) continue;
        if (j != i) {
          e->run[j] = e->run[i];
          if (cfg->routes) memcpy(e->rstate + (size_t)j * e->rstate_sz, e->rstate + (size_t)i * e->rstate_sz, e->rstate_sz);
        }
        j++;
      }
      e->n_run = j;
    }
    sample(e, now, cs, bs);
  }
  /* summary */
  out->requests = e->n_done;
  out->rejected = e->rejected;
  out->tokens_in = (int64_t)e->tok_in;
  out->tokens_out = (int64_t)e->tok_out;
  out->sim_s = now - first;
  double span = out->sim_s > 0 ? out->sim_s : 1e-9;
  out->throughput_tok_s = e->tok_out / span;
  out->throughput_req_s = e->n_done / span;
  int64_t good = 0;
  for (int64_t i = 0; i < e->n_done; i++)
    good += (cfg->slo_ttft_ms <= 0 || e->ttft[i] <= cfg->slo_ttft_ms) &&
            (cfg->slo_tpot_ms <= 0 || e->tpot[i] <= cfg->slo_tpot_ms);
  out->goodput_req_s = good / span;
  out->slo_met_frac = e->n_done ? (double)good / e->n_done : 0;
  out->tpot_std_ms = e->n_done > 1 ? gsl_stats_sd(e->tpot, 1, (size_t)e->n_done) : 0;
  out->e2e_std_ms = e->n_done > 1 ? gsl_stats_sd(e->e2e, 1, (size_t)e->n_done) : 0;
  pct(e->ttft, e->n_done, &out->ttft_ms);
  pct(e->tpot, e->n_done, &out->tpot_ms);
  pct(e->e2e, e->n_done, &out->e2e_ms);
  pct(e->queue_ms, e->n_done, &out->queue_ms);
  out->iterations = e->iters;
  out->mean_batch = e->iters ? e->dec_rows / e->iters : 0;
  out->peak_mem_mb = e->peak_mem / 1e6;
  out->expert_cache_hit_rate = e->ec || (r0->on && e->cache_n < r0->experts)
                                   ? (e->hits + e->misses > 0 ? e->hits / (e->hits + e->misses) : 1) : -1;
  out->offload_gb = e->offload_bytes / 1e9;
  out->cpu_expert_frac = e->misses > 0 ? e->cpu_misses / e->misses : 0;
  out->prefix_hit_frac = e->prompt_tok > 0 ? e->prefix_tok / e->prompt_tok : 0;
  out->quality_loss = e->tok_out > 0 ? e->qual_sum / e->tok_out : 0;
  out->retention = -1;
  out->n_levels = e->n_lv;
  for (int l = 0; l < e->n_lv && l < 8; l++) out->level_share[l] = e->iters ? e->level_iters[l] / e->iters : 0;
out:
  teardown(e);
  return rc;
}
