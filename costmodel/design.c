/*
** design.c -- names, the baseline design, design checks, default
** efficiencies, and the resolution of per-class precision and routing.
*/
#include "costmodel/cm_int.h"
#include "kernels/qformat.h"
#include "util/err.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

const char *const qsr_lclass_names[QSR_LCLASS_COUNT] = {
  [QSR_LCLASS_EMBEDDING] = "embedding", [QSR_LCLASS_ATTN_QKV] = "attn_qkv",
  [QSR_LCLASS_ATTN_OUT] = "attn_out",   [QSR_LCLASS_FFN_UP] = "ffn_up",
  [QSR_LCLASS_FFN_GATE] = "ffn_gate",   [QSR_LCLASS_FFN_DOWN] = "ffn_down",
  [QSR_LCLASS_EXPERTS] = "experts",     [QSR_LCLASS_ROUTER] = "router",
  [QSR_LCLASS_LM_HEAD] = "lm_head",     [QSR_LCLASS_ADALN] = "adaln",
  [QSR_LCLASS_NORMS] = "norms",
};

static const struct { const char *name; int cls; } op_tab[QSR_OP_COUNT] = {
#define QSR_OP(K, NAME, CLASS) [QSR_OP_##K] = { NAME, CLASS },
#include "costmodel/ops.def"
#undef QSR_OP
};

const char *qsr_op_name(int kind) { return kind >= 0 && kind < QSR_OP_COUNT ? op_tab[kind].name : "?"; }
int qsr_op_class(int kind) { QSR_ASSERT(kind >= 0 && kind < QSR_OP_COUNT); return op_tab[kind].cls; }

const char *qsr_bound_name(int b) {
  static const char *const t[QSR_BOUND_COUNT] = { "compute", "memory", "overhead" };
  return b >= 0 && b < QSR_BOUND_COUNT ? t[b] : "?";
}
const char *qsr_phase_name(int p) {
  static const char *const t[QSR_PHASE_COUNT] = { "prefill", "decode" };
  return p >= 0 && p < QSR_PHASE_COUNT ? t[p] : "?";
}
const char *qsr_opclass_name(int c) {
  static const char *const t[QSR_OPCLASS_COUNT] = { "gemm", "attention", "moe", "elementwise", "embedding", "gemv", "memcpy" };
  return c >= 0 && c < QSR_OPCLASS_COUNT ? t[c] : "?";
}
const char *qsr_peak_name(int p) {
  static const char *const t[QSR_PEAK_COUNT] = { "fp32", "fp16", "fp16_tensor", "bf16_tensor",
                                                  "int8_tensor", "fp8_tensor", "int4_tensor" };
  return p >= 0 && p < QSR_PEAK_COUNT ? t[p] : "?";
}

const char *qsr_note_text(unsigned bit) {
  switch (bit) {
  case QSR_NOTE_FP8_EMULATED: return "fp8 tensor cores absent: fp8 emulated through the fp16 path (convert cost added)";
  case QSR_NOTE_INT8_EMULATED: return "int8 matrix units absent: int8 emulated through the fp16 path (convert cost added)";
  case QSR_NOTE_FP16_NO_TENSOR: return "no fp16 matrix unit: GEMMs run on the vector fp16/fp32 peak";
  case QSR_NOTE_OFFLOAD: return "weights do not fit: the rest streams from a lower tier every pass (LLM-in-a-flash)";
  case QSR_NOTE_DROPPED: return "expert capacity drops tokens (see dropped_frac)";
  case QSR_NOTE_CONTEXT_OVER: return "prompt + gen exceeds the model's max_context";
  case QSR_NOTE_DYNAMIC_K: return "dynamic routing: k drawn per token from the complexity distribution";
  case QSR_NOTE_WINDOW_CACHE: return "KV heads whose query heads are all local keep only their window";
  case QSR_NOTE_MOEFY: return "moefy: dense FFN split into experts with a router (needs fine-tuning to hold quality)";
  case QSR_NOTE_BF16_AS_FP16: return "no bf16 matrix unit: bf16 runs at the fp16 peak";
  default: return "";
  }
}

