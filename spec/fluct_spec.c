/*
** fluct_spec.c -- configs/fluctuation/NAME.yaml -> struct qsr_fluct (sim/fluct.h).
**
**   fluctuation:
**     description: "what it models; where the numbers come from"
**     period_s: 0                # optional; > 0 repeats the points every period_s
**     points:                    # required, 1 .. QSR_FLUCT_MAX
**       - {t_s: 0, bw_scale: 1.0, compute_scale: 1.0}
**       - {t_s: 120, bw_scale: 0.8, compute_scale: 0.7, mem_gb: 12}
**
** Per point: t_s (s, first 0, strictly ascending, below period_s when that
** is > 0), bw_scale and compute_scale (x the device's, 0 < s <= 4), all
** three required; mem_gb (GB = 1e9 B available to the model, > 0) optional,
** absent -> -1 (the device's usable_gb). The name is the file stem.
** Errors: "file:line:col: points[i].key: why".
*/
#include "sim/fluct.h"
#include "spec/spec.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

struct fluct_load {
  struct qsr_fluct f;
  int last_line, last_col;     /* the last point's t_s, for the period check */
};

static const char *scalar(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int set_description(void *obj, struct qsr_kctx *k) {
  struct qsr_fluct *f = &((struct fluct_load *)obj)->f;
  const char *s;
  int rc = qsr_kctx_str(k, &s);
  if (rc) return rc;
  if (strlen(s) >= sizeof f->desc) return qsr_kctx_error(k, "longer than %zu characters", sizeof f->desc - 1);
  snprintf(f->desc, sizeof f->desc, "%s", s);
  for (char *c = f->desc; *c; c++)    /* one line: folded or literal blocks lose their breaks */
    if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
  size_t n = strlen(f->desc);
  while (n && f->desc[n - 1] == ' ') f->desc[--n] = '\0';
  return QSR_OK;
}

/* Points the context at node n, path "points[i]" or "points[i].key". */
static void at_node(struct qsr_kctx *k, yaml_node_t *n, int i, const char *key) {
  k->line = (int)n->start_mark.line + 1;
  k->col = (int)n->start_mark.column + 1;
  k->node = n;
  if (key) snprintf(k->path, sizeof k->path, "points[%d].%s", i, key);
  else snprintf(k->path, sizeof k->path, "points[%d]", i);
}

static int set_point(struct fluct_load *L, struct qsr_kctx *k, yaml_node_t *pn, int i) {
  static const char *const keys[] = { "t_s", "bw_scale", "compute_scale", "mem_gb" };
  struct qsr_fluct_point *p = &L->f.pts[i];
  int have[4] = { 0, 0, 0, 0 }, t_line = 0, t_col = 0;
  at_node(k, pn, i, NULL);
  if (pn->type != YAML_MAPPING_NODE)
    return qsr_kctx_error(k, "expected a mapping {t_s, bw_scale, compute_scale[, mem_gb]}");
  p->mem_gb = -1;
  for (yaml_node_pair_t *q = pn->data.mapping.pairs.start; q < pn->data.mapping.pairs.top; q++) {
    yaml_node_t *kn = yaml_document_get_node(k->doc, q->key), *vn = yaml_document_get_node(k->doc, q->value);
    const char *key = scalar(kn);
    int w = -1;
    for (int j = 0; key && j < 4; j++)
      if (!strcmp(key, keys[j])) w = j;
    at_node(k, kn, i, key ? key : "?");
    if (w < 0) return qsr_kctx_error(k, "unknown key (known here: t_s, bw_scale, compute_scale, mem_gb)");
    if (have[w]) return qsr_kctx_error(k, "duplicate key");
    have[w] = 1;
    at_node(k, vn, i, key);                  /* value errors point at the value */
    int rc;
    switch (w) {
    case 0:
      if ((rc = qsr_kctx_f64(k, 0, 1e9, &p->t_s))) return rc;
      t_line = k->line;
      t_col = k->col;
      break;
    case 1:
    case 2: {
      double *s = w == 1 ? &p->bw_scale : &p->compute_scale;
      if ((rc = qsr_kctx_f64(k, 0, 4, s))) return rc;
      if (*s <= 0) return qsr_kctx_error(k, "%g: must be > 0 (0 < scale <= 4)", *s);
      break;
    }
    default:
      if ((rc = qsr_kctx_f64(k, 0, 1e6, &p->mem_gb))) return rc;
      if (p->mem_gb <= 0) return qsr_kctx_error(k, "%g: must be > 0 GB (leave it out for the device's usable_gb)", p->mem_gb);
    }
  }
  at_node(k, pn, i, NULL);
  for (int j = 0; j < 3; j++)
    if (!have[j]) return qsr_kctx_error(k, "missing %s", keys[j]);
  k->line = t_line;
  k->col = t_col;
  snprintf(k->path, sizeof k->path, "points[%d].t_s", i);
  if (i == 0 && p->t_s != 0) return qsr_kctx_error(k, "%g: the first point must be at t_s 0", p->t_s);
  if (i > 0 && p->t_s <= L->f.pts[i - 1].t_s)
    return qsr_kctx_error(k, "%g: not after the previous point's %g (t_s must be strictly ascending)", p->t_s,
                          L->f.pts[i - 1].t_s);
  L->last_line = t_line;
  L->last_col = t_col;
  return QSR_OK;
}

static int set_points(void *obj, struct qsr_kctx *k) {
  struct fluct_load *L = obj;
  yaml_node_t *seq = k->node;     /* set_point moves k->node to each item */
  if (seq->type != YAML_SEQUENCE_NODE) return qsr_kctx_error(k, "expected a list of {t_s, bw_scale, compute_scale[, mem_gb]}");
  L->f.n = 0;
  for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
    yaml_node_t *pn = yaml_document_get_node(k->doc, *it);
    if (L->f.n == QSR_FLUCT_MAX) {
      at_node(k, pn, L->f.n, NULL);
      return qsr_kctx_error(k, "more than %d points", QSR_FLUCT_MAX);
    }
    int rc = set_point(L, k, pn, L->f.n);
    if (rc) return rc;
    L->f.n++;
  }
  if (!L->f.n) return qsr_kctx_error(k, "empty list: give at least the point at t_s 0");
  return QSR_OK;
}

