/*
** runner.c -- the deployment runner on the CPU backend (see runner.h and
** docs/run.md).
**
** One pass, T tokens (prefill: batch x prompt, sequence-major; decode: batch):
**
**   res = embedding(ids)                               embedding
**   per layer:
**     xn  = norm(res += delta)                         rmsnorm_add | layernorm_add
**     qkv = xn . Wqkv^T; K, V appended per sequence    gemm_<fmt> | gemv_<fmt>
**     att = attention(q, cache)                        attn_{prefill,decode}_<type>
**     delta = att . Wout^T                             gemm | gemv
**     xn  = norm(res += delta)
**     delta = down(silu(gate xn) * up xn)              gemm | gemv, silu_gate (or gelu)
**          or the routed experts                       moe_router, moe_experts_{gemm,gemv}
**   last = norm(res += delta) at each sequence's last token
**   logits = last . Wlm^T                              gemv (gemm past 16 sequences)
**
** The linear variant is the one qsr_kvariant_linear() names for the pass's
** token count -- the rule deploy files are written and checked with -- and
** is called explicitly (qsr_cpu_gemv or qsr_cpu_gemm), so the named kernel
** is the one that runs. Not run: rotary position embeddings (no kernel in
** the set; an elementwise pass over q and k, well under 1% of a layer) and
** linear biases (no kernel takes one).
**
** Weights: quantising a billion random weights takes minutes, so one
** prototype of 256 rows is quantised per (format, bits, group, columns) and
** each matrix gets its own buffer filled with prototype rows (rotated by a
** per-matrix offset). Every layer thus reads its own bytes from DRAM each
** step, as a real model does, and not one cached copy; the values differ
** from a trained model's, which no kernel's speed depends on (top-k
** selection aside).
**
** Timing: CLOCK_MONOTONIC around each layer and around the embedding and
** head, so a phase is the sum of its parts plus nothing unmeasured. Prefill
** runs prefill_reps times (default once, no warm-up: a pass can take
** seconds; the median is kept): the weights are resident (the fill touched
** every page) and the activation and KV buffers are touched before it. The first decode step is a warm-up
** and is not timed.
*/
#include "kernels/runner.h"

#include "costmodel/costmodel.h"
#include "kernels/qformat_traits.h"
#include "kernels/quant.h"
#include "kernels/variants.h"
#include "util/err.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PROTO_ROWS 256       /* rows quantised per prototype */
#define MAX_PROTOS 48
#define NORM_EPS 1e-5f
#define GEMM_TILE_ROWS 16    /* linear.c's dequantised tile (its own malloc, counted here) */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int qsr_run_token(unsigned seed, int b, int pos, int vocab) {
  uint64_t h = splitmix(splitmix(((uint64_t)seed << 32) ^ (uint64_t)(uint32_t)b) ^ (uint64_t)(uint32_t)pos);
  return (int)(h % (uint64_t)vocab);
}

/* ---- routing and precision, as the cost model resolves them -------------- */

struct route {
  int on;                    /* experts present */
  int experts, ffn, k;       /* E, per-expert width, experts per token as run */
  double k_mean;             /* the design's mean k (dynamic routing) */
};

/* The cost model's routing (moe uses the model's experts, moefy splits the
** FFN into E), reduced to what the kernels run. */
static void route_resolve(const struct qsr_model *m, const struct qsr_design *d, struct route *r) {
  struct qsr_routing cr;
  qsr_routing_resolve(m, d, &cr);
  memset(r, 0, sizeof *r);
  if (!cr.on) return;
  r->on = 1;
  r->experts = cr.experts;
  r->ffn = cr.ffn;
  r->k = cr.top_k;
  r->k_mean = cr.k_mean;
  if (d->dynamic) {          /* the router kernel takes one k: the nearest to the mean */
    r->k = (int)lround(r->k_mean);
    if (r->k < 1) r->k = 1;
    if (r->k > r->experts) r->k = r->experts;
  }
}

/* Precision of matrix `which` in a layer (sensitive or not); deploy.c's rule. */
static struct qsr_wq weight_wq(const struct qsr_model *m, const struct qsr_design *d, int which, int sens) {
  int own = d->layer[QSR_LCLASS_EXPERTS].bits || sens;
  switch (which) {
  case QSR_RUN_W_EMBED: return qsr_wq_resolve(d, QSR_LCLASS_EMBEDDING, 0);
  case QSR_RUN_W_LM_HEAD:
    return qsr_wq_resolve(d, m->tie_embeddings ? QSR_LCLASS_EMBEDDING : QSR_LCLASS_LM_HEAD, 0);
  case QSR_RUN_W_QKV: return qsr_wq_resolve(d, QSR_LCLASS_ATTN_QKV, sens);
  case QSR_RUN_W_OUT: return qsr_wq_resolve(d, QSR_LCLASS_ATTN_OUT, sens);
  case QSR_RUN_W_UP: return qsr_wq_resolve(d, QSR_LCLASS_FFN_UP, sens);
  case QSR_RUN_W_GATE: return qsr_wq_resolve(d, QSR_LCLASS_FFN_GATE, sens);
  case QSR_RUN_W_DOWN: return qsr_wq_resolve(d, QSR_LCLASS_FFN_DOWN, sens);
  case QSR_RUN_W_ROUTER: return qsr_wq_resolve(d, QSR_LCLASS_ROUTER, sens);
  case QSR_RUN_W_EXPERT_UP: return qsr_wq_resolve(d, own ? QSR_LCLASS_EXPERTS : QSR_LCLASS_FFN_UP, sens);
  case QSR_RUN_W_EXPERT_GATE: return qsr_wq_resolve(d, own ? QSR_LCLASS_EXPERTS : QSR_LCLASS_FFN_GATE, sens);
  default: return qsr_wq_resolve(d, own ? QSR_LCLASS_EXPERTS : QSR_LCLASS_FFN_DOWN, sens);
  }
}

