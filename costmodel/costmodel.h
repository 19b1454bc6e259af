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

#endif