void qsr_design_baseline(const struct qsr_model *m, struct qsr_design *d) {
  memset(d, 0, sizeof *d);
  d->weights = (struct qsr_wq){ QSR_WFMT_FP16, 16, 0 };
  d->sensitive = (struct qsr_wq){ QSR_WFMT_INT, 8, 0 };
  d->act = QSR_ACT_FP16;
  d->kv = QSR_KVFMT_FP16;
  d->att_dense = 1.0;
  d->window = 16;
  d->topk = 16;
  d->selection = QSR_SEL_EXACT;
  d->page = 16;
  d->route = m && m->experts > 0 ? QSR_ROUTE_MOE : QSR_ROUTE_NONE;
  d->capacity = 0;
  d->k_min = 1;
  d->k_max = 0;
  d->cx_alpha = 2;
  d->cx_beta = 2;
  d->batch = 1;
  d->prompt = m && m->family == QSR_FAMILY_DIT ? 0 : 512;
  d->gen = m && m->family == QSR_FAMILY_DIT ? 0 : 128;
  d->steps = 50;
}

/* Efficiency defaults per device kind and op class. They are documented
** guesses until `qsr calibrate` fits them: large GPUs reach ~85% of DRAM
** bandwidth in streaming kernels (STREAM-like copy) and ~70-80% of tensor
** peak in large GEMMs; attention kernels reach less of both. */
void qsr_eff_default(int devkind, int cls, struct qsr_eff *o) {
  static const struct qsr_eff gpu[QSR_OPCLASS_FITTED] = {
    [QSR_OPCLASS_GEMM]        = { 0.75, 0.85, 4.0, 4.0 },
    [QSR_OPCLASS_ATTENTION]   = { 0.50, 0.80, 2.0, 4.0 },
    [QSR_OPCLASS_MOE]         = { 0.60, 0.80, 4.0, 4.0 },
    [QSR_OPCLASS_ELEMENTWISE] = { 0.50, 0.80, 0.5, 4.0 },
    [QSR_OPCLASS_EMBEDDING]   = { 0.50, 0.70, 0.5, 1.0 },
    [QSR_OPCLASS_GEMV]        = { 0.75, 0.85, 4.0, 4.0 },
  };
  static const struct qsr_eff edge[QSR_OPCLASS_FITTED] = {
    [QSR_OPCLASS_GEMM]        = { 0.65, 0.75, 0.5, 1.0 },
    [QSR_OPCLASS_ATTENTION]   = { 0.40, 0.70, 0.2, 1.0 },
    [QSR_OPCLASS_MOE]         = { 0.50, 0.70, 0.5, 1.0 },
    [QSR_OPCLASS_ELEMENTWISE] = { 0.40, 0.70, 0.1, 1.0 },
    [QSR_OPCLASS_EMBEDDING]   = { 0.40, 0.60, 0.1, 0.5 },
    [QSR_OPCLASS_GEMV]        = { 0.65, 0.75, 0.5, 1.0 },
  };
  if (cls < 0 || cls >= QSR_OPCLASS_FITTED) { *o = (struct qsr_eff){ 1, 1, 0, 0, 0 }; return; }
  *o = devkind == QSR_DEVKIND_GPU ? gpu[cls] : edge[cls];
}

/* Precision of a weight class: sensitive layers use `sensitive` for their
** linear weights; else a per-class override; experts fall back to the FFN
** class rules; everything else to the default `weights`. */
struct qsr_wq qsr_wq_resolve(const struct qsr_design *d, int lc, int sensitive) {
  if (lc == QSR_LCLASS_NORMS) return (struct qsr_wq){ QSR_WFMT_FP16, 16, 0 };
  if (sensitive && lc != QSR_LCLASS_EMBEDDING && lc != QSR_LCLASS_LM_HEAD) return d->sensitive;
  if (d->layer[lc].bits) return d->layer[lc];
  return d->weights;
}

/* P(k = j) for dynamic routing: complexity c ~ Beta(a, b) on [0,1] is cut
** into k_max - k_min + 1 equal bins, bin i -> k = k_min + i. */
double qsr_route_kdist(const struct qsr_design *d, int top_k, double *pk, int kcap) {
  for (int j = 0; j <= kcap; j++) pk[j] = 0;
  if (!d->dynamic) {
    int k = top_k < kcap ? top_k : kcap;
    pk[k] = 1;
    return k;
  }
  int lo = d->k_min, hi = d->k_max ? d->k_max : top_k;
  if (hi > kcap) hi = kcap;
  if (lo > hi) lo = hi;
  int nb = hi - lo + 1;
  double mean = 0, prev = 0;
  for (int i = 0; i < nb; i++) {
    double x = (double)(i + 1) / nb;
    double c = i == nb - 1 ? 1.0 : gsl_cdf_beta_P(x, d->cx_alpha, d->cx_beta);
    pk[lo + i] = c - prev;
    mean += (lo + i) * (c - prev);
    prev = c;
  }
  return mean;
}