/* rows x cols of matrix `which` */
static void weight_shape(const struct qsr_model *m, const struct route *rt, int which, uint32_t *rows, uint32_t *cols) {
  uint32_t h = (uint32_t)m->hidden, a = (uint32_t)(m->heads * m->head_dim);
  switch (which) {
  case QSR_RUN_W_EMBED:
  case QSR_RUN_W_LM_HEAD: *rows = (uint32_t)m->vocab; *cols = h; break;
  case QSR_RUN_W_QKV: *rows = (uint32_t)((m->heads + 2 * m->kv_heads) * m->head_dim); *cols = h; break;
  case QSR_RUN_W_OUT: *rows = h; *cols = a; break;
  case QSR_RUN_W_UP:
  case QSR_RUN_W_GATE: *rows = (uint32_t)m->ffn; *cols = h; break;
  case QSR_RUN_W_DOWN: *rows = h; *cols = (uint32_t)m->ffn; break;
  case QSR_RUN_W_ROUTER: *rows = (uint32_t)rt->experts; *cols = h; break;
  case QSR_RUN_W_EXPERT_UP:
  case QSR_RUN_W_EXPERT_GATE: *rows = (uint32_t)rt->ffn; *cols = h; break;
  default: *rows = h; *cols = (uint32_t)rt->ffn;
  }
}

/* ---- synthetic weights ----------------------------------------------------- */

struct proto {
  struct qsr_wq wq;
  uint32_t cols;
  int embed;                 /* N(0, 1) values (an embedding) instead of N(0, 1/cols) */
  qsr_qmatrix m;             /* PROTO_ROWS x cols, quantised */
};

struct protos {
  struct proto p[MAX_PROTOS];
  int n;
};

static void protos_free(struct protos *ps) {
  for (int i = 0; i < ps->n; i++) qsr_qmatrix_free(&ps->p[i].m);
  ps->n = 0;
}

/* The prototype for (wq, cols, embed) in *out, quantised on first use. */
static int proto_get(struct protos *ps, unsigned seed, struct qsr_wq wq, uint32_t cols, int embed,
                     const qsr_qmatrix **out, char **err) {
  for (int i = 0; i < ps->n; i++) {
    struct proto *p = &ps->p[i];
    if (p->wq.fmt == wq.fmt && p->wq.bits == wq.bits && p->wq.group == wq.group && p->cols == cols && p->embed == embed) {
      *out = &p->m;
      return QSR_OK;
    }
  }
  if (ps->n == MAX_PROTOS) return qsr_errf(err, QSR_ERR_CONFIG, "runner: more than %d weight precisions", MAX_PROTOS);
  struct proto *p = &ps->p[ps->n];
  int rc = qsr_qmatrix_alloc(&p->m, wq.fmt, wq.bits, wq.group, PROTO_ROWS, cols, err);
  if (rc) return rc;
  float *w = malloc((size_t)PROTO_ROWS * cols * sizeof *w);
  gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
  if (!w || !g) {
    free(w);
    if (g) gsl_rng_free(g);
    qsr_qmatrix_free(&p->m);
    return qsr_errf(err, QSR_ERR_NOMEM, "runner: out of memory for a weight prototype");
  }
  uint64_t key = splitmix(seed) ^ splitmix(((uint64_t)wq.fmt << 40) ^ ((uint64_t)wq.bits << 32) ^
                                           ((uint64_t)wq.group << 20) ^ cols ^ ((uint64_t)embed << 60));
  gsl_rng_set(g, (unsigned long)(key & 0xffffffffu) | 1ul);
  double sd = embed ? 1.0 : 1.0 / sqrt((double)cols);   /* keeps |W x| ~ |x| for a normalised x */
  for (size_t i = 0; i < (size_t)PROTO_ROWS * cols; i++) w[i] = (float)gsl_ran_gaussian(g, sd);
  qsr_quantize(&p->m, w);
  free(w);
  gsl_rng_free(g);
  p->wq = wq;
  p->cols = cols;
  p->embed = embed;
  ps->n++;
  *out = &p->m;
  return QSR_OK;
}

/* Allocates m (rows x cols in wq) and fills it from the prototype, row r
** taking prototype row (r + off) mod PROTO_ROWS. */
static int weight_make(struct protos *ps, unsigned seed, struct qsr_wq wq, uint32_t rows, uint32_t cols, int embed,
                       uint64_t off_key, qsr_qmatrix *m, char **err) {
  const qsr_qmatrix *p = NULL;
  int rc = proto_get(ps, seed, wq, cols, embed, &p, err);
  if (!rc) rc = qsr_qmatrix_alloc(m, wq.fmt, wq.bits, wq.group, rows, cols, err);
  if (rc) return rc;
  uint32_t off = (uint32_t)(splitmix(off_key ^ seed) % PROTO_ROWS);
  for (uint32_t r = 0; r < rows; r++) {
    uint32_t s = (r + off) % PROTO_ROWS;
    memcpy(m->data + (uint64_t)r * m->row_data_bytes, p->data + (uint64_t)s * p->row_data_bytes, m->row_data_bytes);
    if (m->row_meta_bytes)
      memcpy(m->meta + (uint64_t)r * m->row_meta_bytes, p->meta + (uint64_t)s * p->row_meta_bytes, m->row_meta_bytes);
  }
  return QSR_OK;
}

static uint64_t weight_key(int which, int layer, int expert) {
  return splitmix(((uint64_t)(uint32_t)which << 48) ^ ((uint64_t)(uint32_t)layer << 24) ^ (uint64_t)(uint32_t)expert);
}

static int check_model(const struct qsr_model *m, char **err) {
  if (m->family != QSR_FAMILY_DECODER)
    return qsr_errf(err, QSR_ERR_CONFIG, "runner: %s is not a decoder model (the runner runs decoders only)", m->name);
  if (m->layers < 1 || m->layers > QSR_MAX_LAYERS || m->hidden < 1 || m->heads < 1 || m->kv_heads < 1 ||
      m->heads % m->kv_heads || m->head_dim % QSR_QBLOCK || m->vocab < 1 || m->ffn < 1)
    return qsr_errf(err, QSR_ERR_CONFIG,
                    "runner: %s: shape the kernels cannot take (heads %d a multiple of kv_heads %d, head_dim %d a "
                    "multiple of 32, layers 1..%d)", m->name, m->heads, m->kv_heads, m->head_dim, QSR_MAX_LAYERS);
  return QSR_OK;
}

