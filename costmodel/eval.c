/*
** eval.c -- cost the op graph on a device; memory, offload, energy, result.
**
** Per op instance (Hockney-style efficiency, see README "cost model"):
**   compute_ms  = parts * (flops/parts + f_half) / (peak_mm * eff.compute)
**               + vec_ops / (peak_vec * eff.compute)
**   memory_ms   = parts * (bytes/parts + b_half) / (bw * eff.memory)
**   time        = max(compute_ms, memory_ms) + launches * launch_us
** and the bound is whichever term is largest.
*/
#include "costmodel/calibrate.h"
#include "costmodel/cm_int.h"
#include "kernels/qformat_traits.h"
#include "kernels/qformat.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct clock {
  double cscale, bscale, power_w;
};

int qsr_mode_scales(const struct qsr_device *dev, const struct qsr_design *d, double *cscale, double *bscale,
                    double *power_w, char **err) {
  *cscale = *bscale = 1;
  *power_w = dev->tdp_w;
  int mi = dev->default_mode;
  if (d->power_mode[0]) {
    mi = -1;
    for (int i = 0; i < dev->n_modes; i++)
      if (!strcmp(dev->modes[i].name, d->power_mode)) mi = i;
    if (mi < 0)
      return qsr_errf(err, QSR_ERR_CONFIG, "runtime.power_mode: '%s' is not a power mode of %s%s",
                      d->power_mode, dev->name, dev->n_modes ? "" : " (it has none)");
  }
  if (mi >= 0) {
    *cscale = dev->modes[mi].compute_scale;
    *bscale = dev->modes[mi].bw_scale;
    if (dev->modes[mi].power_w > 0) *power_w = dev->modes[mi].power_w;
  }
  return QSR_OK;
}

struct opcost { double ms, c, m, o, util; int bound; };

/* The roofline of one op instance of class cls (see the file comment). */
static void roofline(const struct qsr_device *dev, const struct clock *k, int cls, double flops, double vec_ops,
                     double bytes, int mm_peak, double parts, int launches, struct opcost *oc) {
  struct qsr_eff e = dev->eff[cls];
  double peak = dev->peak_tflops[mm_peak] * 1e9 * k->cscale;              /* flop per ms */
  double vpeak = (dev->peak_tflops[QSR_PEAK_FP16] > 0 ? dev->peak_tflops[QSR_PEAK_FP16]
                                                       : dev->peak_tflops[QSR_PEAK_FP32]) * 1e9 * k->cscale;
  double bw = dev->bw_gbps * 1e6 * k->bscale;                               /* bytes per ms */
  if (parts < 1) parts = 1;
  double c = 0, m = 0;
  if (flops > 0) c += parts * (flops / parts + e.compute_half_gflop * 1e9) / (peak * e.compute);
  if (vec_ops > 0) c += vec_ops / (vpeak * e.compute);
  if (bytes > 0) m = parts * (bytes / parts + e.memory_half_mb * 1e6) / (bw * e.memory);
  double o = launches * dev->launch_us * 1e-3;
  oc->c = c;
  oc->m = m;
  oc->o = o;
  oc->ms = (c > m ? c : m) + o;
  oc->bound = c >= m ? QSR_BOUND_COMPUTE : QSR_BOUND_MEMORY;
  if (o > (c > m ? c : m)) oc->bound = QSR_BOUND_OVERHEAD;
  /* share of the device's roofline in use, for the power model */
  double u = 0;
  if (oc->ms > 0) {
    double uc = (flops / peak + vec_ops / vpeak) / oc->ms, um = bytes / bw / oc->ms;
    u = uc > um ? uc : um;
  }
  oc->util = u > 1 ? 1 : u;
}

static void cost_op(const struct qsr_device *dev, const struct clock *k, const struct qsr_op *op, struct opcost *oc) {
  int cls = qsr_op_class(op->kind);
  if (cls == QSR_OPCLASS_GEMM && op->gemv) cls = QSR_OPCLASS_GEMV;
  roofline(dev, k, cls, op->flops, op->vec_ops, op->bytes, op->mm_peak, op->parts, op->launches, oc);
}

double qsr_op_ms(const struct qsr_device *dev, double cscale, double bscale, const struct qsr_op *op) {
  struct clock k = { cscale, bscale, dev->tdp_w };
  struct opcost oc;
  cost_op(dev, &k, op, &oc);
  return oc.ms;
}