void qsr_routing_resolve(const struct qsr_model *m, const struct qsr_design *d, struct qsr_routing *r) {
  memset(r, 0, sizeof *r);
  if (d->route == QSR_ROUTE_NONE) return;
  r->on = 1;
  if (d->route == QSR_ROUTE_MOE) {
    r->experts = m->experts;
    r->ffn = m->ffn;
    r->top_k = d->top_k ? d->top_k : m->top_k;
  } else {
    r->experts = d->experts ? d->experts : 8;
    r->ffn = m->ffn / r->experts;
    r->top_k = d->top_k ? d->top_k : 2;
  }
  if (d->dynamic && d->k_max) r->kmax = d->k_max;
  else r->kmax = r->top_k;
  if (r->kmax > r->experts) r->kmax = r->experts;
  r->k_mean = qsr_route_kdist(d, r->top_k, r->pk, r->kmax);
}

/* Probability that one token with k experts picks expert e: min(1, k p_e). */
static double pick_prob(const double *pop, int n_pop, int e, int E, int k) {
  double p = n_pop ? pop[e] : 1.0 / E;
  double q = k * p;
  return q > 1 ? 1 : q;
}

/* Expected distinct experts that `tokens` independent tokens touch. With
** uniform popularity this is E (1 - (1 - k/E)^T): one token touches k, a
** large batch touches all E. */
double qsr_moe_distinct_experts(int E, const double *pop, int n_pop, const double *pk, int kmax,
                                double tokens) {
  double sum = 0;
  for (int e = 0; e < E; e++) {
    double q = 0;
    for (int j = 1; j <= kmax; j++) if (pk[j] > 0) q += pk[j] * pick_prob(pop, n_pop, e, E, j);
    sum += 1 - pow(1 - q, tokens);
    if (!n_pop) { sum *= E; break; }  /* all experts alike */
  }
  return sum;
}

/* E[max(0, X - C)] for X ~ Binomial(n, q). Exact for small variance, normal
** approximation (with continuity) beyond. */
static double binom_overflow(double n, double q, double C) {
  double mu = n * q, var = n * q * (1 - q);
  if (C >= n || q <= 0) return 0;
  if (var < 25 && n <= 4096) {
    /* exact: sum over x > C of (x - C) P(x), P by recurrence */
    double p0 = pow(1 - q, n), p = p0, acc = 0;
    if (q >= 1) return n - C;
    for (int x = 0; x <= (int)n; x++) {
      if (x > C) acc += (x - C) * p;
      p *= (n - x) / (x + 1.0) * q / (1 - q);
      if (x > mu + 12 * sqrt(var) + 20) break;
    }
    return acc;
  }
  double sd = sqrt(var), z = (C + 0.5 - mu) / sd;
  double phi = exp(-0.5 * z * z) / sqrt(2 * M_PI);
  double v = sd * phi + (mu - C - 0.5) * gsl_cdf_ugaussian_Q(z);
  return v > 0 ? v : 0;
}

/* Share of token-expert assignments beyond capacity ceil(cf * T * k / E). */
double qsr_moe_dropped_frac(int E, const double *pop, int n_pop, const double *pk, int kmax,
                            double T, double cf) {
  if (cf <= 0 || T <= 0) return 0;
  double kmean = 0;
  for (int j = 1; j <= kmax; j++) kmean += j * pk[j];
  double C = ceil(cf * T * kmean / E);
  double over = 0;
  for (int e = 0; e < E; e++) {
    double q = 0;
    for (int j = 1; j <= kmax; j++) if (pk[j] > 0) q += pk[j] * pick_prob(pop, n_pop, e, E, j);
    if (!n_pop) { over = E * binom_overflow(T, q, C); break; }
    over += binom_overflow(T, q, C);
  }
  double assigned = T * kmean;
  return assigned > 0 ? over / assigned : 0;
}

