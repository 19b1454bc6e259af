/*
** sweep_spec.c -- configs/sweeps/NAME.yaml -> struct qsr_sweep.
**
**   sweep:
**     name: quickstart
**     base: ablation-q            # optional design (name or path), or
**     designs: [ablation-baseline, ablation-q]   # several: a dimension of the space
**     quality: default           # profile, or none
**     devices: [a100-80g, orin-nx-16g]
**     models: [llama-7b]
**     axes:                      # design keys (qsr list keys) -> values
**       quant.weights.bits: [16, 8, 4, 3]
**       attention.local: { from: 0, to: 0.75, step: 0.25 }
**       attention.dense_layers: [[], [0, 31]]
**     constraints: { fits: true, max_quality_loss: 0.2 }
**     objectives: [tpot_ms, mem_peak_mb, quality_loss]
*/
#include "costmodel/metrics.h"
#include "sim/sweep.h"
#include "spec/spec.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_AXIS_VALUES 100000

struct sweep_load {
  struct qsr_sweep *sw;
  char base[256];
  char quality[64];
  char names[3][QSR_MAX_SWEEP_DEVICES][QSR_NAME_MAX];  /* devices, models, designs */
  int n_names[3];
  char **err_extra;
};

static const char *scalar(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int set_names(struct sweep_load *L, int which, struct qsr_kctx *k) {
  if (k->node->type != YAML_SEQUENCE_NODE) return qsr_kctx_error(k, "expected a list of names");
  for (yaml_node_item_t *it = k->node->data.sequence.items.start; it < k->node->data.sequence.items.top; it++) {
    const char *s = scalar(yaml_document_get_node(k->doc, *it));
    if (!s || !*s) return qsr_kctx_error(k, "expected names");
    if (L->n_names[which] == QSR_MAX_SWEEP_DEVICES) return qsr_kctx_error(k, "more than %d entries", QSR_MAX_SWEEP_DEVICES);
    if (strlen(s) >= QSR_NAME_MAX) return qsr_kctx_error(k, "'%s': name too long", s);
    snprintf(L->names[which][L->n_names[which]++], QSR_NAME_MAX, "%s", s);
  }
  if (!L->n_names[which]) return qsr_kctx_error(k, "empty list");
  return QSR_OK;
}
static int set_devices(void *o, struct qsr_kctx *k) { return set_names(o, 0, k); }
static int set_models(void *o, struct qsr_kctx *k) { return set_names(o, 1, k); }
static int set_designs(void *o, struct qsr_kctx *k) { return set_names(o, 2, k); }

/* YAML flow text of a node: scalars as is, sequences as [a,b]. */
static int node_text(yaml_document_t *doc, yaml_node_t *n, char *out, size_t cap) {
  if (n->type == YAML_SCALAR_NODE) return (size_t)snprintf(out, cap, "%s", scalar(n)) < cap ? 0 : -1;
  if (n->type != YAML_SEQUENCE_NODE) return -1;
  size_t u = (size_t)snprintf(out, cap, "[");
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    const char *s = scalar(yaml_document_get_node(doc, *it));
    if (!s || u >= cap) return -1;
    u += (size_t)snprintf(out + u, cap - u, "%s%s", it == n->data.sequence.items.start ? "" : ",", s);
  }
  if (u + 2 > cap) return -1;
  snprintf(out + u, cap - u, "]");
  return 0;
}

static int add_value(struct qsr_kctx *k, struct qsr_axis *ax, int *cap, const char *key, const char *text) {
  if (ax->n == *cap) {
    *cap = *cap ? 2 * *cap : 16;
    if (*cap > MAX_AXIS_VALUES) return qsr_kctx_error(k, "more than %d values", MAX_AXIS_VALUES);
    struct qsr_patch *v = realloc(ax->values, (size_t)*cap * sizeof *v);
    if (!v) return qsr_errf(k->err, QSR_ERR_NOMEM, "out of memory");
    ax->values = v;
  }
  char *e = NULL;
  if (qsr_design_patch_make(key, text, &ax->values[ax->n], &e)) {
    int rc = qsr_kctx_error(k, "%s", e ? e : "bad value");
    free(e);
    return rc;
  }
  ax->n++;
  return QSR_OK;
}

