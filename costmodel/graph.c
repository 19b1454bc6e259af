/*
** graph.c -- model + design -> grouped op graph for prefill and decode.
**
** Layers are grouped by the two per-layer plan bits (sensitive precision,
** dense attention): at most four groups, each one entry per op with a
** repeat count. Decode attention, the only op whose cost grows with the
** context, is emitted at three contexts (first step, middle, last) with
** Simpson weights 1/6, 4/6, 1/6, so the decode step time is the mean over
** the contexts actually reached, exact for costs linear or quadratic in it.
*/
#include "costmodel/cm_int.h"
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "kernels/variants.h"
#include "util/err.h"

#include <math.h>
#include <string.h>


struct gctx {
  const struct qsr_device *dev;
  const struct qsr_model *m;
  const struct qsr_design *d;
  const struct qsr_routing *r;
  struct qsr_graph *g;
  double act_bytes;           /* bytes per activation element */
  int mm_peak;                /* peak used by GEMM flops */
  double act_quant_ops;       /* vector ops per activation element for int8/fp8 */
  unsigned emit;              /* QSR_EMIT_* bits: the parts of a pass to emit */
  double head_rows;           /* rows of the final norm + lm_head (sequences) */
};

static struct qsr_op *push(struct gctx *c, int kind, int phase, double count) {
  QSR_ASSERT(c->g->n < QSR_MAX_OPS);
  struct qsr_op *o = &c->g->ops[c->g->n++];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->phase = phase;
  o->count = count;
  o->parts = 1;
  o->launches = 1;
  o->mm_peak = c->mm_peak;
  return o;
}

double qsr_wtensor_bytes(const struct qsr_wtensor *t) {
  return (double)qsr_qweight_bytes(t->wq.fmt, t->wq.bits, t->wq.group, (uint64_t)t->rows, (uint64_t)t->cols);
}

static double wq_bytes(struct qsr_wq wq, double rows, double cols) {
  return (double)qsr_qweight_bytes(wq.fmt, wq.bits, wq.group, (uint64_t)rows, (uint64_t)cols);
}

/* Vector ops to dequantise a rows x cols weight once per M-tile. W8A8 int
** and fp8 x fp8 consume the codes directly (scales in the epilogue). */
static double dequant_ops(const struct gctx *c, struct qsr_wq wq, double rows, double cols, double m) {
  double per = qsr_decode_ops(c->dev, wq.fmt, wq.bits);
  if (c->d->act == QSR_ACT_INT8 && (wq.fmt == QSR_WFMT_INT || wq.fmt == QSR_WFMT_INT_SYM) && wq.bits == 8) per = 0;
  if (c->d->act == QSR_ACT_FP8 && wq.fmt == QSR_WFMT_FP8) per = 0;
  if (c->d->act != QSR_ACT_FP16 && (wq.fmt == QSR_WFMT_FP16 || wq.fmt == QSR_WFMT_BF16)) per = 1;
  return per * rows * cols * ceil(m / QSR_DEQUANT_TILE_M);
}

/* A linear layer y[m x n] = x[m x k] W^T with W in precision wq. */
static void linear(struct gctx *c, int kind, int phase, double count, double m, double n, double k,
                   struct qsr_wq wq) {
  struct qsr_op *o = push(c, kind, phase, count);
  o->flops = 2 * m * n * k;
  o->wbytes = wq_bytes(wq, n, k) + (c->m->bias ? 2 * n : 0);
  o->bytes = o->wbytes + m * (n + k) * c->act_bytes;
  o->vec_ops = dequant_ops(c, wq, n, k, m) + c->act_quant_ops * m * k;
  o->gemv = qsr_kvariant_linear(wq.fmt, (int)(m < 1e6 ? m : 1e6)) < QSR_KVAR_GEMM_FP16;
  if (wq.fmt == QSR_WFMT_BF16 && c->mm_peak == QSR_PEAK_FP16_TENSOR && c->dev->peak_tflops[QSR_PEAK_BF16_TENSOR] > 0)
    o->mm_peak = QSR_PEAK_BF16_TENSOR;
}

static void elementwise(struct gctx *c, int kind, int phase, double count, double elems,
                        double rw_per_elem, double ops_per_elem) {
  struct qsr_op *o = push(c, kind, phase, count);
  o->bytes = elems * rw_per_elem * 2;   /* fp16 residual stream */
  o->vec_ops = elems * ops_per_elem;
}

