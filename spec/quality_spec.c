/*
** quality_spec.c -- configs/quality/NAME.yaml -> struct qsr_quality (a proxy).
*/
#include "costmodel/costmodel.h"
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "spec/spec.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int set_weights(void *obj, struct qsr_kctx *k) {
  struct qsr_quality *q = obj;
  int f = qsr_wfmt_from_name(k->seg[1]);
  if (f < 0 || f == QSR_WFMT_FP16 || f == QSR_WFMT_BF16 || f == QSR_WFMT_INT_SYM)
    return qsr_kctx_error(k, "unknown format '%s' (known: int, log, lut, fp8)", k->seg[1]);
  char *end;
  long bits = strtol(k->seg[2], &end, 10);
  if (*end || !qsr_qformat_valid(f, (int)bits, 0))
    return qsr_kctx_error(k, "'%s' is not a bit width of %s", k->seg[2], k->seg[1]);
  return qsr_kctx_f64(k, 0, 100, &q->weights[f][bits]);
}

static int set_group(void *obj, struct qsr_kctx *k) {
  static const char *const g[] = { "0", "32", "64", "128", "256" };
  for (int i = 0; i < 5; i++)
    if (!strcmp(k->seg[1], g[i])) return qsr_kctx_f64(k, 0, 100, &((struct qsr_quality *)obj)->group_factor[i]);
  return qsr_kctx_error(k, "group sizes are 0, 32, 64, 128, 256");
}

static int set_class(void *obj, struct qsr_kctx *k) {
  for (int c = 0; c < QSR_LCLASS_COUNT; c++)
    if (!strcmp(k->seg[1], qsr_lclass_names[c]) && c != QSR_LCLASS_NORMS)
      return qsr_kctx_f64(k, 0, 1, &((struct qsr_quality *)obj)->class_share[c]);
  return qsr_kctx_error(k, "unknown layer class '%s'", k->seg[1]);
}

static int set_ignore(void *obj, struct qsr_kctx *k) {
  const char *s;
  (void)obj;
  return qsr_kctx_str(k, &s);
}

#define Q(f) offsetof(struct qsr_quality, f)
#define PEN(p, f) { p, QSR_K_F64, Q(f), 0, 100, NULL, NULL, 0, NULL }

static const struct qsr_key quality_keys[] = {
  { "name", QSR_K_STR, Q(name), 1, 0, NULL, NULL, QSR_KEY_REQUIRED, NULL },
  { "metric", QSR_K_CUSTOM, 0, 1, 0, NULL, set_ignore, 0, NULL },
  { "weights.*.*", QSR_K_CUSTOM, 0, 1, 0, NULL, set_weights, 0, NULL },
  { "symmetric_factor", QSR_K_F64, Q(symmetric_factor), 0, 100, NULL, NULL, 0, NULL },
  { "group.*", QSR_K_CUSTOM, 0, 1, 0, NULL, set_group, 0, NULL },
  { "class.*", QSR_K_CUSTOM, 0, 1, 0, NULL, set_class, 0, NULL },
  PEN("activations.int8", act[QSR_ACT_INT8]), PEN("activations.fp8", act[QSR_ACT_FP8]),
  PEN("kv_cache.int8", kv[QSR_KVFMT_INT8]), PEN("kv_cache.int4", kv[QSR_KVFMT_INT4]),
  PEN("attention.local", att_local), PEN("attention.topk", att_topk), PEN("attention.paged", att_paged),
  PEN("routing.drop", route_drop), PEN("routing.moefy", route_moefy), PEN("routing.dynamic", route_dynamic),
};
#define N_QUALITY_KEYS ((int)(sizeof quality_keys / sizeof quality_keys[0]))

int qsr_quality_load(const char *path, struct qsr_quality *out, char **err) {
  struct qsr_quality q;
  uint8_t seen[N_QUALITY_KEYS];
  memset(&q, 0, sizeof q);
  memset(seen, 0, sizeof seen);
  for (int f = 0; f < 7; f++)
    for (int b = 0; b <= 16; b++) q.weights[f][b] = -1;
  q.symmetric_factor = 1;
  for (int i = 0; i < 5; i++) q.group_factor[i] = 1;
  int rc = qsr_spec_load(path, "quality", quality_keys, N_QUALITY_KEYS, &q, seen, err);
  if (rc) return rc;
  double s = 0;
  for (int c = 0; c < QSR_LCLASS_COUNT; c++) s += q.class_share[c];
  if (fabs(s - 1) > 0.011)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: quality.class: shares sum to %g, not 1", path, s);
  *out = q;
  return QSR_OK;
}
