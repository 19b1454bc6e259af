/*
** model_spec.c -- configs/models/NAME.yaml -> struct qsr_model, with the
** derived parameter count checked against the published one.
*/
#include "costmodel/costmodel.h"
#include "spec/spec.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const family_names[] = { "decoder", "dit", NULL };
static const char *const act_names[] = { "swiglu", "gelu", NULL };
static const char *const norm_names[] = { "rmsnorm", "layernorm", NULL };

#define M(f) offsetof(struct qsr_model, f)
#define INT(p, f, lo, hi, fl) { p, QSR_K_INT, M(f), lo, hi, NULL, NULL, fl, NULL }
#define BOOL(p, f) { p, QSR_K_BOOL, M(f), 1, 0, NULL, NULL, 0, NULL }

static const struct qsr_key model_keys[] = {
  { "name", QSR_K_STR, M(name), 1, 0, NULL, NULL, QSR_KEY_REQUIRED, NULL },
  { "family", QSR_K_ENUM, M(family), 1, 0, family_names, NULL, QSR_KEY_REQUIRED, NULL },
  INT("layers", layers, 1, QSR_MAX_LAYERS, QSR_KEY_REQUIRED),
  INT("hidden", hidden, 1, 1 << 20, QSR_KEY_REQUIRED),
  INT("heads", heads, 1, 4096, QSR_KEY_REQUIRED),
  INT("kv_heads", kv_heads, 1, 4096, 0),
  INT("head_dim", head_dim, 1, 4096, 0),
  INT("ffn", ffn, 1, 1 << 22, QSR_KEY_REQUIRED),
  { "ffn_act", QSR_K_ENUM, M(ffn_act), 1, 0, act_names, NULL, QSR_KEY_REQUIRED, NULL },
  INT("vocab", vocab, 0, 1 << 24, QSR_KEY_REQUIRED),
  BOOL("tie_embeddings", tie_embeddings),
  { "norm", QSR_K_ENUM, M(norm), 1, 0, norm_names, NULL, 0, NULL },
  BOOL("bias", bias),
  INT("max_context", max_context, 1, 1 << 24, QSR_KEY_REQUIRED),
  INT("sliding_window", sliding_window, 0, 1 << 24, 0),
  INT("experts", experts, 0, QSR_MAX_EXPERTS, 0),
  INT("top_k", top_k, 0, QSR_MAX_EXPERTS, 0),
  { "published_params_b", QSR_K_F64, M(published_params_b), 0.001, 1e5, NULL, NULL, QSR_KEY_REQUIRED, NULL },
  INT("dit.tokens", dit_tokens, 1, 1 << 20, 0),
  INT("dit.patch_in", dit_patch_in, 1, 1 << 16, 0),
  INT("dit.patch_out", dit_patch_out, 1, 1 << 16, 0),
  BOOL("dit.adaln", dit_adaln),
  INT("dit.freq_dim", dit_freq_dim, 1, 1 << 16, 0),
  INT("dit.classes", dit_classes, 0, 1 << 24, 0),
};
#define N_MODEL_KEYS ((int)(sizeof model_keys / sizeof model_keys[0]))

int qsr_model_load(const char *path, struct qsr_model *out, char **err) {
  struct qsr_model m;
  uint8_t seen[N_MODEL_KEYS];
  memset(&m, 0, sizeof m);
  memset(seen, 0, sizeof seen);
  int rc = qsr_spec_load(path, "model", model_keys, N_MODEL_KEYS, &m, seen, err);
  if (rc) return rc;
  if (!m.kv_heads) m.kv_heads = m.heads;
  if (!m.head_dim) {
    if (m.hidden % m.heads) return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.head_dim: hidden %d is not a multiple of heads %d; give head_dim", path, m.hidden, m.heads);
    m.head_dim = m.hidden / m.heads;
  }
  if (m.heads % m.kv_heads)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.kv_heads: %d does not divide heads %d", path, m.kv_heads, m.heads);
  if (m.experts && (m.top_k < 1 || m.top_k > m.experts))
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.top_k: %d must be in [1, experts=%d]", path, m.top_k, m.experts);
  if (m.family == QSR_FAMILY_DIT) {
    if (!m.dit_tokens || !m.dit_patch_in || !m.dit_patch_out || !m.dit_freq_dim)
      return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.dit: tokens, patch_in, patch_out and freq_dim are required for family dit", path);
    if (m.vocab) return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.vocab: must be 0 for family dit", path);
    if (m.experts) return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.experts: not supported for family dit", path);
  } else if (m.vocab < 1) {
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: model.vocab: must be >= 1 for a decoder", path);
  }
  double p = qsr_model_params(&m, NULL) / 1e9;
  if (fabs(p - m.published_params_b) > 0.02 * m.published_params_b)
    return qsr_errf(err, QSR_ERR_CONFIG,
                    "%s: model.published_params_b: the shape gives %.3f B parameters, %.1f%% off the published %.3f B; check the shape",
                    path, p, 100 * (p / m.published_params_b - 1), m.published_params_b);
  *out = m;
  return QSR_OK;
}