int qsr_run_weight(const struct qsr_model *m, const struct qsr_design *d, unsigned seed, int which, int layer,
                   int expert, qsr_qmatrix *out, char **err) {
  memset(out, 0, sizeof *out);
  int rc = check_model(m, err);
  if (rc) return rc;
  if (which < 0 || which >= QSR_RUN_W_COUNT || layer < 0 || layer >= m->layers)
    return qsr_errf(err, QSR_ERR_CONFIG, "runner: no weight %d of layer %d", which, layer);
  struct route rt;
  route_resolve(m, d, &rt);
  if (which == QSR_RUN_W_LM_HEAD && m->tie_embeddings) which = QSR_RUN_W_EMBED;
  int global = which == QSR_RUN_W_EMBED || which == QSR_RUN_W_LM_HEAD;
  uint32_t rows, cols;
  weight_shape(m, &rt, which, &rows, &cols);
  struct protos ps;
  ps.n = 0;
  rc = weight_make(&ps, seed, weight_wq(m, d, which, global ? 0 : d->sensitive_layer[layer]), rows, cols,
                   which == QSR_RUN_W_EMBED, weight_key(which, global ? 0 : layer, expert), out, err);
  protos_free(&ps);
  return rc;
}

struct qsr_wq qsr_run_main_wq(const struct qsr_model *m, const struct qsr_design *d) {
  struct route rt;
  route_resolve(m, d, &rt);
  struct qsr_wq wq[64];
  double params[64];
  int n = 0;
  for (int l = -1; l < m->layers; l++)
    for (int w = QSR_RUN_W_LM_HEAD; w < QSR_RUN_W_COUNT; w++) {
      if ((l < 0) != (w == QSR_RUN_W_LM_HEAD)) continue;     /* lm_head once, the rest per layer */
      int moe_w = w >= QSR_RUN_W_ROUTER, ffn_w = w >= QSR_RUN_W_UP && w <= QSR_RUN_W_DOWN;
      if ((rt.on && ffn_w) || (!rt.on && moe_w)) continue;
      if ((w == QSR_RUN_W_GATE || w == QSR_RUN_W_EXPERT_GATE) && m->ffn_act != QSR_FFNACT_SWIGLU) continue;
      uint32_t rows, cols;
      weight_shape(m, &rt, w, &rows, &cols);
      double p = (double)rows * cols * (w >= QSR_RUN_W_EXPERT_UP ? rt.experts : 1);
      struct qsr_wq q = weight_wq(m, d, w, l >= 0 ? d->sensitive_layer[l] : 0);
      int i = 0;
      while (i < n && !(wq[i].fmt == q.fmt && wq[i].bits == q.bits && wq[i].group == q.group)) i++;
      if (i == n && n < 64) { wq[n] = q; params[n++] = 0; }
      if (i < n) params[i] += p;
    }
  int best = 0;
  for (int i = 1; i < n; i++)
    if (params[i] > params[best]) best = i;
  return wq[best];
}

/* ---- the model as run ------------------------------------------------------- */

struct rlayer {
  int index;                 /* model layer */
  int kind;                  /* 2 * sensitive + dense_layer: layers of one kind cost the same */
  qsr_qmatrix qkv, out, up, gate, down, router;
  qsr_qmatrix *eup, *egate, *edown;   /* [experts] */
  uint8_t *head_type;        /* [heads] */
  qsr_attn_cfg cfg;
  qsr_kvcache *kv;           /* [batch] */
  uint8_t att_used[QSR_HEAD_COUNT];
};

struct rn {
  const struct qsr_model *m;
  const struct qsr_design *d;
  const struct qsr_run_opts *o;
  qsr_pool *pool;
  struct route rt;
  int B, P, steps, max_ctx, tmax, gated;
  int nl;                    /* layers run */
  struct rlayer *L;
  qsr_qmatrix embed, head;   /* head unused (data NULL) when tied */
  const qsr_qmatrix *lm;     /* &head or &embed */
  float *normw, *normb;      /* [hidden]: 1 and 0 */
  float *res, *delta, *xn, *qkvb, *q, *k, *v, *att, *g, *u, *last, *logits;
  float *attn_scratch, *moe_scratch, *rlogits;
  qsr_moe_plan plan;
  int32_t *ids;
  uint8_t used[QSR_KVAR_COUNT];
  double bytes_w, bytes_kv, bytes_act;
};

/* Floats of each activation buffer for a pass of up to tmax tokens. */
struct act_sizes {
  uint64_t res, qkv, q, kv, g, last, logits, attn, moe, rlogits;
  uint64_t gemm_tiles;       /* linear.c's per-task tiles, one per thread at a time */
};

static void act_sizes(const struct qsr_model *m, const struct route *rt, int B, int tmax, int max_ctx, int threads,
                      struct act_sizes *s) {
  uint64_t T = (uint64_t)tmax, H = (uint64_t)m->heads * (uint64_t)m->head_dim;
  uint64_t F = rt->on ? (uint64_t)rt->ffn : (uint64_t)m->ffn;
  s->res = T * (uint64_t)m->hidden;
  s->qkv = T * (uint64_t)(m->heads + 2 * m->kv_heads) * (uint64_t)m->head_dim;
  s->q = T * H;
  s->kv = T * (uint64_t)m->kv_heads * (uint64_t)m->head_dim;
  s->g = rt->on ? 0 : T * F;
  s->last = (uint64_t)B * (uint64_t)m->hidden;
  s->logits = (uint64_t)B * (uint64_t)m->vocab;
  s->attn = (uint64_t)threads * (4ull * (uint64_t)max_ctx + 2ull * (uint64_t)m->head_dim + 16);  /* qsr_cpu_attn_scratch */
  s->moe = rt->on ? T * (2ull * (uint64_t)m->hidden + 2ull * F) : 0;                              /* qsr_cpu_moe_scratch */
  s->rlogits = rt->on ? T * (uint64_t)rt->experts : 0;
  uint64_t maxc = (uint64_t)m->hidden > F ? (uint64_t)m->hidden : F;
  if (H > maxc) maxc = H;
  s->gemm_tiles = (uint64_t)threads * GEMM_TILE_ROWS * maxc;
}

static double act_bytes_total(const struct act_sizes *s) {
  /* res, delta, xn: 3 x res; q and att: 2 x q; k and v: 2 x kv; gate and up: 2 x g */
  uint64_t f = 3 * s->res + s->qkv + 2 * s->q + 2 * s->kv + 2 * s->g + s->last + s->logits + s->attn + s->moe +
               s->rlogits + s->gemm_tiles;
  return 4.0 * (double)f;
}

