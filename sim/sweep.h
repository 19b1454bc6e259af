/*
** sweep.h -- a design space and its lazy expansion.
**
** A sweep is a list of devices, models and base designs, and axes (design
** keys with lists of values). Point index i maps to one design by mixed
** radix over [device, model, design, axis 0, axis 1, ...] (the last axis
** varies fastest), so 10^8 points need no list in memory. Points are grouped in
** chunks of QSR_SWEEP_CHUNK consecutive indices: the unit of work, of
** storage transactions, of resume and of sharding (chunk c belongs to shard
** c mod N).
*/
#ifndef QSR_SWEEP_H
#define QSR_SWEEP_H

#include <stdint.h>

#include "costmodel/costmodel.h"
#include "costmodel/metrics.h"
#include "spec/spec.h"

#define QSR_SWEEP_CHUNK 1024
#define QSR_MAX_AXES 24
#define QSR_MAX_OBJECTIVES 4
#define QSR_MAX_SWEEP_DEVICES 64
#define QSR_MAX_SWEEP_MODELS 64
#define QSR_MAX_SWEEP_DESIGNS 64

struct qsr_axis {
  char key[64];                 /* design key, "quant.weights.bits" */
  int n;                        /* number of values */
  struct qsr_patch *values;     /* owned by the sweep */
};

struct qsr_constraints {
  int fits;                     /* 1: must fit without offload */
  double max_quality_loss;      /* 0 = no limit (all max_*) */
  double max_tpot_ms, max_ttft_ms, max_e2e_ms, max_mem_mb, max_energy_j_per_token;
  double min_tokens_per_s;
};

struct qsr_sweep {
  char name[64];
  char *text;                   /* the sweep file, verbatim (stored in the DB) */
  char hash[17];                /* FNV-1a 64 of text, hex */
  char path[512];
  int n_design;                 /* base designs (at least 1: the model baseline) */
  struct qsr_design_builder *designs;       /* owned */
  char (*design_names)[QSR_NAME_MAX];       /* owned; "baseline" for the model's own */
  int n_dev, n_model;
  struct qsr_device devs[QSR_MAX_SWEEP_DEVICES];
  struct qsr_model models[QSR_MAX_SWEEP_MODELS];
  int use_quality;
  struct qsr_quality quality;
  int n_axes;
  struct qsr_axis axes[QSR_MAX_AXES];
  struct qsr_constraints cons;
  int n_obj;
  int obj[QSR_MAX_OBJECTIVES];  /* metric index (metrics.h); direction from the table */
  uint64_t total;               /* points */
  int row_route, row_prompt;    /* design key rows looked up once */
};

/* One evaluated point. */
struct qsr_point {
  uint64_t idx;
  int dev, model, design;       /* indices into the sweep's lists */
  int valid;                    /* 0: the design is invalid for this model (see why) */
  int ok;                       /* feasible and meets the constraints */
  char why[160];                /* reason when !valid, infeasible or constrained out */
  struct qsr_design d;
  struct qsr_result r;
};

uint64_t qsr_sweep_chunks(const struct qsr_sweep *sw);

/* Evaluates point idx into pt; never fails (invalid points carry why). */
void qsr_sweep_eval(const struct qsr_sweep *sw, uint64_t idx, struct qsr_point *pt);

/* Checks the constraints on a feasible result; returns 1 if met, else 0
** with the first unmet one named in why. */
int qsr_constraints_met(const struct qsr_constraints *c, const struct qsr_result *r, char *why, size_t cap);

void qsr_sweep_free(struct qsr_sweep *sw);   /* frees axis values and text */

#endif