/* sum_{i=1..P} min(i, w): keys seen by P causal queries under window w */
static double causal_keys(double P, double w) {
  if (w <= 0 || w >= P) return P * (P + 1) / 2;
  return w * (w + 1) / 2 + (P - w) * w;
}

enum { HT_DENSE, HT_TOPK, HT_LOCAL, HT_COUNT };

void qsr_head_counts(const struct qsr_model *m, const struct qsr_design *d, int dense_layer, int n[HT_COUNT]) {
  int H = m->heads;
  if (dense_layer) { n[HT_DENSE] = H; n[HT_TOPK] = n[HT_LOCAL] = 0; return; }
  n[HT_LOCAL] = (int)lround(d->att_local * H);
  n[HT_TOPK] = (int)lround(d->att_topk * H);
  if (n[HT_LOCAL] + n[HT_TOPK] > H) n[HT_TOPK] = H - n[HT_LOCAL];
  n[HT_DENSE] = H - n[HT_LOCAL] - n[HT_TOPK];
}

static void head_counts(const struct gctx *c, int dense_layer, int n[HT_COUNT]) {
  qsr_head_counts(c->m, c->d, dense_layer, n);
}

static int head_type(const int n[HT_COUNT], int h) {
  if (h < n[HT_DENSE]) return HT_DENSE;
  if (h < n[HT_DENSE] + n[HT_TOPK]) return HT_TOPK;
  return HT_LOCAL;
}

/* Effective dense span at context L (the model's own sliding window). */
static double dense_span(const struct gctx *c, double L) {
  double sw = c->m->sliding_window;
  return sw > 0 && sw < L ? sw : L;
}

static double local_span(const struct gctx *c, double L) {
  double w = c->d->window, s = dense_span(c, L);
  return w < s ? w : s;
}

/* Decode attention work of one sequence in one layer at context L. */
static void attn_decode_work(const struct gctx *c, int dense_layer, double L, struct qsr_work *w) {
  const struct qsr_model *m = c->m;
  const struct qsr_design *d = c->d;
  int n[HT_COUNT];
  head_counts(c, dense_layer, n);
  int H = m->heads, KV = m->kv_heads, grp = H / KV;
  double hd = m->head_dim, vb = qsr_kv_vec_bytes(d->kv, (uint32_t)m->head_dim);
  double k = d->topk < L ? d->topk : L, P = d->page;
  double kpos_t[HT_COUNT], vpos_t[HT_COUNT], fl_t[HT_COUNT];
  double span = dense_span(c, L), loc = local_span(c, L);
  kpos_t[HT_DENSE] = vpos_t[HT_DENSE] = span;
  fl_t[HT_DENSE] = 4 * span * hd;
  kpos_t[HT_LOCAL] = vpos_t[HT_LOCAL] = loc;
  fl_t[HT_LOCAL] = 4 * loc * hd;
  if (d->selection == QSR_SEL_EXACT) {
    kpos_t[HT_TOPK] = span;             /* score every key */
    vpos_t[HT_TOPK] = k;                /* read k values */
    fl_t[HT_TOPK] = 2 * span * hd + 2 * k * hd;
  } else {
    double pages = ceil(span / P);
    kpos_t[HT_TOPK] = 2 * pages + k;    /* min/max page summaries, then k keys */
    vpos_t[HT_TOPK] = k;
    fl_t[HT_TOPK] = 4 * pages * hd + 4 * k * hd;
  }
  double flops = 0, reads = 0;
  for (int kv = 0; kv < KV; kv++) {
    int has[HT_COUNT] = { 0, 0, 0 };
    for (int h = kv * grp; h < (kv + 1) * grp; h++) {
      int t = head_type(n, h);
      has[t] = 1;
      flops += fl_t[t];
    }
    double kp = 0, vp = 0;
    for (int t = 0; t < HT_COUNT; t++) if (has[t]) { kp += kpos_t[t]; vp += vpos_t[t]; }
    if (kp > span + (has[HT_TOPK] && d->selection == QSR_SEL_PAGED ? 2 * ceil(span / P) : 0))
      kp = span + (has[HT_TOPK] && d->selection == QSR_SEL_PAGED ? 2 * ceil(span / P) : 0);
    if (vp > span) vp = span;
    reads += kp + vp;
  }
  w->flops += flops;
  w->bytes += reads * vb + 2 * H * hd * c->act_bytes + 2 * KV * vb;  /* KV read, q/o, new K/V write */
  w->vec_ops += 5.0 * flops / (4 * hd) + qsr_kv_decode_ops(c->dev, d->kv) * reads * hd +
                n[HT_TOPK] * span;  /* softmax, KV dequant, top-k selection */
}