static double wbytes(const struct qsr_model *m, const struct qsr_design *d, const struct route *rt, int which, int sens) {
  uint32_t rows, cols;
  weight_shape(m, rt, which, &rows, &cols);
  struct qsr_wq wq = weight_wq(m, d, which, sens);
  qsr_qmatrix t;
  if (qsr_qmatrix_layout(&t, wq.fmt, wq.bits, wq.group, rows, cols)) return -1;
  return (double)qsr_qmatrix_bytes(&t);
}

static double layer_wbytes(const struct qsr_model *m, const struct qsr_design *d, const struct route *rt, int l) {
  int s = d->sensitive_layer[l];
  double b = wbytes(m, d, rt, QSR_RUN_W_QKV, s) + wbytes(m, d, rt, QSR_RUN_W_OUT, s);
  int gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  if (!rt->on) return b + wbytes(m, d, rt, QSR_RUN_W_UP, s) + wbytes(m, d, rt, QSR_RUN_W_DOWN, s) +
                      (gated ? wbytes(m, d, rt, QSR_RUN_W_GATE, s) : 0);
  return b + wbytes(m, d, rt, QSR_RUN_W_ROUTER, s) +
         rt->experts * (wbytes(m, d, rt, QSR_RUN_W_EXPERT_UP, s) + wbytes(m, d, rt, QSR_RUN_W_EXPERT_DOWN, s) +
                        (gated ? wbytes(m, d, rt, QSR_RUN_W_EXPERT_GATE, s) : 0));
}

/* KV page size of layer l: summaries only where paged top-k heads need them. */
static int layer_page(const struct qsr_model *m, const struct qsr_design *d, int l) {
  int n[3];
  qsr_head_counts(m, d, d->dense_layer[l], n);
  return d->selection == QSR_SEL_PAGED && n[1] > 0 && d->page > 0 ? d->page : 0;
}

static double layer_kvbytes(const struct qsr_model *m, const struct qsr_design *d, int B, int max_ctx, int l) {
  qsr_kvcache c;
  if (qsr_kvcache_layout(&c, d->kv, m->kv_heads, m->head_dim, max_ctx, layer_page(m, d, l))) return -1;
  double one = 2.0 * (double)m->kv_heads * max_ctx * c.vec_bytes +
               2.0 * 4.0 * (double)m->kv_heads * qsr_kvcache_pages(&c) * m->head_dim;
  return B * one;
}

static void rn_free(struct rn *r) {
  if (r->L) {
    for (int i = 0; i < r->nl; i++) {
      struct rlayer *L = &r->L[i];
      qsr_qmatrix_free(&L->qkv);
      qsr_qmatrix_free(&L->out);
      qsr_qmatrix_free(&L->up);
      qsr_qmatrix_free(&L->gate);
      qsr_qmatrix_free(&L->down);
      qsr_qmatrix_free(&L->router);
      for (int e = 0; r->rt.on && e < r->rt.experts; e++) {
        if (L->eup) qsr_qmatrix_free(&L->eup[e]);
        if (L->egate) qsr_qmatrix_free(&L->egate[e]);
        if (L->edown) qsr_qmatrix_free(&L->edown[e]);
      }
      free(L->eup);
      free(L->egate);
      free(L->edown);
      free(L->head_type);
      for (int b = 0; L->kv && b < r->B; b++) qsr_kvcache_free(&L->kv[b]);
      free(L->kv);
    }
    free(r->L);
  }
  qsr_qmatrix_free(&r->embed);
  qsr_qmatrix_free(&r->head);
  free(r->normw);
  free(r->normb);
  free(r->res);
  free(r->delta);
  free(r->xn);
  free(r->qkvb);
  free(r->q);
  free(r->k);
  free(r->v);
  free(r->att);
  free(r->g);
  free(r->u);
  free(r->last);
  free(r->logits);
  free(r->attn_scratch);
  free(r->moe_scratch);
  free(r->rlogits);
  free(r->ids);
  qsr_moe_plan_free(&r->plan);
}

static float *fbuf(uint64_t n, struct rn *r) {
  r->bytes_act += 4.0 * (double)n;
  return n ? malloc(n * sizeof(float)) : NULL;
}

