/*
** design_spec.c -- configs/designs/NAME.yaml and --set key=value -> qsr_design.
**
** Sections: quant, attention, routing, runtime (and name, description).
** A precision given only in part is completed: bits alone -> format int
** (fp16 for 16, keeping the default format where it has those bits);
** format alone -> its natural bits; group defaults to 128 for sub-byte
** formats. Attention fractions not given: dense = 1 - local - topk.
*/
#include "costmodel/costmodel.h"
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "spec/spec.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const wfmt_names[] = { "fp16", "bf16", "fp8", "int", "int_sym", "log", "lut", NULL };
static const char *const act_names[] = { "fp16", "int8", "fp8", NULL };
static const char *const kv_names[] = { "fp16", "int8", "int4", NULL };
static const char *const sel_names[] = { "exact", "paged", NULL };
static const char *const route_names[] = { "none", "moe", "moefy", NULL };

static int set_ignore(void *obj, struct qsr_kctx *k) {
  const char *s;
  (void)obj;
  return qsr_kctx_str(k, &s);
}

static int set_layers(uint8_t *bitmap, struct qsr_kctx *k) {
  double v[QSR_MAX_LAYERS];
  int n;
  int rc = qsr_kctx_f64_list(k, 0, QSR_MAX_LAYERS - 1, v, QSR_MAX_LAYERS, &n);
  if (rc) return rc;
  memset(bitmap, 0, QSR_MAX_LAYERS);
  for (int i = 0; i < n; i++) {
    if (v[i] != floor(v[i])) return qsr_kctx_error(k, "layer indices must be integers");
    bitmap[(int)v[i]] = 1;
  }
  return QSR_OK;
}

static int set_dense_layers(void *obj, struct qsr_kctx *k) {
  return set_layers(((struct qsr_design *)obj)->dense_layer, k);
}

static int set_sensitive_layers(void *obj, struct qsr_kctx *k) {
  return set_layers(((struct qsr_design *)obj)->sensitive_layer, k);
}

static int set_popularity(void *obj, struct qsr_kctx *k) {
  struct qsr_design *d = obj;
  int rc = qsr_kctx_f64_list(k, 0, 1e12, d->popularity, QSR_MAX_EXPERTS, &d->n_popularity);
  if (rc) return rc;
  double s = 0;
  for (int i = 0; i < d->n_popularity; i++) s += d->popularity[i];
  if (d->n_popularity && s <= 0) return qsr_kctx_error(k, "popularities must not all be 0");
  for (int i = 0; i < d->n_popularity; i++) d->popularity[i] /= s;
  return QSR_OK;
}

#define DS(f) offsetof(struct qsr_design, f)
#define WQ(prefix, f)                                                                       \
  { prefix ".bits", QSR_K_INT, DS(f.bits), 2, 16, NULL, NULL, 0, "16, 8, 6, 5, 4, 3, 2" },  \
  { prefix ".format", QSR_K_ENUM, DS(f.fmt), 1, 0, wfmt_names, NULL, 0, "fp16 bf16 fp8 int int_sym log lut" }, \
  { prefix ".group", QSR_K_INT, DS(f.group), 0, 1 << 20, NULL, NULL, 0, "0 = per channel, or a multiple of 32" }