static void push_attn(struct gctx *c, int phase, double count, const struct qsr_work *w) {
  struct qsr_op *o = push(c, QSR_OP_ATTN, phase, count);
  o->flops = w->flops;
  o->bytes = w->bytes;
  o->vec_ops = w->vec_ops;
  o->mm_peak = qsr_fp16_peak(c->dev);
  o->launches = phase == QSR_PHASE_DECODE ? 2 : 1;  /* decode: split-context kernel + reduction */
}

/* Decode attention for one layer group at context L, batch sequences. */
static void attn_decode(struct gctx *c, double count, int dense_layer, double L) {
  struct qsr_work w = { 0, 0, 0 };
  attn_decode_work(c, dense_layer, L, &w);
  w.flops *= c->d->batch;
  w.bytes *= c->d->batch;
  w.vec_ops *= c->d->batch;
  push_attn(c, QSR_PHASE_DECODE, count, &w);
}

/* Prefill attention work of one sequence in one layer: n new tokens after
** p already in the cache (p = 0: a whole prompt of n tokens). */
static void attn_chunk_work(const struct gctx *c, int dense_layer, double p, double n_tok, struct qsr_work *w) {
  const struct qsr_model *m = c->m;
  const struct qsr_design *d = c->d;
  int n[HT_COUNT];
  head_counts(c, dense_layer, n);
  double hd = m->head_dim, vb = qsr_kv_vec_bytes(d->kv, (uint32_t)m->head_dim);
  double sw = m->sliding_window > 0 ? m->sliding_window : 0;
  double wl = d->window;
  if (sw > 0 && sw < wl) wl = sw;
  double e = p + n_tok;
  double keys_dense = causal_keys(e, sw) - causal_keys(p, sw), keys_loc = causal_keys(e, wl) - causal_keys(p, wl),
         keys_k = causal_keys(e, d->topk) - causal_keys(p, d->topk);
  double fl = n[HT_DENSE] * 4 * hd * keys_dense + n[HT_LOCAL] * 4 * hd * keys_loc;
  if (d->selection == QSR_SEL_EXACT) fl += n[HT_TOPK] * (2 * hd * keys_dense + 2 * hd * keys_k);
  else fl += n[HT_TOPK] * (4 * hd * keys_dense / d->page + 4 * hd * keys_k);
  if (m->family == QSR_FAMILY_DIT) fl *= 2 * n_tok / (n_tok + 1);  /* non-causal: every query sees all keys */
  w->flops += fl;
  /* flash-style: Q, K, V read once, O written once, K/V written to the cache;
  ** the p cached positions' K/V read once */
  double span = sw > 0 && sw < p ? sw : p;
  w->bytes += n_tok * (2 * m->heads * hd * 2 + m->kv_heads * 2 * hd * 2 + m->kv_heads * 2 * vb) +
              span * m->kv_heads * 2 * vb;
  w->vec_ops += 5 * fl / (4 * hd) + (p > 0 ? qsr_kv_decode_ops(c->dev, d->kv) * span * m->kv_heads * 2 * hd : 0);
}

/* Prefill attention for one layer group over a prompt of P tokens. */
static void attn_prefill(struct gctx *c, double count, int dense_layer, double Ptok) {
  struct qsr_work w = { 0, 0, 0 };
  attn_chunk_work(c, dense_layer, 0, Ptok, &w);
  w.flops *= c->d->batch;
  w.bytes *= c->d->batch;
  w.vec_ops *= c->d->batch;
  push_attn(c, QSR_PHASE_PREFILL, count, &w);
}

