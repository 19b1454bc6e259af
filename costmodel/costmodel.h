/*
** costmodel.h -- the analytical cost model: structs in, numbers out.
**
** qsr_eval() turns (device, model, design, quality profile) into a result:
** it builds the grouped op graph for prefill and decode, costs each op on
** the device (roofline with Hockney-style efficiency plus launch overhead),
** accounts memory and offload, energy and the quality proxy. It is pure (no
** I/O, no globals, no allocation) and reentrant, so sweeps call it from many
** threads. An infeasible design is a result (feasible = 0, why), not an error.
*/
#ifndef QSR_COSTMODEL_H
#define QSR_COSTMODEL_H

#include "costmodel/types.h"

enum qsr_op_kind {
#define QSR_OP(K, NAME, CLASS) QSR_OP_##K,
#include "costmodel/ops.def"
#undef QSR_OP
  QSR_OP_COUNT
};

const char *qsr_op_name(int kind);
int qsr_op_class(int kind);
const char *qsr_bound_name(int bound);
const char *qsr_phase_name(int phase);
const char *qsr_note_text(unsigned bit);  /* bit = one enum qsr_note value */
const char *qsr_opclass_name(int cls);
const char *qsr_peak_name(int peak);

/* Fills a design with the model's plain baseline: FP16 everything, all
** heads dense, the model's own routing, batch 1, prompt 512, gen 128. */
void qsr_design_baseline(const struct qsr_model *m, struct qsr_design *d);

/* Checks a design against a model (top-k <= experts, layer lists in range,
** moe only on MoE models...). Returns QSR_OK or QSR_ERR_CONFIG with *err. */
int qsr_design_check(const struct qsr_model *m, const struct qsr_design *d, char **err);

/* Documented default efficiencies for a device kind (used where a device
** file gives none). */
void qsr_eff_default(int devkind, int opclass, struct qsr_eff *out);

/* Derived parameter count (total and active per token), in units of 1. */
double qsr_model_params(const struct qsr_model *m, double *active);

/* The cost model. q may be NULL (quality_loss = 0). Returns QSR_OK, or
** QSR_ERR_CONFIG when the design is invalid for the model (see check). */
int qsr_eval(const struct qsr_device *dev, const struct qsr_model *m,
             const struct qsr_design *d, const struct qsr_quality *q,
             struct qsr_result *res, char **err);

/* Precision of weight class lclass in a layer (sensitive or not). */
struct qsr_wq qsr_wq_resolve(const struct qsr_design *d, int lclass, int sensitive);

/* Query heads per type in a layer: n[0] dense, n[1] top-k, n[2] local, in
** that order of head index (head h < n[0] is dense, and so on). */
void qsr_head_counts(const struct qsr_model *m, const struct qsr_design *d, int dense_layer, int n[3]);

/* Tokens of activations that reuse one decoded weight tile in a GEMM: a
** weight is decoded once per this many tokens. */
#define QSR_DEQUANT_TILE_M 128.0

/* Vector ops per weight element decoded in format wfmt at `bits` on this
** device (its calibrated figure, else the format's default), and per KV
** element in KV format kvfmt. dev may be NULL (defaults). */
double qsr_decode_ops(const struct qsr_device *dev, int wfmt, int bits);
double qsr_kv_decode_ops(const struct qsr_device *dev, int kvfmt);
/* The peak that runs fp16 matrix work: fp16 tensor, else fp16 vector, else fp32. */
int qsr_fp16_peak(const struct qsr_device *dev);

/* Routing as resolved for a model + design. */
struct qsr_routing {
  int on;             /* experts present (moe or moefy) */
  int experts;        /* E */
  int top_k;          /* static k (or k_max when dynamic) */
  int ffn;            /* per-expert intermediate size */
  double pk[QSR_MAX_EXPERTS + 1]; /* P(k = j) */
  int kmax;
  double k_mean;
};

void qsr_routing_resolve(const struct qsr_model *m, const struct qsr_design *d,
                         struct qsr_routing *r);

