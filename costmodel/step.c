/*
** step.c -- one serving iteration, costed in parts (see costmodel.h).
**
** The parts reuse the graph builder and the roofline of qsr_eval, so a
** lone sequence's prefill pass and decode steps cost exactly what
** `qsr predict` says; the simulator only sums them differently: attention
** work over the sequences of a batch before one roofline (one batched
** kernel), experts per layer from the experts a batch really touches.
*/
#include "costmodel/cm_int.h"
#include "util/err.h"

#include <string.h>

static void wbytes_fn(const struct qsr_wtensor *t, void *ud) {
  *(double *)ud += qsr_wtensor_bytes(t) * t->count;
}

int qsr_step_init(struct qsr_step *s, const struct qsr_device *dev, const struct qsr_model *m,
                  const struct qsr_design *d, char **err) {
  int rc;
  double power_w;
  memset(s, 0, sizeof *s);
  if (m->family != QSR_FAMILY_DECODER)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: the serving simulator runs decoder models only (this is a %s)", m->name,
                    "diffusion transformer");
  if ((rc = qsr_design_check(m, d, err))) return rc;
  if ((rc = qsr_mode_scales(dev, d, &s->cscale, &s->bscale, &power_w, err))) return rc;
  s->dev = dev;
  s->m = m;
  s->d = d;
  qsr_routing_resolve(m, d, &s->r);
  int gi[2][2] = { { -1, -1 }, { -1, -1 } };
  for (int sens = 0; sens < 2; sens++)        /* the graph builder's group order */
    for (int dn = 0; dn < 2; dn++)
      for (int l = 0; l < m->layers; l++)
        if ((d->sensitive_layer[l] ? 1 : 0) == sens && (d->dense_layer[l] ? 1 : 0) == dn) {
          if (gi[sens][dn] < 0) {
            QSR_ASSERT(s->n_groups < QSR_STEP_GROUPS);
            gi[sens][dn] = s->n_groups;
            s->g_sens[s->n_groups] = sens;
            s->g_dense[s->n_groups] = dn;
            s->n_groups++;
          }
          s->g_layers[gi[sens][dn]]++;
          s->layer_group[l] = (int8_t)gi[sens][dn];
        }
  qsr_weights_each(m, d, &s->r, wbytes_fn, &s->weight_bytes);
  if (s->r.on)
    for (int g = 0; g < s->n_groups; g++) {
      struct qsr_op op;
      qsr_graph_expert_op(dev, m, d, &s->r, s->g_sens[g], 0, 1, &op);
      s->expert_bytes[g] = op.wbytes;
    }
  s->sync_ms = dev->sync_us * 1e-3;
  return QSR_OK;
}

static double graph_ms(const struct qsr_step *s, double cscale, double bscale, const struct qsr_graph *g) {
  double ms = 0;
  for (int i = 0; i < g->n; i++)
    ms += g->ops[i].count * qsr_op_ms(s->dev, s->cscale * cscale, s->bscale * bscale, &g->ops[i]);
  return ms;
}

double qsr_step_body_ms(const struct qsr_step *s, double cscale, double bscale, double T) {
  struct qsr_graph g;
  qsr_graph_build_pass(s->dev, s->m, s->d, &s->r, T, 0, QSR_EMIT_BODY, &g);
  return graph_ms(s, cscale, bscale, &g);
}

double qsr_step_head_ms(const struct qsr_step *s, double cscale, double bscale, double rows) {
  if (rows <= 0) return 0;
  struct qsr_graph g;
  qsr_graph_build_pass(s->dev, s->m, s->d, &s->r, rows, rows, QSR_EMIT_HEAD, &g);
  return graph_ms(s, cscale, bscale, &g);
}

void qsr_step_attn_work(const struct qsr_step *s, int g, double p, double n, struct qsr_work *w) {
  QSR_ASSERT(g >= 0 && g < s->n_groups);
  qsr_graph_attn_work(s->dev, s->m, s->d, s->g_dense[g], p, n, w);
}

double qsr_step_attn_ms(const struct qsr_step *s, double cscale, double bscale, int g, const struct qsr_work *w,
                        int decode) {
  QSR_ASSERT(g >= 0 && g < s->n_groups);
  if (w->flops <= 0 && w->bytes <= 0) return 0;
  struct qsr_op op;
  memset(&op, 0, sizeof op);
  op.kind = QSR_OP_ATTN;
  op.phase = decode ? QSR_PHASE_DECODE : QSR_PHASE_PREFILL;
  op.count = s->g_layers[g];
  op.flops = w->flops;
  op.vec_ops = w->vec_ops;
  op.bytes = w->bytes;
  op.mm_peak = qsr_fp16_peak(s->dev);
  op.parts = 1;
  op.launches = decode ? 2 : 1;
  return op.count * qsr_op_ms(s->dev, s->cscale * cscale, s->bscale * bscale, &op);
}

double qsr_step_experts_ms(const struct qsr_step *s, double cscale, double bscale, int g, double A, double D) {
  QSR_ASSERT(g >= 0 && g < s->n_groups);
  if (!s->r.on || A <= 0) return 0;
  struct qsr_op op;
  qsr_graph_expert_op(s->dev, s->m, s->d, &s->r, s->g_sens[g], A, D, &op);
  return qsr_op_ms(s->dev, s->cscale * cscale, s->bscale * bscale, &op);
}

void qsr_step_experts_expect(const struct qsr_step *s, double T, double *A, double *D) {
  const struct qsr_design *d = s->d;
  const struct qsr_routing *r = &s->r;
  const double *pop = d->n_popularity ? d->popularity : NULL;
  double drop = qsr_moe_dropped_frac(r->experts, pop, d->n_popularity, r->pk, r->kmax, T, d->capacity);
  *D = qsr_moe_distinct_experts(r->experts, pop, d->n_popularity, r->pk, r->kmax, T);
  *A = T * r->k_mean * (1 - drop);
}

double qsr_step_kv_bytes(const struct qsr_step *s, double ctx) {
  unsigned notes = 0;
  return qsr_kv_bytes(s->m, s->d, ctx, 1, &notes);
}

double qsr_step_act_bytes(const struct qsr_step *s, double T, double rows) {
  return qsr_act_bytes(s->m, &s->r, T, rows);
}