static int set_axes(void *o, struct qsr_kctx *k) {
  struct sweep_load *L = o;
  struct qsr_sweep *sw = L->sw;
  if (k->node->type != YAML_MAPPING_NODE) return qsr_kctx_error(k, "expected a mapping of design keys to value lists");
  for (yaml_node_pair_t *p = k->node->data.mapping.pairs.start; p < k->node->data.mapping.pairs.top; p++) {
    yaml_node_t *kn = yaml_document_get_node(k->doc, p->key), *vn = yaml_document_get_node(k->doc, p->value);
    const char *key = scalar(kn);
    k->line = (int)kn->start_mark.line + 1;
    k->col = (int)kn->start_mark.column + 1;
    snprintf(k->path, sizeof k->path, "axes.%s", key ? key : "?");
    if (!key || qsr_design_key_row(key) < 0 || !strcmp(key, "name") || !strcmp(key, "description")) {
      int nk;
      const struct qsr_key *keys = qsr_design_keys(&nk);
      char list[2048];
      size_t u = 0;
      for (int r = 0; r < nk && u < sizeof list - 64; r++)
        if (strncmp(keys[r].path, "quant.layers.", 13) && strcmp(keys[r].path, "name") && strcmp(keys[r].path, "description"))
          u += (size_t)snprintf(list + u, sizeof list - u, "%s%s", u ? ", " : "", keys[r].path);
      return qsr_kctx_error(k, "unknown key; known: %s, quant.layers.CLASS.{bits,format,group}", list);
    }
    if (sw->n_axes == QSR_MAX_AXES) return qsr_kctx_error(k, "more than %d axes", QSR_MAX_AXES);
    for (int a = 0; a < sw->n_axes; a++)
      if (!strcmp(sw->axes[a].key, key)) return qsr_kctx_error(k, "duplicate axis");
    struct qsr_axis *ax = &sw->axes[sw->n_axes++];
    memset(ax, 0, sizeof *ax);
    snprintf(ax->key, sizeof ax->key, "%s", key);
    int cap = 0, rc;
    k->line = (int)vn->start_mark.line + 1;
    k->col = (int)vn->start_mark.column + 1;
    if (vn->type == YAML_SEQUENCE_NODE) {
      for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(k->doc, *it);
        char text[96];
        if (node_text(k->doc, e, text, sizeof text)) return qsr_kctx_error(k, "values must be scalars or flat lists");
        if ((rc = add_value(k, ax, &cap, key, text))) return rc;
      }
    } else if (vn->type == YAML_MAPPING_NODE) {  /* { from, to, step } */
      double from = NAN, to = NAN, step = NAN;
      for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
        const char *rk = scalar(yaml_document_get_node(k->doc, q->key));
        const char *rv = scalar(yaml_document_get_node(k->doc, q->value));
        char *end;
        double v = rv ? strtod(rv, &end) : NAN;
        if (!rv || *end) return qsr_kctx_error(k, "range values must be numbers");
        if (rk && !strcmp(rk, "from")) from = v;
        else if (rk && !strcmp(rk, "to")) to = v;
        else if (rk && !strcmp(rk, "step")) step = v;
        else return qsr_kctx_error(k, "a range has from, to, step; got '%s'", rk ? rk : "?");
      }
      if (isnan(from) || isnan(to) || isnan(step) || step <= 0 || to < from)
        return qsr_kctx_error(k, "a range needs from <= to and step > 0");
      long n = lround(floor((to - from) / step + 1e-9)) + 1;
      if (n > MAX_AXIS_VALUES) return qsr_kctx_error(k, "range has %ld values (max %d)", n, MAX_AXIS_VALUES);
      for (long i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "%.10g", from + i * step);
        if ((rc = add_value(k, ax, &cap, key, text))) return rc;
      }
    } else {
      char text[96];
      node_text(k->doc, vn, text, sizeof text);
      if ((rc = add_value(k, ax, &cap, key, text))) return rc;
    }
    if (!ax->n) return qsr_kctx_error(k, "no values");
  }
  return QSR_OK;
}

static int set_objectives(void *o, struct qsr_kctx *k) {
  struct qsr_sweep *sw = ((struct sweep_load *)o)->sw;
  if (k->node->type != YAML_SEQUENCE_NODE) return qsr_kctx_error(k, "expected a list of metric names");
  sw->n_obj = 0;
  for (yaml_node_item_t *it = k->node->data.sequence.items.start; it < k->node->data.sequence.items.top; it++) {
    const char *s = scalar(yaml_document_get_node(k->doc, *it));
    int m = s ? qsr_metric_find(s) : -1;
    if (m < 0) {
      char list[1024];
      size_t u = 0;
      for (int i = 0; i < qsr_metric_count; i++) u += (size_t)snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", qsr_metric_tab[i].name);
      return qsr_kctx_error(k, "unknown metric '%s' (known: %s)", s ? s : "?", list);
    }
    if (sw->n_obj == QSR_MAX_OBJECTIVES) return qsr_kctx_error(k, "at most %d objectives", QSR_MAX_OBJECTIVES);
    sw->obj[sw->n_obj++] = m;
  }
  if (sw->n_obj < 2) return qsr_kctx_error(k, "give 2 to %d objectives", QSR_MAX_OBJECTIVES);
  return QSR_OK;
}

