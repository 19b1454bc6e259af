/*
** deploy.c -- write and re-read deployment configs (docs/deploy.md).
**
** A deployment config names, per layer, the precision of every weight
** class with the kernel variant that runs it in prefill and decode, the
** type of every attention head with its kernels, and the routing; plus the
** predicted metrics and where the choice came from. --check re-reads it,
** validates it against the model and rebuilds the design it describes.
*/
#include "spec/deploy.h"

#include "costmodel/costmodel.h"
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "kernels/variants.h"
#include "spec/spec.h"
#include "util/err.h"
#include "util/version.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

static const char *const act_names[] = { "fp16", "int8", "fp8" };
static const char *const route_names[] = { "none", "moe", "moefy" };
static const char *const sel_names[] = { "exact", "paged" };
static const char *const ht_names[] = { "dense", "topk", "local" };

static void put_wq(FILE *f, const char *cls, struct qsr_wq w, int prefill_tokens, int decode_tokens) {
  fprintf(f, "        %-10s { format: %s, bits: %d, group: %d, prefill: %s, decode: %s }\n", cls,
          qsr_wfmt_tab[w.fmt].name, w.bits, w.group, qsr_kvariant_name(qsr_kvariant_linear(w.fmt, prefill_tokens)),
          qsr_kvariant_name(qsr_kvariant_linear(w.fmt, decode_tokens)));
}

static void put_range(FILE *f, const char *name, int lo, int n, int *first) {
  if (n <= 0) return;
  fprintf(f, "%s%s: \"%d-%d\"", *first ? "" : ", ", name, lo, lo + n - 1);
  *first = 0;
}