/* The grouped expert FFN of one MoE layer: A token-expert assignments over
** D distinct experts. */
static void expert_op(struct gctx *c, int phase, double count, double A, double D, int sens) {
  const struct qsr_model *m = c->m;
  const struct qsr_design *d = c->d;
  int gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  double h = m->hidden, fe = c->r->ffn, nmat = gated ? 3 : 2;
  /* expert precision: `experts` override, else the FFN rules */
  struct qsr_wq wu = qsr_wq_resolve(d, QSR_LCLASS_EXPERTS, sens), wg = wu, wd = wu;
  if (!d->layer[QSR_LCLASS_EXPERTS].bits && !sens) {
    wu = qsr_wq_resolve(d, QSR_LCLASS_FFN_UP, 0);
    wg = qsr_wq_resolve(d, QSR_LCLASS_FFN_GATE, 0);
    wd = qsr_wq_resolve(d, QSR_LCLASS_FFN_DOWN, 0);
  }
  double wexp = wq_bytes(wu, fe, h) + wq_bytes(wd, h, fe) + (gated ? wq_bytes(wg, fe, h) : 0);
  double m_e = D > 0 ? A / D : 0;
  struct qsr_op *o = push(c, QSR_OP_EXPERTS, phase, count);
  o->parts = D > 1 ? D : 1;
  o->flops = 2 * A * nmat * h * fe;
  o->wbytes = D * wexp;
  o->bytes = o->wbytes + A * (2 * h + (nmat - 1) * fe * 2) * c->act_bytes;  /* gather/scatter, up/down I/O */
  o->vec_ops = D * (dequant_ops(c, wu, fe, h, m_e) + dequant_ops(c, wd, h, fe, m_e) +
                    (gated ? dequant_ops(c, wg, fe, h, m_e) : 0)) +
               A * fe * (gated ? 6 : 8) + c->act_quant_ops * A * (h + fe);
  o->launches = 3;
}

/* FFN for one layer group, dense or routed. T tokens in this pass. */
static void ffn(struct gctx *c, int phase, double count, double T, int sens) {
  const struct qsr_model *m = c->m;
  const struct qsr_design *d = c->d;
  const struct qsr_routing *r = c->r;
  int gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  double h = m->hidden;
  int body = c->emit & QSR_EMIT_BODY;
  if (!r->on) {
    if (!body) return;
    linear(c, QSR_OP_FFN_UP, phase, count, T, m->ffn, h, qsr_wq_resolve(d, QSR_LCLASS_FFN_UP, sens));
    if (gated) linear(c, QSR_OP_FFN_UP, phase, count, T, m->ffn, h, qsr_wq_resolve(d, QSR_LCLASS_FFN_GATE, sens));
    elementwise(c, QSR_OP_FFN_ACT, phase, count, T * m->ffn, gated ? 3 : 2, gated ? 6 : 8);
    linear(c, QSR_OP_FFN_DOWN, phase, count, T, h, m->ffn, qsr_wq_resolve(d, QSR_LCLASS_FFN_DOWN, sens));
    return;
  }
  int E = r->experts;
  /* router: logits, softmax, top-k, capacity bookkeeping */
  if (body) {
    linear(c, QSR_OP_ROUTER, phase, count, T, E, h, qsr_wq_resolve(d, QSR_LCLASS_ROUTER, sens));
    c->g->ops[c->g->n - 1].vec_ops += T * E * 4;
  }
  double drop = qsr_moe_dropped_frac(E, d->n_popularity ? d->popularity : NULL, d->n_popularity,
                                     r->pk, r->kmax, T, d->capacity);
  double D = qsr_moe_distinct_experts(E, d->n_popularity ? d->popularity : NULL, d->n_popularity,
                                      r->pk, r->kmax, T);
  if (phase == QSR_PHASE_PREFILL) c->g->dropped_frac = drop;
  else c->g->experts_touched = D;
  if (drop > 1e-4) c->g->notes |= QSR_NOTE_DROPPED;
  double A = T * r->k_mean * (1 - drop);  /* token-expert assignments computed */
  if (c->emit & QSR_EMIT_EXPERTS) expert_op(c, phase, count, A, D, sens);
}