/* Row order matters: WQ rows come in (bits, format, group) triples, and
** the first three are quant.weights. */
static const struct qsr_key design_keys[] = {
  WQ("quant.weights", weights),
  WQ("quant.sensitive", sensitive),
  WQ("quant.layers.embedding", layer[QSR_LCLASS_EMBEDDING]),
  WQ("quant.layers.attn_qkv", layer[QSR_LCLASS_ATTN_QKV]),
  WQ("quant.layers.attn_out", layer[QSR_LCLASS_ATTN_OUT]),
  WQ("quant.layers.ffn_up", layer[QSR_LCLASS_FFN_UP]),
  WQ("quant.layers.ffn_gate", layer[QSR_LCLASS_FFN_GATE]),
  WQ("quant.layers.ffn_down", layer[QSR_LCLASS_FFN_DOWN]),
  WQ("quant.layers.experts", layer[QSR_LCLASS_EXPERTS]),
  WQ("quant.layers.router", layer[QSR_LCLASS_ROUTER]),
  WQ("quant.layers.lm_head", layer[QSR_LCLASS_LM_HEAD]),
  WQ("quant.layers.adaln", layer[QSR_LCLASS_ADALN]),
  { "quant.sensitive_layers", QSR_K_CUSTOM, 0, 1, 0, NULL, set_sensitive_layers, 0, "layers at quant.sensitive precision, e.g. [0, 31]" },
  { "quant.activations", QSR_K_ENUM, DS(act), 1, 0, act_names, NULL, 0, "fp16 int8 fp8" },
  { "quant.kv_cache", QSR_K_ENUM, DS(kv), 1, 0, kv_names, NULL, 0, "fp16 int8 int4" },
  { "attention.local", QSR_K_F64, DS(att_local), 0, 1, NULL, NULL, 0, "fraction of heads with a local window" },
  { "attention.topk", QSR_K_F64, DS(att_topk), 0, 1, NULL, NULL, 0, "fraction of heads with top-k selection" },
  { "attention.dense", QSR_K_F64, DS(att_dense), 0, 1, NULL, NULL, 0, "fraction of dense heads" },
  { "attention.window", QSR_K_INT, DS(window), 1, 1 << 24, NULL, NULL, 0, "local window (tokens)" },
  { "attention.k", QSR_K_INT, DS(topk), 1, 1 << 24, NULL, NULL, 0, "keys per query for top-k heads" },
  { "attention.selection", QSR_K_ENUM, DS(selection), 1, 0, sel_names, NULL, 0, "exact | paged" },
  { "attention.page", QSR_K_INT, DS(page), 1, 1 << 16, NULL, NULL, 0, "page size for paged selection" },
  { "attention.dense_layers", QSR_K_CUSTOM, 0, 1, 0, NULL, set_dense_layers, 0, "layers kept dense, e.g. [0, 31]" },
  { "routing.mode", QSR_K_ENUM, DS(route), 1, 0, route_names, NULL, 0, "none | moe | moefy" },
  { "routing.experts", QSR_K_INT, DS(experts), 1, QSR_MAX_EXPERTS, NULL, NULL, 0, "experts per layer (moefy)" },
  { "routing.top_k", QSR_K_INT, DS(top_k), 1, QSR_MAX_EXPERTS, NULL, NULL, 0, "experts per token" },
  { "routing.capacity", QSR_K_F64, DS(capacity), 0, 1024, NULL, NULL, 0, "capacity factor, 0 = unlimited" },
  { "routing.dynamic", QSR_K_BOOL, DS(dynamic), 1, 0, NULL, NULL, 0, "token-complexity-driven k" },
  { "routing.k_min", QSR_K_INT, DS(k_min), 1, QSR_MAX_EXPERTS, NULL, NULL, 0, NULL },
  { "routing.k_max", QSR_K_INT, DS(k_max), 1, QSR_MAX_EXPERTS, NULL, NULL, 0, NULL },
  { "routing.complexity_alpha", QSR_K_F64, DS(cx_alpha), 0.01, 1000, NULL, NULL, 0, "token complexity ~ Beta(alpha, beta)" },
  { "routing.complexity_beta", QSR_K_F64, DS(cx_beta), 0.01, 1000, NULL, NULL, 0, NULL },
  { "routing.popularity", QSR_K_CUSTOM, 0, 1, 0, NULL, set_popularity, 0, "per-expert popularity (normalised)" },
  { "runtime.batch", QSR_K_INT, DS(batch), 1, 1 << 20, NULL, NULL, 0, "sequences (or images) per batch" },
  { "runtime.prompt", QSR_K_INT, DS(prompt), 0, 1 << 24, NULL, NULL, 0, "prompt tokens" },
  { "runtime.gen", QSR_K_INT, DS(gen), 0, 1 << 24, NULL, NULL, 0, "generated tokens" },
  { "runtime.steps", QSR_K_INT, DS(steps), 1, 100000, NULL, NULL, 0, "denoising steps (diffusion)" },
  { "runtime.power_mode", QSR_K_STR, DS(power_mode), 1, 0, NULL, NULL, 0, "a power mode of the device" },
  { "name", QSR_K_CUSTOM, 0, 1, 0, NULL, set_ignore, 0, NULL },
  { "description", QSR_K_CUSTOM, 0, 1, 0, NULL, set_ignore, 0, NULL },
};
#define N_DESIGN_KEYS ((int)(sizeof design_keys / sizeof design_keys[0]))
_Static_assert(N_DESIGN_KEYS <= 256, "qsr_design_builder.seen too small");

const struct qsr_key *qsr_design_keys(int *n) {
  *n = N_DESIGN_KEYS;
  return design_keys;
}

int qsr_design_key_row(const char *path) {
  for (int r = 0; r < N_DESIGN_KEYS; r++)
    if (!strcmp(design_keys[r].path, path)) return r;
  return -1;
}

static int row_of(const char *path) {
  int r = qsr_design_key_row(path);
  QSR_ASSERT(r >= 0);
  return r;
}