static int set_ignore(void *o, struct qsr_kctx *k) {
  const char *s;
  (void)o;
  return qsr_kctx_str(k, &s);
}

static int set_str(char *dst, size_t cap, struct qsr_kctx *k) {
  const char *s;
  int rc = qsr_kctx_str(k, &s);
  if (rc) return rc;
  if (strlen(s) >= cap) return qsr_kctx_error(k, "too long");
  snprintf(dst, cap, "%s", s);
  return QSR_OK;
}
static int set_name(void *o, struct qsr_kctx *k) { return set_str(((struct sweep_load *)o)->sw->name, 64, k); }
static int set_base(void *o, struct qsr_kctx *k) { return set_str(((struct sweep_load *)o)->base, 256, k); }
static int set_quality(void *o, struct qsr_kctx *k) { return set_str(((struct sweep_load *)o)->quality, 64, k); }

#define CONS(name, f, lo, hi) { "constraints." name, QSR_K_CUSTOM, offsetof(struct qsr_constraints, f), lo, hi, NULL, set_cons, 0, NULL }
static int set_cons(void *o, struct qsr_kctx *k);
static const struct qsr_key sweep_keys[] = {
  { "name", QSR_K_CUSTOM, 0, 1, 0, NULL, set_name, QSR_KEY_REQUIRED, NULL },
  { "description", QSR_K_CUSTOM, 0, 1, 0, NULL, set_ignore, 0, NULL },
  { "base", QSR_K_CUSTOM, 0, 1, 0, NULL, set_base, 0, NULL },
  { "designs", QSR_K_CUSTOM, 0, 1, 0, NULL, set_designs, 0, NULL },
  { "quality", QSR_K_CUSTOM, 0, 1, 0, NULL, set_quality, 0, NULL },
  { "devices", QSR_K_CUSTOM, 0, 1, 0, NULL, set_devices, QSR_KEY_REQUIRED, NULL },
  { "models", QSR_K_CUSTOM, 0, 1, 0, NULL, set_models, QSR_KEY_REQUIRED, NULL },
  { "axes", QSR_K_CUSTOM, 0, 1, 0, NULL, set_axes, 0, NULL },
  { "constraints.fits", QSR_K_CUSTOM, 0, 1, 0, NULL, set_cons, 0, NULL },
  CONS("max_quality_loss", max_quality_loss, 0, 1e6), CONS("max_tpot_ms", max_tpot_ms, 0, 1e12),
  CONS("max_ttft_ms", max_ttft_ms, 0, 1e12), CONS("max_e2e_ms", max_e2e_ms, 0, 1e12),
  CONS("max_mem_mb", max_mem_mb, 0, 1e12), CONS("max_energy_j_per_token", max_energy_j_per_token, 0, 1e12),
  CONS("min_tokens_per_s", min_tokens_per_s, 0, 1e12),
  { "objectives", QSR_K_CUSTOM, 0, 1, 0, NULL, set_objectives, 0, NULL },
};
#define N_SWEEP_KEYS ((int)(sizeof sweep_keys / sizeof sweep_keys[0]))

static int set_cons(void *o, struct qsr_kctx *k) {
  struct qsr_constraints *c = &((struct sweep_load *)o)->sw->cons;
  if (!strcmp(k->path, "constraints.fits")) {
    const char *s = NULL;
    qsr_kctx_str(k, &s);
    if (s && !strcmp(s, "true")) c->fits = 1;
    else if (s && !strcmp(s, "false")) c->fits = 0;
    else return qsr_kctx_error(k, "expected true or false");
    return QSR_OK;
  }
  for (int r = 0; r < N_SWEEP_KEYS; r++)
    if (!strcmp(sweep_keys[r].path, k->path))
      return qsr_kctx_f64(k, sweep_keys[r].min, sweep_keys[r].max, (double *)((char *)c + sweep_keys[r].off));
  return qsr_kctx_error(k, "unknown constraint");
}