/* One decoder or DiT block group. T tokens per pass; L contexts for decode. */
static void block_group(struct gctx *c, int phase, double count, double T, int sens, int dense) {
  const struct qsr_model *m = c->m;
  const struct qsr_design *d = c->d;
  double h = m->hidden, hd = m->head_dim;
  int body = c->emit & QSR_EMIT_BODY;
  if (body && m->family == QSR_FAMILY_DIT && m->dit_adaln)
    linear(c, QSR_OP_ADALN, phase, count, d->batch, 6 * h, h, qsr_wq_resolve(d, QSR_LCLASS_ADALN, sens));
  if (body) {
    elementwise(c, QSR_OP_NORM, phase, 2 * count, T * h, 2, m->family == QSR_FAMILY_DIT ? 8 : 5);
    linear(c, QSR_OP_QKV, phase, count, T, (m->heads + 2.0 * m->kv_heads) * hd, h,
           qsr_wq_resolve(d, QSR_LCLASS_ATTN_QKV, sens));
  }
  if (!(c->emit & QSR_EMIT_ATTN)) {
    /* the caller costs attention per sequence (qsr_step_attn_*) */
  } else if (phase == QSR_PHASE_PREFILL) {
    attn_prefill(c, count, dense, m->family == QSR_FAMILY_DIT ? m->dit_tokens : d->prompt);
  } else {
    double L0 = d->prompt + 1.0, L1 = (double)d->prompt + d->gen, Lm = (L0 + L1) / 2;
    attn_decode(c, count / 6, dense, L0);
    attn_decode(c, count * 4 / 6, dense, Lm);
    attn_decode(c, count / 6, dense, L1);
  }
  if (body) linear(c, QSR_OP_ATTN_OUT, phase, count, T, h, m->heads * hd, qsr_wq_resolve(d, QSR_LCLASS_ATTN_OUT, sens));
  ffn(c, phase, count, T, sens);
  if (body) {
    elementwise(c, QSR_OP_RESIDUAL, phase, 2 * count, T * h, 3, 1);
    c->g->ops[c->g->n - 1].launches = 0;  /* fused into the next norm (fused add + RMSNorm) */
  }
}

int qsr_fp16_peak(const struct qsr_device *dev) {
  const double *pk = dev->peak_tflops;
  return pk[QSR_PEAK_FP16_TENSOR] > 0 ? QSR_PEAK_FP16_TENSOR : pk[QSR_PEAK_FP16] > 0 ? QSR_PEAK_FP16 : QSR_PEAK_FP32;
}

static void pick_peak(struct gctx *c) {
  const double *pk = c->dev->peak_tflops;
  int fp16 = qsr_fp16_peak(c->dev);
  if (fp16 != QSR_PEAK_FP16_TENSOR) c->g->notes |= QSR_NOTE_FP16_NO_TENSOR;
  c->act_bytes = 2;
  c->act_quant_ops = 0;
  c->mm_peak = fp16;
  if (c->d->act == QSR_ACT_INT8) {
    c->act_bytes = 1;
    c->act_quant_ops = 2;
    if (pk[QSR_PEAK_INT8_TENSOR] > 0) c->mm_peak = QSR_PEAK_INT8_TENSOR;
    else { c->g->notes |= QSR_NOTE_INT8_EMULATED; c->act_quant_ops = 4; }
  } else if (c->d->act == QSR_ACT_FP8) {
    c->act_bytes = 1;
    c->act_quant_ops = 2;
    if (pk[QSR_PEAK_FP8_TENSOR] > 0) c->mm_peak = QSR_PEAK_FP8_TENSOR;
    else { c->g->notes |= QSR_NOTE_FP8_EMULATED; c->act_quant_ops = 4; }
  }
  if ((c->d->weights.fmt == QSR_WFMT_BF16) && pk[QSR_PEAK_BF16_TENSOR] <= 0)
    c->g->notes |= QSR_NOTE_BF16_AS_FP16;
}

/* Embedding gather, final norm and head for one pass. */
static void ends(struct gctx *c, int phase, double T) {
  const struct qsr_model *m = c->m;
  const struct qsr_design *d = c->d;
  double h = m->hidden, B = d->batch;
  struct qsr_wq we = qsr_wq_resolve(d, QSR_LCLASS_EMBEDDING, 0);
  if (m->family == QSR_FAMILY_DIT) {
    linear(c, QSR_OP_EMBED, phase, 1, T, h, m->dit_patch_in, we);
    linear(c, QSR_OP_EMBED, phase, 1, B, h, m->dit_freq_dim, we);  /* timestep MLP */
    linear(c, QSR_OP_EMBED, phase, 1, B, h, h, we);
    struct qsr_wq wh = qsr_wq_resolve(d, QSR_LCLASS_LM_HEAD, 0);
    if (m->dit_adaln) linear(c, QSR_OP_ADALN, phase, 1, B, 2 * h, h, wh);
    elementwise(c, QSR_OP_NORM, phase, 1, T * h, 2, 8);
    linear(c, QSR_OP_LM_HEAD, phase, 1, T, m->dit_patch_out, h, wh);
    return;
  }
  if (c->emit & QSR_EMIT_BODY) {
    struct qsr_op *o = push(c, QSR_OP_EMBED, phase, 1);
    o->bytes = T * (wq_bytes(we, 1, h) + h * 2);
    o->vec_ops = T * h * qsr_decode_ops(c->dev, we.fmt, we.bits);
  }
  if (c->emit & QSR_EMIT_HEAD) {
    double rows = c->head_rows;
    elementwise(c, QSR_OP_NORM, phase, 1, rows * h, 2, 5);   /* final norm: last tokens only */
    struct qsr_wq wh = m->tie_embeddings ? we : qsr_wq_resolve(d, QSR_LCLASS_LM_HEAD, 0);
    linear(c, QSR_OP_LM_HEAD, phase, 1, rows, m->vocab, h, wh);
  }
}