int qsr_design_patch_make(const char *key, const char *val, struct qsr_patch *p, char **err) {
  static const struct qsr_model none;  /* patches are model-independent */
  struct qsr_design_builder *b = malloc(sizeof *b);
  if (!b) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
  memset(p, 0, sizeof *p);
  p->row = qsr_design_key_row(key);
  int rc = QSR_OK;
  if (p->row < 0 || !strcmp(key, "name") || !strcmp(key, "description")) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: unknown design key (qsr list keys shows them)", key);
    goto out;
  }
  char assign[256];
  if ((size_t)snprintf(assign, sizeof assign, "%s=%s", key, val) >= sizeof assign) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: value too long", key);
    goto out;
  }
  qsr_design_begin(b, &none);
  if ((rc = qsr_design_set(b, assign, err))) goto out;
  const struct qsr_key *k = &design_keys[p->row];
  const char *at = (const char *)&b->d + k->off;
  switch (k->type) {
  case QSR_K_F64: p->num = *(const double *)at; break;
  case QSR_K_INT: case QSR_K_BOOL: case QSR_K_ENUM: p->num = *(const int *)at; break;
  case QSR_K_STR: snprintf(p->text, sizeof p->text, "%s", at); break;
  default:
    if (strlen(val) >= sizeof p->text) { rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: value too long", key); goto out; }
    snprintf(p->text, sizeof p->text, "%s", val);
  }
out:
  free(b);
  return rc;
}

void qsr_design_patch_apply(struct qsr_design_builder *b, const struct qsr_patch *p) {
  const struct qsr_key *k = &design_keys[p->row];
  char *at = (char *)&b->d + k->off;
  switch (k->type) {
  case QSR_K_F64: *(double *)at = p->num; break;
  case QSR_K_INT: case QSR_K_BOOL: case QSR_K_ENUM: *(int *)at = (int)p->num; break;
  case QSR_K_STR: snprintf(at, QSR_NAME_MAX, "%.*s", QSR_NAME_MAX - 1, p->text); break;
  default: {
    char assign[256], *err = NULL;
    snprintf(assign, sizeof assign, "%s=%s", k->path, p->text);
    int rc = qsr_design_set(b, assign, &err);  /* validated by patch_make */
    QSR_ASSERT(rc == QSR_OK);
    free(err);
    return;
  }
  }
  b->seen[p->row] = 1;
}

static void layers_text(const uint8_t *bm, char *text, size_t cap) {
  size_t u = 0;
  const uint8_t *first = memchr(bm, 1, QSR_MAX_LAYERS);
  if (!first) { snprintf(text, cap, "[]"); return; }
  text[u++] = '[';
  for (int l = 0; l < QSR_MAX_LAYERS && u + 8 < cap; l++)
    if (bm[l]) u += (size_t)snprintf(text + u, cap - u, "%s%d", text[u - 1] == '[' ? "" : ",", l);
  snprintf(text + u, cap - u, "]");
}

int qsr_design_knob(const struct qsr_design *d, int row, double *num, const char **name, char *text, size_t cap) {
  const struct qsr_key *k = &design_keys[row];
  const char *at = (const char *)d + k->off;
  if (k->off >= offsetof(struct qsr_design, layer) && k->off < offsetof(struct qsr_design, layer) + sizeof d->layer &&
      k->type != QSR_K_CUSTOM) {
    size_t cls = (k->off - offsetof(struct qsr_design, layer)) / sizeof(struct qsr_wq);
    if (!d->layer[cls].bits) return 3;
  }
  switch (k->type) {
  case QSR_K_F64: *num = *(const double *)at; return 0;
  case QSR_K_INT: case QSR_K_BOOL: *num = *(const int *)at; return 0;
  case QSR_K_ENUM: *name = k->names[*(const int *)at]; return 2;
  case QSR_K_STR: snprintf(text, cap, "%s", at); return 1;
  default:
    if (k->set == set_dense_layers) { layers_text(d->dense_layer, text, cap); return 1; }
    if (k->set == set_sensitive_layers) { layers_text(d->sensitive_layer, text, cap); return 1; }
    return -1;
  }
}

void qsr_design_begin(struct qsr_design_builder *b, const struct qsr_model *m) {
  memset(b, 0, sizeof *b);
  qsr_design_baseline(m, &b->d);
}

int qsr_design_load(struct qsr_design_builder *b, const char *path, char **err) {
  uint8_t seen[N_DESIGN_KEYS];
  memset(seen, 0, sizeof seen);
  int rc = qsr_spec_load(path, NULL, design_keys, N_DESIGN_KEYS, &b->d, seen, err);
  for (int r = 0; r < N_DESIGN_KEYS; r++) b->seen[r] |= seen[r];
  return rc;
}