#define FL(f) offsetof(struct fluct_load, f)

static const struct qsr_key fluct_keys[] = {
  { "description", QSR_K_CUSTOM, 0, 1, 0, NULL, set_description, 0, "what it models and its sources (one line)" },
  { "period_s", QSR_K_F64, FL(f.period_s), 0, 1e9, NULL, NULL, 0, "0 = hold the last point; > 0 repeats" },
  { "points", QSR_K_CUSTOM, 0, 1, 0, NULL, set_points, QSR_KEY_REQUIRED, "[{t_s, bw_scale, compute_scale, mem_gb}]" },
};
#define N_FLUCT_KEYS ((int)(sizeof fluct_keys / sizeof fluct_keys[0]))

int qsr_fluct_load(const char *path, struct qsr_fluct *out, char **err) {
  struct fluct_load local;      /* ~8.5 KB */
  uint8_t seen[N_FLUCT_KEYS];
  memset(&local, 0, sizeof local);
  memset(seen, 0, sizeof seen);
  int rc = qsr_spec_load(path, "fluctuation", fluct_keys, N_FLUCT_KEYS, &local, seen, err);
  if (rc) return rc;
  struct qsr_fluct *f = &local.f;
  if (f->period_s > 0 && f->pts[f->n - 1].t_s >= f->period_s)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: points[%d].t_s: %g is not below period_s %g", path, local.last_line,
                    local.last_col, f->n - 1, f->pts[f->n - 1].t_s, f->period_s);
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  size_t n = strcspn(b, ".");
  if (n >= sizeof f->name)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: the file name is longer than %zu characters", path, sizeof f->name - 1);
  snprintf(f->name, sizeof f->name, "%.*s", (int)n, b);
  *out = *f;
  return QSR_OK;
}
