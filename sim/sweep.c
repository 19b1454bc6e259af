/*
** sweep.c -- mixed-radix expansion and evaluation of one point.
*/
#include "sim/sweep.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t qsr_sweep_chunks(const struct qsr_sweep *sw) {
  return (sw->total + QSR_SWEEP_CHUNK - 1) / QSR_SWEEP_CHUNK;
}

int qsr_constraints_met(const struct qsr_constraints *c, const struct qsr_result *r, char *why, size_t cap) {
#define LIMIT(field, value, op, name)                                                        \
  if (c->field > 0 && (value)op c->field) {                                                  \
    snprintf(why, cap, "constraint " name ": %.4g vs limit %.4g", (double)(value), c->field); \
    return 0;                                                                                \
  }
  if (c->fits && !r->fits) {
    snprintf(why, cap, "constraint fits: needs %.0f MB with offload", r->mem_peak_mb);
    return 0;
  }
  LIMIT(max_quality_loss, r->quality_loss, >, "max_quality_loss")
  LIMIT(max_tpot_ms, r->tpot_ms, >, "max_tpot_ms")
  LIMIT(max_ttft_ms, r->ttft_ms, >, "max_ttft_ms")
  LIMIT(max_e2e_ms, r->e2e_ms, >, "max_e2e_ms")
  LIMIT(max_mem_mb, r->mem_peak_mb, >, "max_mem_mb")
  LIMIT(max_energy_j_per_token, r->energy_j_per_token, >, "max_energy_j_per_token")
  LIMIT(min_tokens_per_s, r->tokens_per_s, <, "min_tokens_per_s")
#undef LIMIT
  return 1;
}

void qsr_sweep_eval(const struct qsr_sweep *sw, uint64_t idx, struct qsr_point *pt) {
  struct qsr_design_builder b;
  int digit[QSR_MAX_AXES];
  uint64_t rest = idx;
  for (int a = sw->n_axes - 1; a >= 0; a--) {
    digit[a] = (int)(rest % (uint64_t)sw->axes[a].n);
    rest /= (uint64_t)sw->axes[a].n;
  }
  pt->idx = idx;
  pt->design = (int)(rest % (uint64_t)sw->n_design);
  rest /= (uint64_t)sw->n_design;
  pt->model = (int)(rest % (uint64_t)sw->n_model);
  rest /= (uint64_t)sw->n_model;
  pt->dev = (int)rest;
  pt->why[0] = '\0';
  pt->ok = 0;
  const struct qsr_model *m = &sw->models[pt->model];
  memcpy(&b, &sw->designs[pt->design], sizeof b);
  /* the model's own routing unless the base or an axis sets it */
  if (!b.seen[sw->row_route]) b.d.route = m->experts > 0 ? QSR_ROUTE_MOE : QSR_ROUTE_NONE;
  if (m->family == QSR_FAMILY_DIT && !b.seen[sw->row_prompt]) b.d.prompt = b.d.gen = 0;
  for (int a = 0; a < sw->n_axes; a++) qsr_design_patch_apply(&b, &sw->axes[a].values[digit[a]]);
  char *err = NULL;
  int rc = qsr_design_finish(&b, m, &err);
  pt->d = b.d;
  if (!rc) rc = qsr_eval(&sw->devs[pt->dev], m, &b.d, sw->use_quality ? &sw->quality : NULL, &pt->r, &err);
  pt->valid = rc == QSR_OK;
  if (!pt->valid) {
    memset(&pt->r, 0, sizeof pt->r);
    snprintf(pt->why, sizeof pt->why, "invalid: %s", err ? err : qsr_errstr(rc));
    free(err);
    return;
  }
  if (!pt->r.feasible) {
    snprintf(pt->why, sizeof pt->why, "infeasible: %.140s", pt->r.why);
    return;
  }
  pt->ok = qsr_constraints_met(&sw->cons, &pt->r, pt->why, sizeof pt->why);
}

void qsr_sweep_free(struct qsr_sweep *sw) {
  if (!sw) return;
  for (int a = 0; a < sw->n_axes; a++) free(sw->axes[a].values);
  free(sw->text);
  free(sw->designs);
  free(sw->design_names);
  sw->n_axes = 0;
  sw->text = NULL;
  sw->designs = NULL;
  sw->design_names = NULL;
}