int qsr_design_check(const struct qsr_model *m, const struct qsr_design *d, char **err) {
  if (d->batch < 1) return qsr_errf(err, QSR_ERR_CONFIG, "runtime.batch: must be >= 1");
  if (m->family == QSR_FAMILY_DECODER) {
    if (d->prompt < 1) return qsr_errf(err, QSR_ERR_CONFIG, "runtime.prompt: must be >= 1");
    if (d->gen < 1) return qsr_errf(err, QSR_ERR_CONFIG, "runtime.gen: must be >= 1");
  } else if (d->steps < 1) {
    return qsr_errf(err, QSR_ERR_CONFIG, "runtime.steps: must be >= 1");
  }
  double s = d->att_local + d->att_topk + d->att_dense;
  if (fabs(s - 1.0) > 1e-6)
    return qsr_errf(err, QSR_ERR_CONFIG,
                    "attention: local + topk + dense must sum to 1 (got %g + %g + %g = %g)",
                    d->att_local, d->att_topk, d->att_dense, s);
  for (int i = m->layers; i < QSR_MAX_LAYERS; i++) {
    if (d->dense_layer[i])
      return qsr_errf(err, QSR_ERR_CONFIG, "attention.dense_layers: layer %d out of range (model %s has %d layers)", i, m->name, m->layers);
    if (d->sensitive_layer[i])
      return qsr_errf(err, QSR_ERR_CONFIG, "quant.sensitive_layers: layer %d out of range (model %s has %d layers)", i, m->name, m->layers);
  }
  if (d->route == QSR_ROUTE_MOE && m->experts == 0)
    return qsr_errf(err, QSR_ERR_CONFIG, "routing.mode: moe needs an MoE model (%s is dense; use moefy)", m->name);
  if (d->route == QSR_ROUTE_NONE && m->experts > 0)
    return qsr_errf(err, QSR_ERR_CONFIG, "routing.mode: %s is an MoE model; use moe", m->name);
  if (d->route == QSR_ROUTE_MOE && d->experts && d->experts != m->experts)
    return qsr_errf(err, QSR_ERR_CONFIG, "routing.experts: %d, but %s has %d experts per layer", d->experts, m->name, m->experts);
  if (d->route == QSR_ROUTE_MOEFY && m->experts)
    return qsr_errf(err, QSR_ERR_CONFIG, "routing.mode: moefy splits a dense FFN; %s is already MoE", m->name);
  if (d->route != QSR_ROUTE_NONE) {
    int E = d->route == QSR_ROUTE_MOE ? m->experts : (d->experts ? d->experts : 8);
    int k = d->top_k ? d->top_k : (d->route == QSR_ROUTE_MOE ? m->top_k : 2);
    if (E > QSR_MAX_EXPERTS) return qsr_errf(err, QSR_ERR_CONFIG, "routing.experts: %d exceeds %d", E, QSR_MAX_EXPERTS);
    if (d->route == QSR_ROUTE_MOEFY && m->ffn % E)
      return qsr_errf(err, QSR_ERR_CONFIG, "routing.experts: %d does not divide the FFN width %d", E, m->ffn);
    if (k > E) return qsr_errf(err, QSR_ERR_CONFIG, "routing.top_k: %d exceeds routing.experts %d", k, E);
    if (d->dynamic && (d->k_max ? d->k_max : k) > E)
      return qsr_errf(err, QSR_ERR_CONFIG, "routing.k_max: %d exceeds routing.experts %d", d->k_max, E);
    if (d->dynamic && d->k_min > (d->k_max ? d->k_max : k))
      return qsr_errf(err, QSR_ERR_CONFIG, "routing.k_min: %d exceeds k_max %d", d->k_min, d->k_max ? d->k_max : k);
    if (d->n_popularity && d->n_popularity != E)
      return qsr_errf(err, QSR_ERR_CONFIG, "routing.popularity: %d entries for %d experts", d->n_popularity, E);
  }
  if (m->family == QSR_FAMILY_DIT && d->route != QSR_ROUTE_NONE && d->route != QSR_ROUTE_MOEFY)
    return qsr_errf(err, QSR_ERR_CONFIG, "routing.mode: DiT models support none or moefy");
  return QSR_OK;
}