static void graph_begin(struct gctx *c, struct qsr_graph *g) {
  g->n = 0;
  g->notes = 0;
  g->dropped_frac = 0;
  g->experts_touched = 0;
  g->k_mean = c->r->k_mean;
  pick_peak(c);
}

/* Layer counts per group [sensitive][dense]. */
static void layer_groups(const struct qsr_model *m, const struct qsr_design *d, int cnt[2][2]) {
  cnt[0][0] = cnt[0][1] = cnt[1][0] = cnt[1][1] = 0;
  for (int l = 0; l < m->layers; l++) cnt[d->sensitive_layer[l] ? 1 : 0][d->dense_layer[l] ? 1 : 0]++;
}

void qsr_graph_build(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                     const struct qsr_routing *r, struct qsr_graph *g) {
  struct gctx c = { dev, m, d, r, g, 2, 0, 0, QSR_EMIT_ALL, d->batch };
  graph_begin(&c, g);
  int cnt[2][2];
  layer_groups(m, d, cnt);
  int nph = m->family == QSR_FAMILY_DIT ? 1 : 2;
  for (int ph = 0; ph < nph; ph++) {
    double T = ph == QSR_PHASE_PREFILL
                   ? (double)d->batch * (m->family == QSR_FAMILY_DIT ? m->dit_tokens : d->prompt)
                   : (double)d->batch;
    ends(&c, ph, T);
    for (int s = 0; s < 2; s++)
      for (int dn = 0; dn < 2; dn++)
        if (cnt[s][dn]) block_group(&c, ph, cnt[s][dn], T, s, dn);
  }
}

void qsr_graph_build_pass(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                          const struct qsr_routing *r, double T, double rows, unsigned emit, struct qsr_graph *g) {
  struct gctx c = { dev, m, d, r, g, 2, 0, 0, emit, rows };
  graph_begin(&c, g);
  QSR_ASSERT(m->family == QSR_FAMILY_DECODER);
  int cnt[2][2];
  layer_groups(m, d, cnt);
  int ph = T > rows ? QSR_PHASE_PREFILL : QSR_PHASE_DECODE;
  ends(&c, ph, T);
  if (emit & (QSR_EMIT_BODY | QSR_EMIT_ATTN | QSR_EMIT_EXPERTS))
    for (int s = 0; s < 2; s++)
      for (int dn = 0; dn < 2; dn++)
        if (cnt[s][dn]) block_group(&c, ph, cnt[s][dn], T, s, dn);
}

void qsr_graph_attn_work(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                         int dense_layer, double p, double n, struct qsr_work *w) {
  struct qsr_graph g;  /* pick_peak writes notes only */
  struct qsr_routing r = { 0 };
  struct gctx c = { dev, m, d, &r, &g, 2, 0, 0, 0, 0 };
  pick_peak(&c);
  if (n <= 0) attn_decode_work(&c, dense_layer, p, w);
  else attn_chunk_work(&c, dense_layer, p, n, w);
}

void qsr_graph_expert_op(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                         const struct qsr_routing *r, int sens, double A, double D, struct qsr_op *out) {
  struct qsr_graph g;
  struct gctx c = { dev, m, d, r, &g, 2, 0, 0, QSR_EMIT_EXPERTS, 0 };
  graph_begin(&c, &g);
  expert_op(&c, QSR_PHASE_DECODE, 1, A, D, sens);
  *out = g.ops[0];
}

