/*
** quality.c -- the quality-loss proxy. NOT a measurement: an additive
** estimate of the relative perplexity increase from a sensitivity profile
** (configs/quality/NAME.yaml) whose numbers come from published PTQ results.
**
**   loss = sum over weight classes c of share_c * pen(fmt_c, bits_c)
**                                        * group_factor(g_c) * sym_factor
**          (each class weighted by the share of its parameters at that
**           precision, so sensitive layers at 8 bits lower it)
**        + act[activations] + kv[kv_cache]
**        + local * f_local * f_sparse_layers * (1 - min(1, window / context))
**        + topk  * f_topk  * f_sparse_layers * (1 - min(1, k / context)) (+ paged)
**        + drop * dropped_frac + moefy * (1 - k/E) / 0.75 + dynamic
** Experts inherit the FFN classes' shares (they are the FFN).
*/
#include "costmodel/cm_int.h"
#include "kernels/qformat.h"

#include <math.h>

static double group_factor(const struct qsr_quality *q, int g) {
  switch (g) {
  case 0: return q->group_factor[0];
  case 32: return q->group_factor[1];
  case 64: return q->group_factor[2];
  case 128: return q->group_factor[3];
  case 256: return q->group_factor[4];
  default: return g < 128 ? q->group_factor[2] : q->group_factor[4];
  }
}

static double pen(const struct qsr_quality *q, struct qsr_wq wq) {
  if (wq.fmt == QSR_WFMT_FP16 || wq.fmt == QSR_WFMT_BF16) return 0;
  int f = wq.fmt == QSR_WFMT_INT_SYM ? QSR_WFMT_INT : wq.fmt;
  double p = wq.bits >= 0 && wq.bits <= 16 ? q->weights[f][wq.bits] : 0;
  if (p < 0) p = 0;
  if (wq.fmt != QSR_WFMT_FP8) p *= group_factor(q, wq.group);
  if (wq.fmt == QSR_WFMT_INT_SYM) p *= q->symmetric_factor;
  return p;
}

struct qacc {
  const struct qsr_quality *q;
  double params[QSR_LCLASS_COUNT];   /* per sensitivity class */
  double loss_x_params[QSR_LCLASS_COUNT];
};

static void qacc_fn(const struct qsr_wtensor *t, void *ud) {
  struct qacc *a = ud;
  int c = t->lclass;
  if (c == QSR_LCLASS_NORMS) return;
  double p = t->rows * t->cols * t->count;
  a->params[c] += p;
  a->loss_x_params[c] += p * pen(a->q, t->wq);
}

double qsr_quality_loss(const struct qsr_quality *q, const struct qsr_model *m, const struct qsr_design *d,
                        const struct qsr_routing *r, double dropped) {
  struct qacc a = { .q = q };
  qsr_weights_each(m, d, r, qacc_fn, &a);
  double loss = 0;
  for (int c = 0; c < QSR_LCLASS_COUNT; c++) {
    if (a.params[c] <= 0) continue;
    double share = q->class_share[c];
    if (c == QSR_LCLASS_EXPERTS && share <= 0)  /* experts are the FFN */
      share = q->class_share[QSR_LCLASS_FFN_UP] + q->class_share[QSR_LCLASS_FFN_DOWN] +
              (m->ffn_act == QSR_FFNACT_SWIGLU ? q->class_share[QSR_LCLASS_FFN_GATE] : 0);
    loss += share * a.loss_x_params[c] / a.params[c];
  }
  loss += q->act[d->act] + (d->kv > 0 && d->kv < 3 ? q->kv[d->kv] : 0);
  if (m->family == QSR_FAMILY_DECODER) {
    double ctx = (double)d->prompt + d->gen;
    int sparse_layers = 0;
    for (int l = 0; l < m->layers; l++) sparse_layers += d->dense_layer[l] ? 0 : 1;
    double fl = (double)sparse_layers / m->layers;
    double wcov = d->window / ctx, kcov = d->topk / ctx;
    loss += q->att_local * d->att_local * fl * (1 - (wcov < 1 ? wcov : 1));
    loss += q->att_topk * d->att_topk * fl * (1 - (kcov < 1 ? kcov : 1));
    if (d->selection == QSR_SEL_PAGED) loss += q->att_paged * d->att_topk * fl;
  }
  if (r->on) {
    loss += q->route_drop * dropped;
    if (d->route == QSR_ROUTE_MOEFY) loss += q->route_moefy * (1 - r->k_mean / r->experts) / 0.75;
    if (d->dynamic) loss += q->route_dynamic;
  }
  return loss;
}