int qsr_sweep_load(const char *path, struct qsr_sweep *sw, char **err) {
  memset(sw, 0, sizeof *sw);
  char *text = qsr_spec_read_file(path, err);
  if (!text) return QSR_ERR_IO;
  return qsr_sweep_load_text(path, text, sw, err);  /* takes text */
}

int qsr_sweep_load_text(const char *path, char *text, struct qsr_sweep *sw, char **err) {
  struct sweep_load L;
  uint8_t seen[N_SWEEP_KEYS];
  memset(sw, 0, sizeof *sw);
  sw->text = text;
  memset(&L, 0, sizeof L);
  memset(seen, 0, sizeof seen);
  L.sw = sw;
  snprintf(L.quality, sizeof L.quality, "default");
  snprintf(sw->path, sizeof sw->path, "%s", path);
  sw->row_route = qsr_design_key_row("routing.mode");
  sw->row_prompt = qsr_design_key_row("runtime.prompt");
  int rc = qsr_spec_load_text(path, text, "sweep", sweep_keys, N_SWEEP_KEYS, &L, seen, err);
  if (rc) goto fail;
  if (!sw->n_obj) {  /* default objectives */
    sw->obj[0] = qsr_metric_find("tpot_ms");
    sw->obj[1] = qsr_metric_find("mem_peak_mb");
    sw->obj[2] = qsr_metric_find("quality_loss");
    sw->n_obj = 3;
  }
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)sw->text; *p; p++) h = (h ^ *p) * 1099511628211ull;
  snprintf(sw->hash, sizeof sw->hash, "%016llx", (unsigned long long)h);
  char rp[PATH_MAX];
  sw->n_dev = L.n_names[0];
  sw->n_model = L.n_names[1];
  for (int i = 0; i < sw->n_dev; i++)
    if ((rc = qsr_spec_resolve("devices", L.names[0][i], rp, sizeof rp, err)) || (rc = qsr_device_load(rp, &sw->devs[i], err)))
      goto fail_ctx;
  for (int i = 0; i < sw->n_model; i++)
    if ((rc = qsr_spec_resolve("models", L.names[1][i], rp, sizeof rp, err)) || (rc = qsr_model_load(rp, &sw->models[i], err)))
      goto fail_ctx;
  sw->use_quality = strcmp(L.quality, "none") != 0;
  if (sw->use_quality && ((rc = qsr_spec_resolve("quality", L.quality, rp, sizeof rp, err)) ||
                          (rc = qsr_quality_load(rp, &sw->quality, err))))
    goto fail_ctx;
  if (L.base[0] && L.n_names[2]) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: sweep: give base or designs, not both", path);
    goto fail;
  }
  if (L.base[0]) {
    snprintf(L.names[2][0], QSR_NAME_MAX, "%.*s", QSR_NAME_MAX - 1, L.base);
    L.n_names[2] = 1;
  }
  sw->n_design = L.n_names[2] ? L.n_names[2] : 1;
  sw->designs = malloc((size_t)sw->n_design * sizeof *sw->designs);
  sw->design_names = malloc((size_t)sw->n_design * sizeof *sw->design_names);
  if (!sw->designs || !sw->design_names) { rc = qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); goto fail; }
  for (int i = 0; i < sw->n_design; i++) {
    qsr_design_begin(&sw->designs[i], NULL);
    if (!L.n_names[2]) { snprintf(sw->design_names[i], QSR_NAME_MAX, "baseline"); continue; }
    const char *nm = L.names[2][i], *slash = strrchr(nm, '/');
    snprintf(sw->design_names[i], QSR_NAME_MAX, "%.*s", (int)strcspn(slash ? slash + 1 : nm, "."), slash ? slash + 1 : nm);
    if ((rc = qsr_spec_resolve("designs", nm, rp, sizeof rp, err)) || (rc = qsr_design_load(&sw->designs[i], rp, err)))
      goto fail_ctx;
  }
  sw->total = (uint64_t)sw->n_dev * (uint64_t)sw->n_model * (uint64_t)sw->n_design;
  for (int a = 0; a < sw->n_axes; a++) {
    if (sw->total > UINT64_MAX / 2 / (uint64_t)sw->axes[a].n) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: axes: more than 2^63 points", path);
      goto fail;
    }
    sw->total *= (uint64_t)sw->axes[a].n;
  }
  return QSR_OK;
fail_ctx:
  if (err && *err) {
    char *e = *err;
    *err = NULL;
    qsr_errf(err, rc, "%s: %s", path, e);
    free(e);
  }
fail:
  qsr_sweep_free(sw);
  return rc;
}
