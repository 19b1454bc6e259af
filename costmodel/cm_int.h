/*
** cm_int.h -- internals of the cost model shared by its .c files.
*/
#ifndef QSR_CM_INT_H
#define QSR_CM_INT_H

#include "costmodel/costmodel.h"

#define QSR_MAX_OPS 192

/* One op of the grouped graph: `count` identical instances. */
struct qsr_op {
  int kind;          /* enum qsr_op_kind */
  int phase;         /* enum qsr_phase */
  double count;      /* instances per pass (layers x parts; may be a quadrature weight) */
  double flops;      /* matrix flops per instance */
  double vec_ops;    /* vector-unit ops per instance (dequant, softmax, elementwise) */
  double bytes;      /* DRAM bytes per instance */
  double wbytes;     /* of which weights */
  int mm_peak;       /* enum qsr_peak that runs `flops` */
  double parts;      /* independent equal sub-problems (experts) */
  int launches;      /* kernel launches per instance */
  int gemv;          /* linear op small enough for the GEMV kernels (class gemv) */
};

struct qsr_graph {
  struct qsr_op ops[QSR_MAX_OPS];
  int n;
  unsigned notes;
  double dropped_frac;      /* prefill token-expert assignments dropped */
  double experts_touched;   /* decode: distinct experts per MoE layer */
  double k_mean;            /* mean experts per token */
};

/* One weight tensor class instance, for memory, bit averages and quality. */
struct qsr_wtensor {
  int lclass;            /* enum qsr_lclass */
  struct qsr_wq wq;      /* resolved precision */
  double rows, cols;     /* shape */
  double count;          /* how many such tensors in the model */
  int sensitive;         /* lives in a sensitive layer */
};

typedef void (*qsr_wtensor_fn)(const struct qsr_wtensor *t, void *ud);

void qsr_weights_each(const struct qsr_model *m, const struct qsr_design *d,
                      const struct qsr_routing *r, qsr_wtensor_fn fn, void *ud);
double qsr_wtensor_bytes(const struct qsr_wtensor *t);

void qsr_graph_build(const struct qsr_device *dev, const struct qsr_model *m,
                     const struct qsr_design *d, const struct qsr_routing *r,
                     struct qsr_graph *g);

/* Parts of a pass (qsr_graph_build_pass): embedding and the per-token ops
** of every layer (norms, QKV, attention output, dense FFN or router,
** residual), attention, the expert FFN, final norm + lm_head. */
enum {
  QSR_EMIT_BODY = 1u << 0,
  QSR_EMIT_ATTN = 1u << 1,
  QSR_EMIT_EXPERTS = 1u << 2,
  QSR_EMIT_HEAD = 1u << 3,
  QSR_EMIT_ALL = 0xfu
};

/* One decoder pass of T tokens with `rows` logit rows, only the parts in
** `emit` (ATTN and EXPERTS are costed per sequence by step.c instead). */
void qsr_graph_build_pass(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                          const struct qsr_routing *r, double T, double rows, unsigned emit, struct qsr_graph *g);
/* Attention work of one sequence in one layer: n > 0 new prompt tokens after
** p cached, or (n = 0) one decode token at context p. Adds to *w. */
void qsr_graph_attn_work(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                         int dense_layer, double p, double n, struct qsr_work *w);
/* The expert-FFN op of one MoE layer: A assignments over D distinct experts. */
void qsr_graph_expert_op(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                         const struct qsr_routing *r, int sens, double A, double D, struct qsr_op *out);

/* Time of one instance of op (ms) with compute and bandwidth scaled. */
double qsr_op_ms(const struct qsr_device *dev, double cscale, double bscale, const struct qsr_op *op);
/* Clock scales of the design's power mode (1, 1 when none). */
int qsr_mode_scales(const struct qsr_device *dev, const struct qsr_design *d, double *cscale, double *bscale,
                    double *power_w, char **err);
/* KV-cache bytes of batch sequences at context ctx (notes: window cache). */
double qsr_kv_bytes(const struct qsr_model *m, const struct qsr_design *d, double ctx, double batch, unsigned *notes);
/* Activation workspace of a pass of T tokens and `rows` logit rows. */
double qsr_act_bytes(const struct qsr_model *m, const struct qsr_routing *r, double T, double rows);

double qsr_quality_loss(const struct qsr_quality *q, const struct qsr_model *m,
                        const struct qsr_design *d, const struct qsr_routing *r,
                        double dropped_frac);

#endif