_Static_assert(QSR_DECODE_FMTS == QSR_WFMT_COUNT, "struct qsr_device decode_ops rows");
_Static_assert(QSR_DECODE_KV == QSR_KVFMT_COUNT, "struct qsr_device kv_decode_ops");

double qsr_decode_ops(const struct qsr_device *dev, int wfmt, int bits) {
  QSR_ASSERT(wfmt >= 0 && wfmt < QSR_WFMT_COUNT);
  if (dev && bits > 0 && bits < QSR_DECODE_BITS && dev->decode_ops[wfmt][bits] > 0) return dev->decode_ops[wfmt][bits];
  return qsr_wfmt_tab[wfmt].dequant_ops;
}

double qsr_kv_decode_ops(const struct qsr_device *dev, int kvfmt) {
  QSR_ASSERT(kvfmt >= 0 && kvfmt < QSR_KVFMT_COUNT);
  if (dev && dev->kv_decode_ops[kvfmt] > 0) return dev->kv_decode_ops[kvfmt];
  return kvfmt == QSR_KVFMT_FP16 ? 0 : 2;
}

double qsr_kop_ms(const struct qsr_device *dev, const struct qsr_kop *op, int *bound) {
  struct clock k = { 1, 1, dev->tdp_w };
  double vec = op->vec_ops;
  if (op->w_decodes > 0) vec += op->w_decodes * qsr_decode_ops(dev, op->wfmt, op->wbits);
  if (op->kv_decodes > 0) vec += op->kv_decodes * qsr_kv_decode_ops(dev, op->kvfmt);
  struct opcost oc;
  roofline(dev, &k, op->cls, op->flops, vec, op->bytes, op->mm_peak, op->parts, op->launches, &oc);
  if (bound) *bound = oc.bound;
  return oc.ms;
}

struct wsum { double bytes, params, bits_x_params, code_params; };

static void wsum_fn(const struct qsr_wtensor *t, void *ud) {
  struct wsum *s = ud;
  double p = t->rows * t->cols * t->count;
  s->bytes += qsr_wtensor_bytes(t) * t->count;
  s->params += p;
  if (t->lclass != QSR_LCLASS_NORMS) {
    s->bits_x_params += t->wq.bits * p;
    s->code_params += p;
  }
}

struct psum { double total, active; const struct qsr_routing *r; int bias; };

static void psum_fn(const struct qsr_wtensor *t, void *ud) {
  struct psum *s = ud;
  double p = t->rows * t->cols * t->count;
  if (s->bias && t->lclass != QSR_LCLASS_NORMS) p += t->rows * t->count;
  s->total += p;
  int expert = s->r->on && (t->lclass == QSR_LCLASS_EXPERTS || t->lclass == QSR_LCLASS_FFN_UP ||
                            t->lclass == QSR_LCLASS_FFN_GATE || t->lclass == QSR_LCLASS_FFN_DOWN);
  s->active += expert ? p * s->r->k_mean / s->r->experts : p;
}

double qsr_model_params(const struct qsr_model *m, double *active) {
  struct qsr_design d;
  struct qsr_routing r;
  qsr_design_baseline(m, &d);
  qsr_routing_resolve(m, &d, &r);
  struct psum s = { 0, 0, &r, m->bias };
  qsr_weights_each(m, &d, &r, psum_fn, &s);
  if (active) *active = s.active;
  return s.total;
}

/* KV-cache bytes for batch x context, per-head types respected. */
double qsr_kv_bytes(const struct qsr_model *m, const struct qsr_design *d, double ctx, double batch, unsigned *notes) {
  double vb = qsr_kv_vec_bytes(d->kv, (uint32_t)m->head_dim);
  double total = 0;
  int H = m->heads, KV = m->kv_heads, grp = H / KV;
  double full = m->sliding_window > 0 && m->sliding_window < ctx ? m->sliding_window : ctx;
  double win = d->window < full ? d->window : full;
  int ndense = 0;  /* layers with all heads dense, and the rest: two kinds of layer */
  for (int l = 0; l < m->layers; l++) ndense += d->dense_layer[l] ? 1 : 0;
  for (int dense = 0; dense < 2; dense++) {
    int nlayers = dense ? ndense : m->layers - ndense;
    if (!nlayers) continue;
    int n[3];
    qsr_head_counts(m, d, dense, n);
    int nd = n[0], nt = n[1];
    double layer = 0;
    for (int kv = 0; kv < KV; kv++) {
      int first = kv * grp;
      int all_local = first >= nd + nt;   /* heads ordered dense, top-k, local */
      double len = all_local ? win : full;
      if (all_local && win < full) *notes |= QSR_NOTE_WINDOW_CACHE;
      int paged = d->selection == QSR_SEL_PAGED && first + grp > nd && first < nd + nt;
      layer += 2 * len * vb + (paged ? 2 * ceil(full / d->page) * vb : 0);
    }
    total += layer * nlayers;
  }
  return total * batch;
}