int qsr_deploy_write(FILE *f, const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                     const struct qsr_result *r, const struct qsr_provenance *pv, char **err) {
  char ts[32];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int dit = m->family == QSR_FAMILY_DIT;
  int prefill_tokens = d->batch * (dit ? m->dit_tokens : d->prompt), decode_tokens = d->batch;
  if (dit) decode_tokens = prefill_tokens;
  int gated = m->ffn_act == QSR_FFNACT_SWIGLU;
  fprintf(f, "# qsr deployment config (schema: docs/deploy.md), written by qsr %s at %s.\n", QSR_VERSION, ts);
  fprintf(f, "# Check it with: qsr deploy --check FILE\n");
  fprintf(f, "deploy:\n  version: 1\n  model: %s\n  device: %s\n", m->name, dev->name);
  fprintf(f, "  provenance:\n    database: \"%s\"\n    sweep: %s\n    sweep_hash: \"%s\"\n    point: %lld\n"
             "    pick: %s\n    qsr_version: %s\n    written_at: %s\n",
          pv->database, pv->sweep, pv->sweep_hash, (long long)pv->point, pv->pick, QSR_VERSION, ts);
  fprintf(f, "  runtime: { batch: %d, prompt: %d, gen: %d, steps: %d, power_mode: \"%s\" }\n", d->batch, d->prompt,
          d->gen, d->steps, d->power_mode);
  fprintf(f, "  activations: %s\n  kv_cache: %s\n", act_names[d->act], qsr_kvfmt_names[d->kv]);
  fprintf(f, "  routing: { mode: %s, experts: %d, top_k: %d, capacity: %g, dynamic: %s, k_min: %d, k_max: %d }\n",
          route_names[d->route], d->experts, d->top_k, d->capacity, d->dynamic ? "true" : "false", d->k_min, d->k_max);
  fprintf(f, "  predicted: { prefill_ms: %.6g, ttft_ms: %.6g, tpot_ms: %.6g, e2e_ms: %.6g, tokens_per_s: %.6g,\n"
             "               mem_weights_mb: %.6g, mem_kv_mb: %.6g, mem_peak_mb: %.6g, fits: %s,\n"
             "               energy_j_per_token: %.6g, quality_loss: %.6g, avg_weight_bits: %.6g }\n",
          r->prefill_ms, r->ttft_ms, r->tpot_ms, r->e2e_ms, r->tokens_per_s, r->mem_weights_mb, r->mem_kv_mb,
          r->mem_peak_mb, r->fits ? "true" : "false", r->energy_j_per_token, r->quality_loss, r->avg_weight_bits);
  struct qsr_wq we = qsr_wq_resolve(d, QSR_LCLASS_EMBEDDING, 0);
  struct qsr_wq wh = m->tie_embeddings ? we : qsr_wq_resolve(d, QSR_LCLASS_LM_HEAD, 0);
  fprintf(f, "  global:\n    weights:\n");
  fprintf(f, "        %-10s { format: %s, bits: %d, group: %d, prefill: embedding, decode: embedding }\n", "embedding:",
          qsr_wfmt_tab[we.fmt].name, we.bits, we.group);
  put_wq(f, "lm_head:", wh, dit ? prefill_tokens : d->batch, dit ? prefill_tokens : d->batch);
  fprintf(f, "  layers:\n");
  const char *norm = m->norm == QSR_NORM_LAYER ? "layernorm_add" : "rmsnorm_add";
  for (int l = 0; l < m->layers; l++) {
    int sens = d->sensitive_layer[l], dense = d->dense_layer[l];
    fprintf(f, "    - layer: %d\n      sensitive: %s\n      weights:\n", l, sens ? "true" : "false");
    put_wq(f, "attn_qkv:", qsr_wq_resolve(d, QSR_LCLASS_ATTN_QKV, sens), prefill_tokens, decode_tokens);
    put_wq(f, "attn_out:", qsr_wq_resolve(d, QSR_LCLASS_ATTN_OUT, sens), prefill_tokens, decode_tokens);
    if (dit && m->dit_adaln) put_wq(f, "adaln:", qsr_wq_resolve(d, QSR_LCLASS_ADALN, sens), d->batch, d->batch);
    if (d->route == QSR_ROUTE_NONE) {
      put_wq(f, "ffn_up:", qsr_wq_resolve(d, QSR_LCLASS_FFN_UP, sens), prefill_tokens, decode_tokens);
      if (gated) put_wq(f, "ffn_gate:", qsr_wq_resolve(d, QSR_LCLASS_FFN_GATE, sens), prefill_tokens, decode_tokens);
      put_wq(f, "ffn_down:", qsr_wq_resolve(d, QSR_LCLASS_FFN_DOWN, sens), prefill_tokens, decode_tokens);
    } else {
      put_wq(f, "router:", qsr_wq_resolve(d, QSR_LCLASS_ROUTER, sens), prefill_tokens, decode_tokens);
      int own = d->layer[QSR_LCLASS_EXPERTS].bits || sens;
      struct qsr_wq wu = qsr_wq_resolve(d, own ? QSR_LCLASS_EXPERTS : QSR_LCLASS_FFN_UP, sens);
      struct qsr_wq wg = qsr_wq_resolve(d, own ? QSR_LCLASS_EXPERTS : QSR_LCLASS_FFN_GATE, sens);
      struct qsr_wq wd = qsr_wq_resolve(d, own ? QSR_LCLASS_EXPERTS : QSR_LCLASS_FFN_DOWN, sens);
      fprintf(f, "        %-10s { format: %s, bits: %d, group: %d, prefill: moe_experts_gemm, decode: moe_experts_gemv }\n",
              "expert_up:", qsr_wfmt_tab[wu.fmt].name, wu.bits, wu.group);
      if (gated)
        fprintf(f, "        %-10s { format: %s, bits: %d, group: %d, prefill: moe_experts_gemm, decode: moe_experts_gemv }\n",
                "expert_gate:", qsr_wfmt_tab[wg.fmt].name, wg.bits, wg.group);
      fprintf(f, "        %-10s { format: %s, bits: %d, group: %d, prefill: moe_experts_gemm, decode: moe_experts_gemv }\n",
              "expert_down:", qsr_wfmt_tab[wd.fmt].name, wd.bits, wd.group);
    }
    int n[3], first = 1;
    qsr_head_counts(m, d, dense, n);
    fprintf(f, "      attention:\n        heads: { ");
    put_range(f, "dense", 0, n[0], &first);
    put_range(f, "topk", n[0], n[1], &first);
    put_range(f, "local", n[0] + n[1], n[2], &first);
    fprintf(f, " }\n        window: %d\n        k: %d\n        selection: %s\n        page: %d\n", d->window, d->topk,
            sel_names[d->selection], d->page);
    for (int ph = 0; ph < 2; ph++) {
      fprintf(f, "        %s: { ", ph ? "decode" : "prefill");
      int fst = 1;
      for (int h = 0; h < 3; h++)
        if (n[h]) {
          fprintf(f, "%s%s: %s", fst ? "" : ", ", ht_names[h],
                  qsr_kvariant_name(qsr_kvariant_attention(h, d->selection == QSR_SEL_PAGED, ph)));
          fst = 0;
        }
      fprintf(f, " }\n");
    }
    fprintf(f, "      norm: %s\n      ffn_act: %s\n", norm, gated ? "silu_gate" : "gelu");
  }
  if (ferror(f)) return qsr_errf(err, QSR_ERR_IO, "write failed: %s", strerror(errno));
  return QSR_OK;
}