/* Builds layer i (model layer l) of the run. */
static int build_layer(struct rn *r, struct protos *ps, struct rlayer *L, int l, char **err) {
  const struct qsr_model *m = r->m;
  const struct qsr_design *d = r->d;
  unsigned seed = r->o->seed;
  int s = d->sensitive_layer[l], rc;
  L->index = l;
  L->kind = 2 * s + (d->dense_layer[l] ? 1 : 0);
#define MK(which, exp, dst)                                                                                 \
  do {                                                                                                      \
    uint32_t rows_, cols_;                                                                                  \
    weight_shape(m, &r->rt, which, &rows_, &cols_);                                                         \
    if ((rc = weight_make(ps, seed, weight_wq(m, d, which, s), rows_, cols_, 0, weight_key(which, l, exp),  \
                          dst, err)))                                                                       \
      return rc;                                                                                            \
    r->bytes_w += (double)qsr_qmatrix_bytes(dst);                                                           \
  } while (0)
  MK(QSR_RUN_W_QKV, 0, &L->qkv);
  MK(QSR_RUN_W_OUT, 0, &L->out);
  if (!r->rt.on) {
    MK(QSR_RUN_W_UP, 0, &L->up);
    if (r->gated) MK(QSR_RUN_W_GATE, 0, &L->gate);
    MK(QSR_RUN_W_DOWN, 0, &L->down);
  } else {
    int E = r->rt.experts;
    MK(QSR_RUN_W_ROUTER, 0, &L->router);
    L->eup = calloc((size_t)E, sizeof *L->eup);
    L->edown = calloc((size_t)E, sizeof *L->edown);
    L->egate = r->gated ? calloc((size_t)E, sizeof *L->egate) : NULL;
    if (!L->eup || !L->edown || (r->gated && !L->egate)) return qsr_errf(err, QSR_ERR_NOMEM, "runner: out of memory");
    for (int e = 0; e < E; e++) {
      MK(QSR_RUN_W_EXPERT_UP, e, &L->eup[e]);
      if (r->gated) MK(QSR_RUN_W_EXPERT_GATE, e, &L->egate[e]);
      MK(QSR_RUN_W_EXPERT_DOWN, e, &L->edown[e]);
    }
  }
#undef MK
  int n[3];
  qsr_head_counts(m, d, d->dense_layer[l], n);
  L->head_type = malloc((size_t)m->heads);
  if (!L->head_type) return qsr_errf(err, QSR_ERR_NOMEM, "runner: out of memory");
  for (int h = 0; h < m->heads; h++) {
    /* qsr_head_counts numbers heads dense, top-k, local: enum qsr_head's order */
    int t = h < n[0] ? QSR_HEAD_DENSE : h < n[0] + n[1] ? QSR_HEAD_TOPK : QSR_HEAD_LOCAL;
    L->head_type[h] = (uint8_t)t;
    L->att_used[t] = 1;
  }
  int page = layer_page(m, d, l);            /* > 0 only where paged top-k heads are */
  L->cfg = (qsr_attn_cfg){ m->heads, m->kv_heads, m->head_dim, L->head_type, d->window, d->topk,
                           page > 0, m->sliding_window, 1.0f / sqrtf((float)m->head_dim) };
  L->kv = calloc((size_t)r->B, sizeof *L->kv);
  if (!L->kv) return qsr_errf(err, QSR_ERR_NOMEM, "runner: out of memory");
  for (int b = 0; b < r->B; b++) {
    if ((rc = qsr_kvcache_alloc(&L->kv[b], d->kv, m->kv_heads, m->head_dim, r->max_ctx, page, err)))
      return rc;
    const qsr_kvcache *c = &L->kv[b];
    r->bytes_kv += 2.0 * (double)c->kv_heads * c->max_ctx * c->vec_bytes +
                   2.0 * 4.0 * c->kv_heads * qsr_kvcache_pages(c) * c->head_dim;
  }
  return QSR_OK;
}

/* ---- the forward pass --------------------------------------------------------- */

static void linear(struct rn *r, const qsr_qmatrix *w, const float *x, int T, float *y) {
  int v = qsr_kvariant_linear(w->fmt, T);
  r->used[v] = 1;
  if (v >= QSR_KVAR_GEMM_FP16 && v <= QSR_KVAR_GEMM_LUT) qsr_cpu_gemm(r->pool, w, x, T, y);
  else qsr_cpu_gemv(r->pool, w, x, T, y);
}

/* res += x (x may be NULL: nothing to add), out = norm(res); T rows of n. */
static void norm(struct rn *r, const float *x, float *res, int T, float *out) {
  int n = r->m->hidden;
  if (r->m->norm == QSR_NORM_LAYER) {
    r->used[QSR_KVAR_LAYERNORM] = 1;
    if (x) qsr_cpu_layernorm_add(x, res, r->normw, r->normb, NORM_EPS, T, n, out);
    else qsr_cpu_layernorm_add(res, NULL, r->normw, r->normb, NORM_EPS, T, n, out);
  } else {
    r->used[QSR_KVAR_RMSNORM] = 1;
    if (x) qsr_cpu_rmsnorm_add(x, res, r->normw, NORM_EPS, T, n, out);
    else qsr_cpu_rmsnorm_add(res, NULL, r->normw, NORM_EPS, T, n, out);
  }
}

/* One decoder layer over T = B * S tokens (S per sequence, sequence-major).
** On entry delta holds the previous block's output (first: NULL). */
static void layer_pass(struct rn *r, struct rlayer *L, int S, int first) {
  const struct qsr_model *m = r->m;
  int B = r->B, T = B * S, hd = m->head_dim, H = m->heads, KV = m->kv_heads;
  int qd = H * hd, kd = KV * hd, h = m->hidden;
  norm(r, first ? NULL : r->delta, r->res, T, r->xn);
  linear(r, &L->qkv, r->xn, T, r->qkvb);
  for (int t = 0; t < T; t++) {              /* split q | k | v per token */
    const float *row = r->qkvb + (size_t)t * (size_t)(qd + 2 * kd);
    memcpy(r->q + (size_t)t * qd, row, (size_t)qd * sizeof(float));
    memcpy(r->k + (size_t)t * kd, row + qd, (size_t)kd * sizeof(float));
    memcpy(r->v + (size_t)t * kd, row + qd + kd, (size_t)kd * sizeof(float));
  }
  for (int b = 0; b < B; b++) {
    size_t t0 = (size_t)b * (size_t)S;
    int ok = qsr_kvcache_append(&L->kv[b], S, r->k + t0 * kd, r->v + t0 * kd);
    QSR_ASSERT(ok == 0);                     /* max_ctx covers prompt + every step */
    if (S == 1) qsr_cpu_attn_decode(r->pool, &L->cfg, &L->kv[b], r->q + t0 * qd, r->att + t0 * qd, r->attn_scratch);
    else qsr_cpu_attn_prefill(r->pool, &L->cfg, &L->kv[b], S, r->q + t0 * qd, r->att + t0 * qd, r->attn_scratch);
  }
  for (int t = 0; t < QSR_HEAD_COUNT; t++)
    if (L->att_used[t]) r->used[qsr_kvariant_attention(t, L->cfg.paged, S == 1)] = 1;
  linear(r, &L->out, r->att, T, r->delta);
  norm(r, r->delta, r->res, T, r->xn);
  if (!r->rt.on) {
    linear(r, &L->up, r->xn, T, r->u);
    if (r->gated) {
      linear(r, &L->gate, r->xn, T, r->g);
      r->used[QSR_KVAR_SILU_GATE] = 1;
      qsr_cpu_silu_gate(r->g, r->u, (int64_t)T * m->ffn, r->u);
    } else {
      r->used[QSR_KVAR_GELU] = 1;
      qsr_cpu_gelu(r->u, (int64_t)T * m->ffn, r->u);
    }
    linear(r, &L->down, r->u, T, r->delta);
    return;
  }
  int E = r->rt.experts, cap = 0;
  if (r->d->capacity > 0) cap = (int)ceil(r->d->capacity * T * r->rt.k / E);
  r->used[QSR_KVAR_MOE_ROUTER] = 1;
  r->used[qsr_kvariant_linear(L->router.fmt, T)] = 1;   /* the router's gating linear */
  qsr_cpu_moe_router(r->pool, &L->router, r->xn, T, r->rt.k, cap, &r->plan, r->rlogits);
  memset(r->delta, 0, (size_t)T * (size_t)h * sizeof(float));
  r->used[S == 1 ? QSR_KVAR_MOE_EXPERTS_GEMV : QSR_KVAR_MOE_EXPERTS_GEMM] = 1;
  r->used[r->gated ? QSR_KVAR_SILU_GATE : QSR_KVAR_GELU] = 1;
  qsr_cpu_moe_experts(r->pool, r->gated ? L->egate : NULL, L->eup, L->edown, &r->plan, r->xn, r->delta,
                      r->moe_scratch);
}