/* Activations and workspace at the widest point of a pass of T tokens
** (flash attention, no score matrix), plus fp32 logits of `rows` rows. */
double qsr_act_bytes(const struct qsr_model *m, const struct qsr_routing *r, double T, double rows) {
  double h = m->hidden, f = m->ffn;
  int gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  if (r->on) f = r->ffn * r->kmax;
  double per_tok = 2.0 * (3 * h + (m->heads + 2.0 * m->kv_heads) * m->head_dim + (gated ? 2 : 1) * f);
  double logits = m->family == QSR_FAMILY_DIT ? 0 : 4.0 * rows * m->vocab;
  return T * per_tok + logits;
}

int qsr_eval(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
             const struct qsr_quality *q, struct qsr_result *res, char **err) {
  int rc = qsr_design_check(m, d, err);
  if (rc) return rc;
  struct clock clk;
  if ((rc = qsr_mode_scales(dev, d, &clk.cscale, &clk.bscale, &clk.power_w, err))) return rc;
  memset(res, 0, sizeof *res);
  res->feasible = 1;
  res->offload_tier = -1;

  struct qsr_routing r;
  qsr_routing_resolve(m, d, &r);
  struct qsr_graph g;
  qsr_graph_build(dev, m, d, &r, &g);
  res->notes = g.notes;
  if (r.on) {
    res->experts_per_token = r.k_mean;
    res->experts_touched = g.experts_touched;
    res->dropped_frac = g.dropped_frac;
    if (d->dynamic) res->notes |= QSR_NOTE_DYNAMIC_K;
    if (d->route == QSR_ROUTE_MOEFY) res->notes |= QSR_NOTE_MOEFY;
  }
  int dit = m->family == QSR_FAMILY_DIT;
  double ctx = dit ? m->dit_tokens : (double)d->prompt + d->gen;
  if (!dit && ctx > m->max_context) res->notes |= QSR_NOTE_CONTEXT_OVER;

  /* memory */
  struct wsum ws = { 0, 0, 0, 0 };
  qsr_weights_each(m, d, &r, wsum_fn, &ws);
  struct psum ps = { 0, 0, &r, m->bias };
  qsr_weights_each(m, d, &r, psum_fn, &ps);
  res->params_b = ps.total / 1e9;
  res->active_params_b = ps.active / 1e9;
  res->avg_weight_bits = ws.code_params > 0 ? ws.bits_x_params / ws.code_params : 0;
  double kvb = dit ? 0 : qsr_kv_bytes(m, d, ctx, d->batch, &res->notes);
  double actb = qsr_act_bytes(m, &r, (double)d->batch * (dit ? m->dit_tokens : d->prompt), d->batch);
  res->mem_weights_mb = ws.bytes / 1e6;
  res->mem_kv_mb = kvb / 1e6;
  res->mem_act_mb = actb / 1e6;
  res->mem_peak_mb = (ws.bytes + kvb + actb) / 1e6;
  double usable = dev->usable_gb * 1e9;
  double peak = ws.bytes + kvb + actb;
  res->fits = peak <= usable;
  double overflow = 0, tier_bw = 0;
  if (!res->fits) {
    overflow = peak - usable;
    if (overflow > ws.bytes) {
      res->feasible = 0;
      snprintf(res->why, sizeof res->why,
               "KV cache (%.0f MB) and activations (%.0f MB) alone exceed the %.0f MB usable on %s",
               kvb / 1e6, actb / 1e6, usable / 1e6, dev->name);
    } else {
      for (int t = 0; t < QSR_TIER_COUNT; t++) {
        const struct qsr_tierspec *ts = &dev->offload[t];
        if (ts->bw_gbps > 0 && ts->capacity_gb * 1e9 >= overflow && ts->bw_gbps > tier_bw) {
          tier_bw = ts->bw_gbps;
          res->offload_tier = t;
        }
      }
      if (res->offload_tier < 0) {
        res->feasible = 0;
        snprintf(res->why, sizeof res->why, "needs %.0f MB, %.0f MB usable on %s, and no offload tier holds the rest",
                 peak / 1e6, usable / 1e6, dev->name);
      } else {
        res->offload_mb = overflow / 1e6;
        res->notes |= QSR_NOTE_OFFLOAD;
      }
    }
  }

  /* time */
  double phase_ms[QSR_PHASE_COUNT] = { 0, 0 }, phase_wbytes[QSR_PHASE_COUNT] = { 0, 0 };
  double util_ms = 0, busy_ms = 0;
  res->n_ops = 0;
  for (int i = 0; i < g.n; i++) {
    const struct qsr_op *op = &g.ops[i];
    struct opcost oc;
    cost_op(dev, &clk, op, &oc);
    double ms = oc.ms * op->count;
    phase_ms[op->phase] += ms;
    phase_wbytes[op->phase] += op->wbytes * op->count;
    util_ms += oc.util * ms;
    busy_ms += ms;
    struct qsr_opcost *b = NULL;
    for (int j = 0; j < res->n_ops; j++)
      if (res->ops[j].kind == op->kind && res->ops[j].phase == op->phase) b = &res->ops[j];
    if (!b) {
      QSR_ASSERT(res->n_ops < QSR_MAX_BREAKDOWN);
      b = &res->ops[res->n_ops++];
      memset(b, 0, sizeof *b);
      b->kind = op->kind;
      b->phase = op->phase;
    }
    b->ms += ms;
    b->compute_ms += oc.c * op->count;
    b->memory_ms += oc.m * op->count;
    b->overhead_ms += oc.o * op->count;
    b->gbytes += op->bytes * op->count / 1e9;
    b->gflop += (op->flops + op->vec_ops) * op->count / 1e9;
  }
  if (res->offload_tier >= 0) {  /* stream the non-resident share of each pass's weights */
    for (int ph = 0; ph < (dit ? 1 : 2); ph++) {
      double frac = ws.bytes > 0 ? overflow / ws.bytes : 0;
      double sb = frac * phase_wbytes[ph];
      double ms = sb / (tier_bw * 1e6);
      QSR_ASSERT(res->n_ops < QSR_MAX_BREAKDOWN);
      struct qsr_opcost *b = &res->ops[res->n_ops++];
      memset(b, 0, sizeof *b);
      b->kind = QSR_OP_OFFLOAD;
      b->phase = ph;
      b->ms = b->memory_ms = ms;
      b->gbytes = sb / 1e9;
      phase_ms[ph] += ms;
      busy_ms += ms;
      util_ms += 0.1 * ms;  /* the device mostly waits */
    }
  }
  for (int j = 0; j < res->n_ops; j++) {
    struct qsr_opcost *b = &res->ops[j];
    double mx = b->compute_ms > b->memory_ms ? b->compute_ms : b->memory_ms;
    b->bound = b->compute_ms >= b->memory_ms ? QSR_BOUND_COMPUTE : QSR_BOUND_MEMORY;
    if (b->overhead_ms > mx) b->bound = QSR_BOUND_OVERHEAD;
  }
  double sync = dev->sync_us * 1e-3;
  res->prefill_ms = phase_ms[QSR_PHASE_PREFILL] + sync;
  if (dit) {
    res->e2e_ms = res->prefill_ms * d->steps;
    res->ttft_ms = res->e2e_ms;
    res->tpot_ms = 0;
    res->images_per_s = d->batch / (res->e2e_ms / 1e3);
    res->tokens_per_s = (double)d->batch * m->dit_tokens * d->steps / (res->e2e_ms / 1e3);
  } else {
    res->tpot_ms = phase_ms[QSR_PHASE_DECODE] + sync;
    res->ttft_ms = res->prefill_ms + res->tpot_ms;
    res->e2e_ms = res->prefill_ms + res->tpot_ms * d->gen;
    res->tokens_per_s = (double)d->batch * d->gen / (res->e2e_ms / 1e3);
  }
  /* energy: board power = idle + (budget - idle) * roofline utilisation */
  double U = busy_ms > 0 ? util_ms / busy_ms : 0;
  res->power_w = dev->idle_w + (clk.power_w - dev->idle_w) * U;
  double tokens = dit ? (double)d->batch : (double)d->batch * d->gen;
  res->energy_j_per_token = res->power_w * res->e2e_ms / 1e3 / tokens;
  res->quality_loss = q ? qsr_quality_loss(q, m, d, &r, res->dropped_frac) : 0;
  return QSR_OK;
}