/* ---- reading back ------------------------------------------------------- */

struct rd {
  const char *path;
  yaml_document_t doc;
  char **err;
};

static int rd_fail(struct rd *r, yaml_node_t *n, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int rd_fail(struct rd *r, yaml_node_t *n, const char *key, const char *fmt, ...) {
  char msg[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n) return qsr_errf(r->err, QSR_ERR_CONFIG, "%s:%zu:%zu: %s: %s", r->path, n->start_mark.line + 1, n->start_mark.column + 1, key, msg);
  return qsr_errf(r->err, QSR_ERR_CONFIG, "%s: %s: %s", r->path, key, msg);
}

static yaml_node_t *get(struct rd *r, yaml_node_t *map, const char *key) {
  if (!map || map->type != YAML_MAPPING_NODE) return NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
    if (k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
      return yaml_document_get_node(&r->doc, p->value);
  }
  return NULL;
}

static const char *str(yaml_node_t *n) { return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL; }

static int need_str(struct rd *r, yaml_node_t *map, const char *key, const char **out) {
  *out = str(get(r, map, key));
  if (!*out) return rd_fail(r, map, key, "missing or not a scalar");
  return QSR_OK;
}

static int need_num(struct rd *r, yaml_node_t *map, const char *key, double *out) {
  const char *s;
  int rc = need_str(r, map, key, &s);
  if (rc) return rc;
  char *end;
  *out = strtod(s, &end);
  if (*end) return rd_fail(r, get(r, map, key), key, "expected a number, got '%s'", s);
  return QSR_OK;
}

static int enum_of(const char *s, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (s && !strcmp(s, names[i])) return i;
  return -1;
}

/* One weight entry: format, bits, group and the kernels that must match. */
static int read_wq(struct rd *r, yaml_node_t *w, const char *cls, int expert, int prefill_tokens, int decode_tokens,
                   struct qsr_wq *out) {
  yaml_node_t *e = get(r, w, cls);
  if (!e) return rd_fail(r, w, cls, "missing weight class");
  const char *fmt, *kp, *kd;
  double bits, group;
  int rc;
  if ((rc = need_str(r, e, "format", &fmt)) || (rc = need_num(r, e, "bits", &bits)) || (rc = need_num(r, e, "group", &group)) ||
      (rc = need_str(r, e, "prefill", &kp)) || (rc = need_str(r, e, "decode", &kd)))
    return rc;
  int f = qsr_wfmt_from_name(fmt);
  if (f < 0 || !qsr_qformat_valid(f, (int)bits, (int)group))
    return rd_fail(r, e, cls, "%s %g-bit group %g is not a packed format of kernels/qformat.h", fmt, bits, group);
  const char *want_p, *want_d;
  if (expert) { want_p = "moe_experts_gemm"; want_d = "moe_experts_gemv"; }
  else if (!strcmp(cls, "embedding")) { want_p = want_d = "embedding"; }
  else {
    want_p = qsr_kvariant_name(qsr_kvariant_linear(f, prefill_tokens));
    want_d = qsr_kvariant_name(qsr_kvariant_linear(f, decode_tokens));
  }
  if (qsr_kvariant_find(kp) < 0 || strcmp(kp, want_p))
    return rd_fail(r, e, cls, "prefill kernel '%s': expected %s for %s weights", kp, want_p, fmt);
  if (qsr_kvariant_find(kd) < 0 || strcmp(kd, want_d))
    return rd_fail(r, e, cls, "decode kernel '%s': expected %s for %s weights", kd, want_d, fmt);
  *out = (struct qsr_wq){ f, (int)bits, (int)group };
  return QSR_OK;
}

static int same_wq(struct qsr_wq a, struct qsr_wq b) { return a.fmt == b.fmt && a.bits == b.bits && a.group == b.group; }

/* "8-15" -> lo 8, n 8 */
static int parse_range(const char *s, int *lo, int *n) {
  int a, b;
  char tail;
  if (!s || sscanf(s, "%d-%d%c", &a, &b, &tail) != 2 || a < 0 || b < a) return -1;
  *lo = a;
  *n = b - a + 1;
  return 0;
}

int qsr_deploy_check(const char *path, struct qsr_deploy_info *info, char **err) {
  struct rd r;
  memset(&r, 0, sizeof r);
  r.path = path;
  r.err = err;
  FILE *fp = fopen(path, "rb");
  if (!fp) return qsr_errf(err, QSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  yaml_parser_t ps;
  yaml_parser_initialize(&ps);
  yaml_parser_set_input_file(&ps, fp);
  int rc = QSR_OK, have = 0;
  struct qsr_model m;
  if (!yaml_parser_load(&ps, &r.doc)) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s", path, ps.problem_mark.line + 1,
                  ps.problem_mark.column + 1, ps.problem ? ps.problem : "parse error");
    goto out;
  }
  have = 1;
  memset(info, 0, sizeof *info);
  yaml_node_t *root = get(&r, yaml_document_get_root_node(&r.doc), "deploy");
  if (!root || root->type != YAML_MAPPING_NODE) { rc = rd_fail(&r, NULL, "deploy", "missing top-level mapping"); goto out; }
  const char *mname, *dname, *s;
  char mp[PATH_MAX];
  if ((rc = need_str(&r, root, "model", &mname)) || (rc = need_str(&r, root, "device", &dname))) goto out;
  snprintf(info->model, sizeof info->model, "%s", mname);
  snprintf(info->device, sizeof info->device, "%s", dname);
  if ((rc = qsr_spec_resolve("models", mname, mp, sizeof mp, err)) || (rc = qsr_model_load(mp, &m, err))) goto out;
  if ((rc = qsr_spec_resolve("devices", dname, mp, sizeof mp, err))) goto out;
  struct qsr_design *d = &info->d;
  qsr_design_baseline(&m, d);
  yaml_node_t *rt = get(&r, root, "runtime"), *ro = get(&r, root, "routing"), *pr = get(&r, root, "predicted");
  double v;
  if ((rc = need_num(&r, rt, "batch", &v))) goto out;
  d->batch = (int)v;
  if ((rc = need_num(&r, rt, "prompt", &v))) goto out;
  d->prompt = (int)v;
  if ((rc = need_num(&r, rt, "gen", &v))) goto out;
  d->gen = (int)v;
  if ((rc = need_num(&r, rt, "steps", &v))) goto out;
  d->steps = (int)v;
  if ((s = str(get(&r, rt, "power_mode")))) snprintf(d->power_mode, sizeof d->power_mode, "%s", s);
  if ((rc = need_str(&r, root, "activations", &s))) goto out;
  if ((d->act = enum_of(s, act_names, 3)) < 0) { rc = rd_fail(&r, get(&r, root, "activations"), "activations", "unknown '%s'", s); goto out; }
  if ((rc = need_str(&r, root, "kv_cache", &s))) goto out;
  if ((d->kv = qsr_kvfmt_from_name(s)) < 0) { rc = rd_fail(&r, get(&r, root, "kv_cache"), "kv_cache", "unknown '%s'", s); goto out; }
  if ((rc = need_str(&r, ro, "mode", &s))) goto out;
  if ((d->route = enum_of(s, route_names, 3)) < 0) { rc = rd_fail(&r, ro, "routing.mode", "unknown '%s'", s); goto out; }
  if ((rc = need_num(&r, ro, "experts", &v))) goto out;
  d->experts = (int)v;
  if ((rc = need_num(&r, ro, "top_k", &v))) goto out;
  d->top_k = (int)v;
  if ((rc = need_num(&r, ro, "capacity", &d->capacity))) goto out;
  d->dynamic = str(get(&r, ro, "dynamic")) && !strcmp(str(get(&r, ro, "dynamic")), "true");
  if ((rc = need_num(&r, ro, "k_min", &v))) goto out;
  d->k_min = (int)v;
  if ((rc = need_num(&r, ro, "k_max", &v))) goto out;
  d->k_max = (int)v;
  if ((rc = need_num(&r, pr, "tpot_ms", &info->tpot_ms)) || (rc = need_num(&r, pr, "mem_peak_mb", &info->mem_peak_mb)) ||
      (rc = need_num(&r, pr, "quality_loss", &info->quality_loss)))
    goto out;
  int dit = m.family == QSR_FAMILY_DIT, gated = m.ffn_act == QSR_FFNACT_SWIGLU;
  int pt = d->batch * (dit ? m.dit_tokens : d->prompt), dt = dit ? pt : d->batch;
  yaml_node_t *gw = get(&r, get(&r, root, "global"), "weights");
  struct qsr_wq w;
  if ((rc = read_wq(&r, gw, "embedding", 0, pt, dt, &w))) goto out;
  d->layer[QSR_LCLASS_EMBEDDING] = w;
  d->weights = w;
  if ((rc = read_wq(&r, gw, "lm_head", 0, dit ? pt : d->batch, dit ? pt : d->batch, &w))) goto out;
  d->layer[QSR_LCLASS_LM_HEAD] = w;
  yaml_node_t *layers = get(&r, root, "layers");
  if (!layers || layers->type != YAML_SEQUENCE_NODE) { rc = rd_fail(&r, root, "layers", "expected a list"); goto out; }
  int nl = (int)(layers->data.sequence.items.top - layers->data.sequence.items.start);
  if (nl != m.layers) { rc = rd_fail(&r, layers, "layers", "%d layers, but %s has %d", nl, m.name, m.layers); goto out; }
  int have_plain = 0, have_sens = 0, have_sparse = 0;
  static const struct { const char *name; int cls; } cls_tab[] = {
    { "attn_qkv", QSR_LCLASS_ATTN_QKV }, { "attn_out", QSR_LCLASS_ATTN_OUT }, { "adaln", QSR_LCLASS_ADALN },
    { "ffn_up", QSR_LCLASS_FFN_UP }, { "ffn_gate", QSR_LCLASS_FFN_GATE }, { "ffn_down", QSR_LCLASS_FFN_DOWN },
    { "router", QSR_LCLASS_ROUTER }, { "expert_up", QSR_LCLASS_EXPERTS }, { "expert_gate", QSR_LCLASS_EXPERTS },
    { "expert_down", QSR_LCLASS_EXPERTS },
  };
  struct qsr_wq plain[10], sensw[10];
  for (int l = 0; l < nl; l++) {
    yaml_node_t *L = yaml_document_get_node(&r.doc, layers->data.sequence.items.start[l]);
    char key[48];
    snprintf(key, sizeof key, "layers[%d]", l);
    if ((rc = need_num(&r, L, "layer", &v))) goto out;
    if ((int)v != l) { rc = rd_fail(&r, L, key, "layer %g out of order (expected %d)", v, l); goto out; }
    int sens = str(get(&r, L, "sensitive")) && !strcmp(str(get(&r, L, "sensitive")), "true");
    d->sensitive_layer[l] = (uint8_t)sens;
    yaml_node_t *W = get(&r, L, "weights");
    struct qsr_wq cur[10];
    for (int c = 0; c < 10; c++) {
      const char *nm = cls_tab[c].name;
      int needed = (c < 2) || (c == 2 && dit && m.dit_adaln) ||
                   (d->route == QSR_ROUTE_NONE && (c == 3 || c == 5 || (c == 4 && gated))) ||
                   (d->route != QSR_ROUTE_NONE && (c == 6 || c == 7 || c == 9 || (c == 8 && gated)));
      cur[c] = (struct qsr_wq){ 0, 0, 0 };
      if (!needed) {
        if (get(&r, W, nm)) { rc = rd_fail(&r, get(&r, W, nm), nm, "not a weight of this model and routing"); goto out; }
        continue;
      }
      if ((rc = read_wq(&r, W, nm, c >= 7, pt, dt, &cur[c]))) goto out;
    }
    struct qsr_wq *ref = sens ? sensw : plain;
    int *seen = sens ? &have_sens : &have_plain;
    if (!*seen) { memcpy(ref, cur, sizeof cur); *seen = 1; }
    else
      for (int c = 0; c < 10; c++)
        if (!same_wq(ref[c], cur[c])) {
          rc = rd_fail(&r, get(&r, W, cls_tab[c].name), cls_tab[c].name,
                       "differs from the other %s layers; qsr can re-predict only uniform %s layers",
                       sens ? "sensitive" : "non-sensitive", sens ? "sensitive" : "non-sensitive");
          goto out;
        }
    yaml_node_t *A = get(&r, L, "attention");
    yaml_node_t *H = get(&r, A, "heads");
    if (!H || H->type != YAML_MAPPING_NODE) { rc = rd_fail(&r, A, "attention.heads", "missing"); goto out; }
    int cnt[3] = { 0, 0, 0 }, next = 0;
    for (int h = 0; h < 3; h++) {
      const char *rs = str(get(&r, H, ht_names[h]));
      if (!rs) continue;
      int lo, n;
      if (parse_range(rs, &lo, &n)) { rc = rd_fail(&r, get(&r, H, ht_names[h]), ht_names[h], "expected \"FIRST-LAST\""); goto out; }
      if (lo != next) { rc = rd_fail(&r, H, "attention.heads", "heads must be numbered dense, topk, local without gaps (expected %d, got %d)", next, lo); goto out; }
      cnt[h] = n;
      next += n;
      for (int ph = 0; ph < 2; ph++) {
        const char *kn = str(get(&r, get(&r, A, ph ? "decode" : "prefill"), ht_names[h]));
        if ((rc = need_str(&r, A, "selection", &s))) goto out;
        int paged = !strcmp(s, "paged");
        const char *want = qsr_kvariant_name(qsr_kvariant_attention(h, paged, ph));
        if (!kn || strcmp(kn, want)) {
          rc = rd_fail(&r, A, ph ? "attention.decode" : "attention.prefill", "%s heads need kernel %s, got %s", ht_names[h], want, kn ? kn : "none");
          goto out;
        }
        d->selection = paged;
      }
    }
    if (next != m.heads) { rc = rd_fail(&r, H, "attention.heads", "%d heads assigned, %s has %d", next, m.name, m.heads); goto out; }
    if ((rc = need_num(&r, A, "window", &v))) goto out;
    d->window = (int)v;
    if ((rc = need_num(&r, A, "k", &v))) goto out;
    d->topk = (int)v;
    if ((rc = need_num(&r, A, "page", &v))) goto out;
    d->page = (int)v;
    if (cnt[0] == m.heads) d->dense_layer[l] = 1;
    else if (!have_sparse) {
      have_sparse = 1;
      d->att_topk = (double)cnt[1] / m.heads;
      d->att_local = (double)cnt[2] / m.heads;
      d->att_dense = 1 - d->att_topk - d->att_local;
    }
    const char *nm;
    if ((rc = need_str(&r, L, "norm", &nm)) || qsr_kvariant_find(nm) < 0) {
      if (!rc) rc = rd_fail(&r, get(&r, L, "norm"), "norm", "unknown kernel '%s'", nm);
      goto out;
    }
  }
  if (!have_sparse) {  /* all layers dense: nothing to keep dense explicitly */
    memset(d->dense_layer, 0, sizeof d->dense_layer);
    d->att_dense = 1;
    d->att_local = d->att_topk = 0;
  }
  for (int c = 0; c < 10; c++) {
    if (!have_plain || !plain[c].bits) continue;
    if (cls_tab[c].cls == QSR_LCLASS_EXPERTS) {
      int map = c == 7 ? 3 : c == 8 ? 4 : 5;  /* expert matrices carry over as the ffn rules */
      d->layer[QSR_LCLASS_FFN_UP + (map - 3)] = plain[c];
    } else {
      d->layer[cls_tab[c].cls] = plain[c];
    }
  }
  if (have_sens) d->sensitive = sensw[0];
  info->layers = nl;
  rc = qsr_design_check(&m, d, err);
  if (rc) {
    char *e = err ? *err : NULL;
    if (err) *err = NULL;
    rc = qsr_errf(err, rc, "%s: %s", path, e ? e : "invalid design");
    free(e);
  }
out:
  if (have) yaml_document_delete(&r.doc);
  yaml_parser_delete(&ps);
  fclose(fp);
  return rc;
}