/* Pieces exposed for tests and for the simulator. */
double qsr_moe_distinct_experts(int experts, const double *pop, int n_pop,
                                const double *pk, int kmax, double tokens);
double qsr_moe_dropped_frac(int experts, const double *pop, int n_pop,
                            const double *pk, int kmax, double tokens, double capacity);
/* P(k = j) for j = 0..kmax under the design's routing; returns mean k. */
double qsr_route_kdist(const struct qsr_design *d, int top_k, double *pk, int kmax_cap);

/* ---- serving iterations (costmodel/step.c) -------------------------------
** One batched forward pass of a serving engine, costed in parts so that a
** simulator can tabulate what repeats: the per-token ops of T tokens (embedding,
** norms, QKV, attention output, dense FFN or router, residual: linear in
** nothing but T), the head for `rows` logit rows, attention summed over the
** sequences of the batch (each a decode token at context L or a prefill chunk
** of n tokens after p cached), and the expert FFN per MoE layer for the
** assignments and distinct experts the batch actually has. A pass is
**   body(T) + head(rows) + sum_g attn(g, work summed over sequences)
**   + sum_layers experts(A_l, D_l) + sync
** which for one sequence equals qsr_eval's prefill pass or decode step.
** cscale / bscale multiply the power mode's clocks (resource fluctuation). */

struct qsr_work {             /* one op's work, summed over sequences */
  double flops;               /* matrix flops */
  double vec_ops;             /* vector ops */
  double bytes;               /* DRAM bytes */
};

#define QSR_STEP_GROUPS 4

struct qsr_step {
  const struct qsr_device *dev;
  const struct qsr_model *m;
  const struct qsr_design *d;  /* the design; must outlive the step */
  struct qsr_routing r;
  double cscale, bscale;      /* the design's power mode */
  int n_groups;               /* layer groups: (sensitive, dense-attention) pairs present */
  int g_layers[QSR_STEP_GROUPS];
  int g_sens[QSR_STEP_GROUPS];
  int g_dense[QSR_STEP_GROUPS];
  int8_t layer_group[QSR_MAX_LAYERS]; /* group of each layer */
  double weight_bytes;        /* every weight as stored */
  double expert_bytes[QSR_STEP_GROUPS]; /* one expert's weights in a layer of group g */
  double sync_ms;             /* per pass */
};

/* Prepares a step for (dev, m, d): checks the design (decoder models only;
** power mode known). Returns QSR_OK or QSR_ERR_CONFIG with *err. */
int qsr_step_init(struct qsr_step *s, const struct qsr_device *dev, const struct qsr_model *m,
                  const struct qsr_design *d, char **err);
/* Embedding and every layer's per-token ops for T tokens (ms). */
double qsr_step_body_ms(const struct qsr_step *s, double cscale, double bscale, double T);
/* Final norm + lm_head for `rows` sequences (ms). */
double qsr_step_head_ms(const struct qsr_step *s, double cscale, double bscale, double rows);
/* Adds one sequence's attention work in one layer of group g: a decode
** token at context p (n = 0) or n prompt tokens after p cached. */
void qsr_step_attn_work(const struct qsr_step *s, int g, double p, double n, struct qsr_work *w);
/* Attention of all layers of group g for the summed work (ms). */
double qsr_step_attn_ms(const struct qsr_step *s, double cscale, double bscale, int g, const struct qsr_work *w,
                        int decode);
/* Expert FFN of one layer of group g: A assignments over D distinct experts (ms). */
double qsr_step_experts_ms(const struct qsr_step *s, double cscale, double bscale, int g, double A, double D);
/* The cost model's expectation for T tokens in a layer: assignments kept
** (after capacity drops) and distinct experts. */
void qsr_step_experts_expect(const struct qsr_step *s, double T, double *A, double *D);
/* KV-cache bytes of one sequence at context ctx. */
double qsr_step_kv_bytes(const struct qsr_step *s, double ctx);
/* Activation workspace of a pass of T tokens and `rows` logit rows. */
double qsr_step_act_bytes(const struct qsr_step *s, double T, double rows);

#endif