/* One pass of S tokens per sequence from position pos0. t_layer[i] gets
** layer i's time; returns the time of the ends (embedding, final norm, head). */
static double pass(struct rn *r, int S, int pos0, double *t_layer) {
  const struct qsr_model *m = r->m;
  int B = r->B, T = B * S, h = m->hidden;
  for (int b = 0; b < B; b++)
    for (int s = 0; s < S; s++) r->ids[b * S + s] = qsr_run_token(r->o->seed, b, pos0 + s, m->vocab);
  double t0 = now_ms();
  r->used[QSR_KVAR_EMBED] = 1;
  qsr_cpu_embedding(&r->embed, r->ids, T, r->res);
  double ends = now_ms() - t0;
  for (int i = 0; i < r->nl; i++) {
    double t1 = now_ms();
    layer_pass(r, &r->L[i], S, i == 0);
    t_layer[i] = now_ms() - t1;
  }
  t0 = now_ms();
  for (int b = 0; b < B; b++) {            /* final norm: each sequence's last token only */
    size_t t = (size_t)b * S + (size_t)S - 1;
    if (m->norm == QSR_NORM_LAYER) {
      r->used[QSR_KVAR_LAYERNORM] = 1;
      qsr_cpu_layernorm_add(r->delta + t * h, r->res + t * h, r->normw, r->normb, NORM_EPS, 1, h, r->last + (size_t)b * h);
    } else {
      r->used[QSR_KVAR_RMSNORM] = 1;
      qsr_cpu_rmsnorm_add(r->delta + t * h, r->res + t * h, r->normw, NORM_EPS, 1, h, r->last + (size_t)b * h);
    }
  }
  linear(r, r->lm, r->last, B, r->logits);
  return ends + now_ms() - t0;
}

/* Time of all model layers from the times of the layers run: each model
** layer costs the mean of the run layers of its kind (all run layers when
** none of its kind ran). Exact sum when every layer ran. */
static double layers_total(const struct rn *r, const double *t_layer) {
  if (r->nl == r->m->layers) {
    double s = 0;
    for (int i = 0; i < r->nl; i++) s += t_layer[i];
    return s;
  }
  double sum[4] = { 0, 0, 0, 0 }, all = 0;
  int cnt[4] = { 0, 0, 0, 0 };
  for (int i = 0; i < r->nl; i++) {
    sum[r->L[i].kind] += t_layer[i];
    cnt[r->L[i].kind]++;
    all += t_layer[i];
  }
  double total = 0;
  for (int l = 0; l < r->m->layers; l++) {
    int k = 2 * (r->d->sensitive_layer[l] ? 1 : 0) + (r->d->dense_layer[l] ? 1 : 0);
    total += cnt[k] ? sum[k] / cnt[k] : all / r->nl;
  }
  return total;
}

static void note(struct qsr_run_result *res, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void note(struct qsr_run_result *res, const char *fmt, ...) {
  size_t n = strlen(res->notes);
  if (n && n + 2 < sizeof res->notes) { memcpy(res->notes + n, "; ", 3); n += 2; }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->notes + n, sizeof res->notes - n, fmt, ap);
  va_end(ap);
}

/* Layers to run when only n fit: the first layer of each kind, then the
** rest in model order; run in model order. */
static int pick_layers(const struct qsr_model *m, const struct qsr_design *d, const double *lbytes, double room,
                       int *pick) {
  int order[QSR_MAX_LAYERS], no = 0, seen[4] = { 0, 0, 0, 0 };
  uint8_t taken[QSR_MAX_LAYERS];
  memset(taken, 0, sizeof taken);
  for (int l = 0; l < m->layers; l++) {
    int k = 2 * (d->sensitive_layer[l] ? 1 : 0) + (d->dense_layer[l] ? 1 : 0);
    if (!seen[k]) { seen[k] = 1; order[no++] = l; taken[l] = 1; }
  }
  for (int l = 0; l < m->layers; l++)
    if (!taken[l]) order[no++] = l;
  int n = 0;
  double used = 0;
  memset(taken, 0, sizeof taken);
  for (int i = 0; i < no && used + lbytes[order[i]] <= room; i++) {
    used += lbytes[order[i]];
    taken[order[i]] = 1;
    n++;
  }
  int j = 0;
  for (int l = 0; l < m->layers; l++)
    if (taken[l]) pick[j++] = l;
  return n;
}