int qsr_design_set(struct qsr_design_builder *b, const char *assignment, char **err) {
  return qsr_spec_set(assignment, design_keys, N_DESIGN_KEYS, &b->d, b->seen, err);
}

static int natural_bits(int fmt, int fallback) {
  switch (fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16: return 16;
  case QSR_WFMT_FP8: return 8;
  default: return fallback >= 2 && fallback <= 8 ? fallback : 4;
  }
}

/* Completes a precision triple whose rows start at r0 (bits, fmt, group). */
static int finish_wq(struct qsr_design_builder *b, int r0, const struct qsr_wq *base, int is_override, char **err) {
  struct qsr_wq *w = (struct qsr_wq *)((char *)&b->d + design_keys[r0 + 1].off - offsetof(struct qsr_wq, fmt));
  int sb = b->seen[r0], sf = b->seen[r0 + 1], sg = b->seen[r0 + 2];
  if (is_override && !sb && !sf && !sg) { w->bits = 0; return QSR_OK; }
  if (!sb && !sf) { w->fmt = base->fmt; w->bits = base->bits; }
  else if (sb && !sf) {
    if (w->bits == 16) w->fmt = (base->fmt == QSR_WFMT_BF16) ? QSR_WFMT_BF16 : QSR_WFMT_FP16;
    else if (qsr_qformat_valid(base->fmt, w->bits, 0) && base->bits != 16) w->fmt = base->fmt;
    else w->fmt = QSR_WFMT_INT;
  } else if (!sb && sf) {
    w->bits = natural_bits(w->fmt, base->bits);
  }
  if (!sg) {
    if (w->fmt == QSR_WFMT_FP16 || w->fmt == QSR_WFMT_BF16 || w->fmt == QSR_WFMT_FP8) w->group = 0;
    else w->group = base->group ? base->group : 128;
  }
  if (!qsr_qformat_valid(w->fmt, w->bits, w->group)) {
    const char *p = design_keys[r0].path;
    int plen = (int)(strrchr(p, '.') - p);
    if (w->group % QSR_QBLOCK)
      return qsr_errf(err, QSR_ERR_CONFIG, "%.*s.group: %d must be 0 or a multiple of %d", plen, p, w->group, QSR_QBLOCK);
    return qsr_errf(err, QSR_ERR_CONFIG, "%.*s: %d-bit %s is not a supported format (fp16/bf16: 16; fp8: 8; int, int_sym, log, lut: 8, 6, 5, 4, 3, 2)",
                    plen, p, w->bits, qsr_wfmt_tab[w->fmt].name);
  }
  return QSR_OK;
}

int qsr_design_finish(struct qsr_design_builder *b, const struct qsr_model *m, char **err) {
  struct qsr_design *d = &b->d;
  int rc;
  struct qsr_wq fp16 = { QSR_WFMT_FP16, 16, 0 };
  if ((rc = finish_wq(b, 0, &fp16, 0, err))) return rc;
  struct qsr_wq int8 = { QSR_WFMT_INT, 8, d->weights.group };
  if ((rc = finish_wq(b, 3, &int8, 0, err))) return rc;
  for (int r = 6; r + 2 < N_DESIGN_KEYS && !strncmp(design_keys[r].path, "quant.layers.", 13); r += 3)
    if ((rc = finish_wq(b, r, &d->weights, 1, err))) return rc;
  if (!b->seen[row_of("attention.dense")]) {
    d->att_dense = 1 - d->att_local - d->att_topk;
    if (d->att_dense < -1e-9)
      return qsr_errf(err, QSR_ERR_CONFIG, "attention: local %g + topk %g exceed 1", d->att_local, d->att_topk);
    if (d->att_dense < 0) d->att_dense = 0;
  }
  if (b->seen[row_of("routing.experts")] && !b->seen[row_of("routing.mode")] && m->experts == 0)
    d->route = QSR_ROUTE_MOEFY;
  if (d->dynamic && !b->seen[row_of("routing.k_max")]) d->k_max = 0;
  if ((rc = qsr_design_check(m, d, err))) return rc;
  /* record the routing actually used, so results show real numbers */
  if (d->route == QSR_ROUTE_MOE) {
    d->experts = m->experts;
    if (!d->top_k) d->top_k = m->top_k;
  } else if (d->route == QSR_ROUTE_MOEFY) {
    if (!d->experts) d->experts = 8;
    if (!d->top_k) d->top_k = 2;
  }
  if (d->dynamic && !d->k_max) d->k_max = d->top_k;
  return QSR_OK;
}
