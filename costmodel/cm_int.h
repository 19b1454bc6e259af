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

double qsr_quality_loss(const struct qsr_quality *q, const struct qsr_model *m,
                        const struct qsr_design *d, const struct qsr_routing *r,
                        double dropped_frac);

#endif