int qsr_run_model(const struct qsr_model *m, const struct qsr_design *d, const struct qsr_run_opts *o,
                  struct qsr_run_result *res, char **err) {
  struct rn r;
  struct protos ps;
  double *t_layer = NULL, *steps_ms = NULL;
  int rc;
  memset(&r, 0, sizeof r);
  memset(res, 0, sizeof *res);
  ps.n = 0;
  if (o->backend == QSR_RUN_CUDA)
    return qsr_errf(err, QSR_ERR_CUDA, "runner: the CUDA runner is not built yet (use --backend cpu)");
  if (o->backend != QSR_RUN_CPU) return qsr_errf(err, QSR_ERR_CONFIG, "runner: unknown backend %d", o->backend);
  if ((rc = check_model(m, err))) return rc;
  r.m = m;
  r.d = d;
  r.o = o;
  r.pool = o->pool;
  r.B = o->batch > 0 ? o->batch : d->batch;
  r.P = o->prompt > 0 ? o->prompt : d->prompt;
  r.steps = o->steps > 0 ? o->steps : o->steps < 0 ? 0 : d->gen;
  r.gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  if (r.B < 1 || r.P < 1)
    return qsr_errf(err, QSR_ERR_CONFIG, "runner: batch %d, prompt %d: need batch >= 1 and prompt >= 1", r.B, r.P);
  r.max_ctx = r.P + (r.steps ? r.steps + 1 : 0);
  r.tmax = r.B * r.P;
  route_resolve(m, d, &r.rt);
  if (r.rt.on && (r.rt.experts < 1 || r.rt.ffn < 1 || r.rt.k < 1 || r.rt.k > r.rt.experts))
    return qsr_errf(err, QSR_ERR_CONFIG, "runner: routing with %d experts of width %d, top-%d: not runnable",
                    r.rt.experts, r.rt.ffn, r.rt.k);
  res->batch = r.B;
  res->prompt = r.P;
  res->layers_model = m->layers;

  /* ---- memory plan: what fits the budget ---- */
  int threads = qsr_pool_threads(r.pool);
  struct act_sizes as;
  act_sizes(m, &r.rt, r.B, r.tmax, r.max_ctx, threads, &as);
  double budget = o->mem_budget_gb > 0 ? o->mem_budget_gb * 1e9
                                       : 0.8 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  double ends_w = wbytes(m, d, &r.rt, QSR_RUN_W_EMBED, 0) + (m->tie_embeddings ? 0 : wbytes(m, d, &r.rt, QSR_RUN_W_LM_HEAD, 0));
  double fixed = ends_w + act_bytes_total(&as), lbytes[QSR_MAX_LAYERS], all_layers = 0;
  for (int l = 0; l < m->layers; l++) {
    double w = layer_wbytes(m, d, &r.rt, l), kv = layer_kvbytes(m, d, r.B, r.max_ctx, l);
    if (w < 0 || kv < 0 || ends_w < 0)
      return qsr_errf(err, QSR_ERR_CONFIG, "runner: a weight precision or KV format of the design has no kernel layout");
    lbytes[l] = w + kv;
    all_layers += lbytes[l];
  }
  res->model_mb = (fixed + all_layers) / 1e6;
  int pick[QSR_MAX_LAYERS];
  r.nl = pick_layers(m, d, lbytes, budget - fixed, pick);
  if (r.nl < 1)
    return qsr_errf(err, QSR_ERR_NOMEM,
                    "runner: a budget of %.3g GB cannot hold the embedding, head, activations and one layer (%.3g GB)",
                    budget / 1e9, (fixed + lbytes[0]) / 1e9);
  res->layers_run = r.nl;
  res->layer_scale = (double)m->layers / r.nl;
  if (r.nl < m->layers) {
    note(res, "%d of %d layers ran (budget %.3g GB, model %.3g GB); the time of the others is the mean of the run "
              "layers of their kind", r.nl, m->layers, budget / 1e9, res->model_mb / 1e3);
    fprintf(stderr, "qsr run: only %d of %d layers fit in %.3g GB (the model needs %.3g GB): running %d layers and "
                    "scaling layer time x%.3g\n", r.nl, m->layers, budget / 1e9, res->model_mb / 1e3, r.nl,
            res->layer_scale);
  }
  note(res, "RoPE not run (no kernel in the set; elementwise, < 1%% of a layer)");
  if (m->bias) note(res, "linear biases not run (no kernel takes one)");
  if (r.rt.on && d->dynamic)
    note(res, "dynamic routing ran a fixed k = %d (the design's mean k is %.2f; the router kernel takes one k)",
         r.rt.k, r.rt.k_mean);
  note(res, "weights are synthetic (seed %u); the first decode step is a warm-up, not timed", o->seed);

  /* ---- build ---- */
  double tb = now_ms();
  if (o->verbose)
    fprintf(stderr, "qsr run: building %s, %d layers, %.0f MB of weights and KV cache ...\n", m->name, r.nl,
            (ends_w + all_layers * r.nl / m->layers) / 1e6);
  rc = QSR_ERR_NOMEM;
  r.L = calloc((size_t)r.nl, sizeof *r.L);
  r.normw = malloc((size_t)m->hidden * sizeof *r.normw);
  r.normb = calloc((size_t)m->hidden, sizeof *r.normb);
  r.ids = malloc((size_t)r.tmax * sizeof *r.ids);
  t_layer = calloc((size_t)r.nl, sizeof *t_layer);
  steps_ms = calloc((size_t)(r.steps ? r.steps : 1), sizeof *steps_ms);
  if (!r.L || !r.normw || !r.normb || !r.ids || !t_layer || !steps_ms) goto nomem;
  r.bytes_act += 8.0 * m->hidden;  /* norm weights and biases */
  for (int i = 0; i < m->hidden; i++) r.normw[i] = 1.0f;
  if ((rc = weight_make(&ps, o->seed, weight_wq(m, d, QSR_RUN_W_EMBED, 0), (uint32_t)m->vocab, (uint32_t)m->hidden, 1,
                        weight_key(QSR_RUN_W_EMBED, 0, 0), &r.embed, err)))
    goto out;
  r.bytes_w += (double)qsr_qmatrix_bytes(&r.embed);
  r.lm = &r.embed;
  if (!m->tie_embeddings) {
    if ((rc = weight_make(&ps, o->seed, weight_wq(m, d, QSR_RUN_W_LM_HEAD, 0), (uint32_t)m->vocab, (uint32_t)m->hidden,
                          0, weight_key(QSR_RUN_W_LM_HEAD, 0, 0), &r.head, err)))
      goto out;
    r.bytes_w += (double)qsr_qmatrix_bytes(&r.head);
    r.lm = &r.head;
  }
  for (int i = 0; i < r.nl; i++)
    if ((rc = build_layer(&r, &ps, &r.L[i], pick[i], err))) goto out;
  protos_free(&ps);                          /* build-time only: not part of the run's memory */
  rc = QSR_ERR_NOMEM;
  r.res = fbuf(as.res, &r);
  r.delta = fbuf(as.res, &r);
  r.xn = fbuf(as.res, &r);
  r.qkvb = fbuf(as.qkv, &r);
  r.q = fbuf(as.q, &r);
  r.att = fbuf(as.q, &r);
  r.k = fbuf(as.kv, &r);
  r.v = fbuf(as.kv, &r);
  r.g = fbuf(as.g, &r);
  r.u = fbuf(as.g, &r);
  r.last = fbuf(as.last, &r);
  r.logits = fbuf(as.logits, &r);
  r.attn_scratch = fbuf(as.attn, &r);
  r.moe_scratch = fbuf(as.moe, &r);
  r.rlogits = fbuf(as.rlogits, &r);
  r.bytes_act += 4.0 * (double)as.gemm_tiles;   /* allocated by qsr_cpu_gemm per task */
  if (!r.res || !r.delta || !r.xn || !r.qkvb || !r.q || !r.att || !r.k || !r.v || (as.g && (!r.g || !r.u)) ||
      !r.last || !r.logits || !r.attn_scratch || (as.moe && (!r.moe_scratch || !r.rlogits)))
    goto nomem;
  /* touch every page now (malloc and calloc map lazily), so no timed pass pays a first-touch fault */
  float *bufs[] = { r.res, r.delta, r.xn, r.qkvb, r.q, r.att, r.k, r.v, r.g, r.u, r.last, r.logits, r.attn_scratch,
                    r.moe_scratch, r.rlogits };
  uint64_t lens[] = { as.res, as.res, as.res, as.qkv, as.q, as.q, as.kv, as.kv, as.g, as.g, as.last, as.logits,
                      as.attn, as.moe, as.rlogits };
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]) memset(bufs[i], 0, lens[i] * sizeof(float));
  for (int i = 0; i < r.nl; i++)
    for (int b = 0; b < r.B; b++) {
      qsr_kvcache *c = &r.L[i].kv[b];
      size_t n = (size_t)c->kv_heads * (size_t)c->max_ctx * c->vec_bytes;
      memset(c->k, 0, n);
      memset(c->v, 0, n);
    }
  QSR_ASSERT(as.attn >= qsr_cpu_attn_scratch(r.pool, &r.L[0].cfg, r.max_ctx));
  if (r.rt.on) {
    if ((rc = qsr_moe_plan_alloc(&r.plan, r.tmax, r.rt.experts, r.rt.k, err))) goto out;
    QSR_ASSERT(as.moe >= qsr_cpu_moe_scratch(&r.plan, r.rt.ffn, m->hidden));
  }
  if (o->verbose) fprintf(stderr, "qsr run: built in %.1f s; prefill of %d x %d tokens ...\n", (now_ms() - tb) / 1e3, r.B, r.P);

  /* ---- prefill: reps passes over the same tokens, the KV cache emptied
  ** between them (page summaries restart with each page), median kept ---- */
  int reps = o->prefill_reps > 0 ? o->prefill_reps : 1;
  double pre[64], pre_ends[64];
  if (reps > 64) reps = 64;
  for (int k = 0; k < reps; k++) {
    for (int i = 0; i < r.nl; i++)
      for (int b = 0; b < r.B; b++) r.L[i].kv[b].len = 0;
    pre_ends[k] = pass(&r, r.P, 0, t_layer);
    pre[k] = pre_ends[k] + layers_total(&r, t_layer);
    if (o->verbose && reps > 1) fprintf(stderr, "qsr run: prefill %d/%d: %.1f ms\n", k + 1, reps, pre[k]);
  }
  res->prefill_reps = reps;
  res->ends_prefill_ms = gsl_stats_mean(pre_ends, 1, (size_t)reps);
  gsl_sort(pre, 1, (size_t)reps);
  res->prefill_ms = gsl_stats_median_from_sorted_data(pre, 1, (size_t)reps);
  res->prefill_ms_min = pre[0];
  res->prefill_ms_max = pre[reps - 1];

  /* ---- decode: one warm-up step, then `steps` timed ---- */
  double ends_sum = 0;
  for (int s = 0; s <= r.steps && r.steps > 0; s++) {
    double e = pass(&r, 1, r.P + s, t_layer);
    if (s == 0) continue;
    steps_ms[s - 1] = e + layers_total(&r, t_layer);
    ends_sum += e;
    if (o->verbose) fprintf(stderr, "\rqsr run: decode step %d/%d: %.2f ms", s, r.steps, steps_ms[s - 1]);
  }
  if (o->verbose && r.steps) fprintf(stderr, "\n");
  res->steps = r.steps;
  if (r.steps) {
    double mean = 0;
    for (int s = 0; s < r.steps; s++) mean += steps_ms[s];
    res->decode_ms_mean = mean / r.steps;
    res->ends_decode_ms = ends_sum / r.steps;
    gsl_sort(steps_ms, 1, (size_t)r.steps);
    res->decode_ms_p10 = gsl_stats_quantile_from_sorted_data(steps_ms, 1, (size_t)r.steps, 0.1);
    res->decode_ms_p90 = gsl_stats_quantile_from_sorted_data(steps_ms, 1, (size_t)r.steps, 0.9);
  }
  if (o->logits) memcpy(o->logits, r.logits, (size_t)r.B * (size_t)m->vocab * sizeof(float));

  /* ---- memory and kernels ---- */
  res->weights_mb = r.bytes_w / 1e6;
  res->kv_mb = r.bytes_kv / 1e6;
  res->act_mb = r.bytes_act / 1e6;
  res->peak_mb = (r.bytes_w + r.bytes_kv + r.bytes_act) / 1e6;
  res->model_mb = res->peak_mb;             /* + the exact bytes of the layers not run */
  for (int l = 0, i = 0; l < m->layers; l++) {
    if (i < r.nl && pick[i] == l) { i++; continue; }
    res->model_mb += lbytes[l] / 1e6;
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) res->rss_mb = (double)ru.ru_maxrss * 1024.0 / 1e6;  /* Linux: KiB */
  size_t kn = 0;
  for (int v = 0; v < QSR_KVAR_COUNT; v++)
    if (r.used[v]) kn += (size_t)snprintf(res->kernels + kn, kn < sizeof res->kernels ? sizeof res->kernels - kn : 0,
                                          "%s%s", kn ? "," : "", qsr_kvariant_name(v));
  rc = QSR_OK;
  goto out;
nomem:
  rc = qsr_errf(err, QSR_ERR_NOMEM, "runner: out of memory building %s", m->name);
out:
  protos_free(&ps);
  rn_free(&r);
  free(t_layer);
  free(steps_ms);
  return rc;
}