/* Every weight tensor of the model under the design, grouped. */
void qsr_weights_each(const struct qsr_model *m, const struct qsr_design *d, const struct qsr_routing *r,
                      qsr_wtensor_fn fn, void *ud) {
  double h = m->hidden, hd = m->head_dim;
  int gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  int nsens = 0;
  for (int l = 0; l < m->layers; l++) nsens += d->sensitive_layer[l] ? 1 : 0;
  struct qsr_wtensor t;
  struct qsr_wq we = qsr_wq_resolve(d, QSR_LCLASS_EMBEDDING, 0);
  if (m->family == QSR_FAMILY_DIT) {
    t = (struct qsr_wtensor){ QSR_LCLASS_EMBEDDING, we, h, m->dit_patch_in, 1, 0 }; fn(&t, ud);
    t = (struct qsr_wtensor){ QSR_LCLASS_EMBEDDING, we, h, m->dit_freq_dim, 1, 0 }; fn(&t, ud);
    t = (struct qsr_wtensor){ QSR_LCLASS_EMBEDDING, we, h, h, 1, 0 }; fn(&t, ud);
    t = (struct qsr_wtensor){ QSR_LCLASS_EMBEDDING, we, m->dit_classes, h, 1, 0 }; fn(&t, ud);
    struct qsr_wq wh = qsr_wq_resolve(d, QSR_LCLASS_LM_HEAD, 0);
    t = (struct qsr_wtensor){ QSR_LCLASS_LM_HEAD, wh, m->dit_patch_out, h, 1, 0 }; fn(&t, ud);
    if (m->dit_adaln) { t = (struct qsr_wtensor){ QSR_LCLASS_LM_HEAD, wh, 2 * h, h, 1, 0 }; fn(&t, ud); }
  } else {
    t = (struct qsr_wtensor){ QSR_LCLASS_EMBEDDING, we, m->vocab, h, 1, 0 }; fn(&t, ud);
    if (!m->tie_embeddings) {
      t = (struct qsr_wtensor){ QSR_LCLASS_LM_HEAD, qsr_wq_resolve(d, QSR_LCLASS_LM_HEAD, 0), m->vocab, h, 1, 0 };
      fn(&t, ud);
    }
  }
  /* norms: 2 per layer + final, weight (+ bias for LayerNorm) */
  t = (struct qsr_wtensor){ QSR_LCLASS_NORMS, qsr_wq_resolve(d, QSR_LCLASS_NORMS, 0), 1, h,
                            (2.0 * m->layers + 1) * (m->norm == QSR_NORM_LAYER ? 2 : 1), 0 };
  if (m->family == QSR_FAMILY_DIT) t.count = 0;  /* adaLN norms carry no affine weights */
  fn(&t, ud);
  for (int s = 0; s < 2; s++) {
    double n = s ? nsens : m->layers - nsens;
    if (n <= 0) continue;
#define W(cls, rows, cols, cnt)                                                          \
  do {                                                                                   \
    t = (struct qsr_wtensor){ cls, qsr_wq_resolve(d, cls, s), rows, cols, (cnt) * n, s }; \
    fn(&t, ud);                                                                          \
  } while (0)
    W(QSR_LCLASS_ATTN_QKV, (m->heads + 2.0 * m->kv_heads) * hd, h, 1);
    W(QSR_LCLASS_ATTN_OUT, h, m->heads * hd, 1);
    if (m->family == QSR_FAMILY_DIT && m->dit_adaln) W(QSR_LCLASS_ADALN, 6 * h, h, 1);
    if (!r->on) {
      W(QSR_LCLASS_FFN_UP, m->ffn, h, 1);
      if (gated) W(QSR_LCLASS_FFN_GATE, m->ffn, h, 1);
      W(QSR_LCLASS_FFN_DOWN, h, m->ffn, 1);
    } else {
      W(QSR_LCLASS_ROUTER, r->experts, h, 1);
      if (d->layer[QSR_LCLASS_EXPERTS].bits || s) {
        W(QSR_LCLASS_EXPERTS, r->ffn, h, r->experts * (gated ? 2.0 : 1.0));
        W(QSR_LCLASS_EXPERTS, h, r->ffn, r->experts);
      } else {  /* experts follow the FFN class rules */
        W(QSR_LCLASS_FFN_UP, r->ffn, h, r->experts);
        if (gated) W(QSR_LCLASS_FFN_GATE, r->ffn, h, r->experts);
        W(QSR_LCLASS_FFN_DOWN, h, r->ffn, r->experts);
      }
    }
#undef W
  }
}
