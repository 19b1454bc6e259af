/*
** import.c -- llama-bench (CSV, JSON, JSONL) and plain-CSV measurements ->
** measurements rows (contract in import.h, formats in docs/import.md).
**
** Every format is first turned into records: a list of (name, value, line,
** column) fields, so that one function per source (lb_row, csv_row) maps
** fields to a row and every error can name file, line, column and field.
**   CSV   a small RFC 4180 reader: quoted fields may hold commas, doubled
**         quotes and newlines; spaces around a field are dropped.
**   JSON  libyaml's document API: a JSON array of objects is a YAML flow
**         sequence of flow mappings; each JSONL line is one flow mapping.
*/
#include "spec/import.h"

#include "costmodel/costmodel.h"
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "spec/spec.h"
#include "util/err.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

const char *const qsr_import_fmt_names[QSR_IMPORT_FMT_COUNT] = {
  [QSR_IMPORT_AUTO] = "auto",
  [QSR_IMPORT_LB_CSV] = "llama-bench-csv",
  [QSR_IMPORT_LB_JSON] = "llama-bench-json",
  [QSR_IMPORT_LB_JSONL] = "llama-bench-jsonl",
  [QSR_IMPORT_CSV] = "csv",
};

int qsr_import_fmt_from_name(const char *name) {
  for (int i = 0; i < QSR_IMPORT_FMT_COUNT; i++)
    if (!strcmp(name, qsr_import_fmt_names[i])) return i;
  return -1;
}

/* ---- weight types -------------------------------------------------------- */

/* Block sizes from ggml-common.h (block_q4_0 = fp16 d + 16 B of codes...).
** The qsr format is the one with the same code bits and the same kind of
** scale (symmetric: int_sym, scale + min: int) whose bytes are nearest; the
** legacy types are exact in bytes and in arithmetic. tests/test_import.c
** checks every byte count here against qsr_qweight_bytes(). */
const struct qsr_ggml_traits qsr_ggml_tab[QSR_GGML_COUNT] = {
  /*                    name       blck bytes wfmt              bits grp  note */
  [QSR_GGML_F32]     = { "F32",     1,   4,   -1,               0,  0,
                         "fp32 weights: qsr has no fp32 weight format, and as fp16 the bytes would halve; "
                         "convert the model to F16 or BF16 and measure again" },
  [QSR_GGML_F16]     = { "F16",     1,   2,   QSR_WFMT_FP16,    16, 0,  "exact" },
  [QSR_GGML_BF16]    = { "BF16",    1,   2,   QSR_WFMT_BF16,    16, 0,  "exact" },
  [QSR_GGML_Q4_0]    = { "Q4_0",    32,  18,  QSR_WFMT_INT_SYM, 4,  32, "exact: fp16 scale + 16 B of codes, w = d(q - 8)" },
  [QSR_GGML_Q4_1]    = { "Q4_1",    32,  20,  QSR_WFMT_INT,     4,  32, "exact: fp16 scale and min + 16 B, w = d q + m" },
  [QSR_GGML_Q5_0]    = { "Q5_0",    32,  22,  QSR_WFMT_INT_SYM, 5,  32, "exact: fp16 scale + 20 B of codes, w = d(q - 16)" },
  [QSR_GGML_Q5_1]    = { "Q5_1",    32,  24,  QSR_WFMT_INT,     5,  32, "exact: fp16 scale and min + 20 B, w = d q + m" },
  [QSR_GGML_Q8_0]    = { "Q8_0",    32,  34,  QSR_WFMT_INT_SYM, 8,  32, "exact: fp16 scale + 32 int8, w = d q" },
  [QSR_GGML_Q2_K]    = { "Q2_K",    256, 84,  QSR_WFMT_INT,     2,  64,
                         "nearest bytes: Q2_K 2.625 bpw, a 4-bit scale and min per 16; int2 g64 2.5 bpw" },
  [QSR_GGML_Q3_K]    = { "Q3_K",    256, 110, QSR_WFMT_INT_SYM, 3,  32,
                         "nearest bytes: Q3_K 3.4375 bpw, a 6-bit scale per 16; int_sym3 g32 3.5 bpw" },
  [QSR_GGML_Q4_K]    = { "Q4_K",    256, 144, QSR_WFMT_INT,     4,  64,
                         "same bytes: Q4_K 4.5 bpw, a 6-bit scale and min per 32; int4 g64 4.5 bpw" },
  [QSR_GGML_Q5_K]    = { "Q5_K",    256, 176, QSR_WFMT_INT,     5,  64,
                         "same bytes: Q5_K 5.5 bpw, a 6-bit scale and min per 32; int5 g64 5.5 bpw" },
  [QSR_GGML_Q6_K]    = { "Q6_K",    256, 210, QSR_WFMT_INT_SYM, 6,  32,
                         "nearest bytes: Q6_K 6.5625 bpw, an 8-bit scale per 16; int_sym6 g32 6.5 bpw" },
  [QSR_GGML_IQ1_S]   = { "IQ1_S",   256, 50,  -1, 0, 0, "i-quant, lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ1_M]   = { "IQ1_M",   256, 56,  -1, 0, 0, "i-quant, lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ2_XXS] = { "IQ2_XXS", 256, 66,  -1, 0, 0, "i-quant, E8 lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ2_XS]  = { "IQ2_XS",  256, 74,  -1, 0, 0, "i-quant, E8 lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ2_S]   = { "IQ2_S",   256, 82,  -1, 0, 0, "i-quant, E8 lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ3_XXS] = { "IQ3_XXS", 256, 98,  -1, 0, 0, "i-quant, D4 lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ3_S]   = { "IQ3_S",   256, 110, -1, 0, 0, "i-quant, D4 lattice codebook: no qsr weight format" },
  [QSR_GGML_IQ4_NL]  = { "IQ4_NL",  32,  18,  -1, 0, 0,
                         "i-quant with one fixed 16-value table for all blocks: qsr's lut keeps a codebook per "
                         "group, 48 B per 32 weights at g32; not the same format" },
  [QSR_GGML_IQ4_XS]  = { "IQ4_XS",  256, 136, -1, 0, 0, "i-quant with a fixed 16-value table: no qsr weight format" },
  [QSR_GGML_TQ1_0]   = { "TQ1_0",   256, 54,  -1, 0, 0, "ternary, 1.69 bpw: no qsr weight format" },
  [QSR_GGML_TQ2_0]   = { "TQ2_0",   256, 66,  -1, 0, 0, "ternary, 2.06 bpw: no qsr weight format" },
  [QSR_GGML_MXFP4]   = { "MXFP4",   32,  17,  -1, 0, 0, "fp4 (e2m1) with a power-of-two scale per 32: no qsr weight format" },
};
QSR_STATIC_ASSERT(QSR_GGML_COUNT == 25, update_ggml_tab);

/* llama.cpp file types (llama_ftype): the short name llama-quantize and file
** names use, llama_model_ftype_name()'s text (the end of model_type), and the
** type of most tensors. The _S/_M/_L mixes keep some tensors at higher types. */
static const struct {
  const char *name, *desc;
  int type;
} ftype_tab[] = {
  { "F32", "all F32", QSR_GGML_F32 },         { "F16", "F16", QSR_GGML_F16 },
  { "BF16", "BF16", QSR_GGML_BF16 },          { "Q4_0", "Q4_0", QSR_GGML_Q4_0 },
  { "Q4_1", "Q4_1", QSR_GGML_Q4_1 },          { "Q5_0", "Q5_0", QSR_GGML_Q5_0 },
  { "Q5_1", "Q5_1", QSR_GGML_Q5_1 },          { "Q8_0", "Q8_0", QSR_GGML_Q8_0 },
  { "Q4_0_4_4", "Q4_0_4_4", QSR_GGML_Q4_0 },  { "Q4_0_4_8", "Q4_0_4_8", QSR_GGML_Q4_0 },
  { "Q4_0_8_8", "Q4_0_8_8", QSR_GGML_Q4_0 },  /* Q4_0 repacked for ARM: same bytes */
  { "Q2_K", "Q2_K - Medium", QSR_GGML_Q2_K }, { "Q2_K_S", "Q2_K - Small", QSR_GGML_Q2_K },
  { "Q3_K_S", "Q3_K - Small", QSR_GGML_Q3_K }, { "Q3_K_M", "Q3_K - Medium", QSR_GGML_Q3_K },
  { "Q3_K_L", "Q3_K - Large", QSR_GGML_Q3_K }, { "Q4_K_S", "Q4_K - Small", QSR_GGML_Q4_K },
  { "Q4_K_M", "Q4_K - Medium", QSR_GGML_Q4_K }, { "Q5_K_S", "Q5_K - Small", QSR_GGML_Q5_K },
  { "Q5_K_M", "Q5_K - Medium", QSR_GGML_Q5_K }, { "Q6_K", "Q6_K", QSR_GGML_Q6_K },
  { "TQ1_0", "TQ1_0 - 1.69 bpw ternary", QSR_GGML_TQ1_0 },
  { "TQ2_0", "TQ2_0 - 2.06 bpw ternary", QSR_GGML_TQ2_0 },
  { "IQ2_XXS", "IQ2_XXS - 2.0625 bpw", QSR_GGML_IQ2_XXS }, { "IQ2_XS", "IQ2_XS - 2.3125 bpw", QSR_GGML_IQ2_XS },
  { "IQ2_S", "IQ2_S - 2.5 bpw", QSR_GGML_IQ2_S },         { "IQ2_M", "IQ2_M - 2.7 bpw", QSR_GGML_IQ2_S },
  { "IQ3_XS", "IQ3_XS - 3.3 bpw", QSR_GGML_IQ3_S },       { "IQ3_XXS", "IQ3_XXS - 3.0625 bpw", QSR_GGML_IQ3_XXS },
  { "IQ1_S", "IQ1_S - 1.5625 bpw", QSR_GGML_IQ1_S },      { "IQ1_M", "IQ1_M - 1.75 bpw", QSR_GGML_IQ1_M },
  { "IQ4_NL", "IQ4_NL - 4.5 bpw", QSR_GGML_IQ4_NL },      { "IQ4_XS", "IQ4_XS - 4.25 bpw", QSR_GGML_IQ4_XS },
  { "IQ3_S", "IQ3_S - 3.4375 bpw", QSR_GGML_IQ3_S },      { "IQ3_M", "IQ3_S mix - 3.66 bpw", QSR_GGML_IQ3_S },
  { "MXFP4_MOE", "MXFP4 MoE", QSR_GGML_MXFP4 },
};
#define N_FTYPES ((int)(sizeof ftype_tab / sizeof ftype_tab[0]))

static int set_ggml(struct qsr_quant *q, const char *name, int type, char *why, size_t cap) {
  const struct qsr_ggml_traits *t = &qsr_ggml_tab[type];
  snprintf(q->name, sizeof q->name, "%s", name);
  q->ggml = type;
  q->wfmt = t->wfmt;
  q->bits = t->bits;
  q->group = t->group;
  if (t->wfmt < 0) {
    if (strcmp(name, t->name)) snprintf(why, cap, "%s (%s): %s", name, t->name, t->note);
    else snprintf(why, cap, "%s: %s", name, t->note);
    return -1;
  }
  return 0;
}

/* "int4 g64", "int_sym8 g32", "int4 per-row", "fp16": a qsr format for messages. */
static const char *qfmt_str(char *buf, size_t cap, int wfmt, int bits, int group) {
  if (wfmt == QSR_WFMT_FP16 || wfmt == QSR_WFMT_BF16 || wfmt == QSR_WFMT_FP8)
    snprintf(buf, cap, "%s", qsr_wfmt_tab[wfmt].name);
  else if (group) snprintf(buf, cap, "%s%d g%d", qsr_wfmt_tab[wfmt].name, bits, group);
  else snprintf(buf, cap, "%s%d per-row", qsr_wfmt_tab[wfmt].name, bits);
  return buf;
}

/* FORMAT[BITS][ [-_]gGROUP ] in qsr's names; 0 or -1 (not a qsr spelling, or invalid with why). */
static int parse_qsr_spelling(const char *s, struct qsr_quant *q, char *why, size_t cap) {
  int fmt = -1;
  size_t flen = 0;
  for (int i = 0; i < QSR_WFMT_COUNT; i++) {
    size_t l = strlen(qsr_wfmt_tab[i].name);
    if (l > flen && !strncasecmp(s, qsr_wfmt_tab[i].name, l)) { fmt = i; flen = l; }
  }
  if (fmt < 0) return -1;
  const char *p = s + flen;
  int bits = -1, group = -1;
  if (isdigit((unsigned char)*p)) bits = (int)strtol(p, (char **)&p, 10);
  while (*p == ' ' || *p == '-' || *p == '_') p++;
  if (*p == 'g' || *p == 'G') {
    if (!isdigit((unsigned char)p[1])) return -1;
    group = (int)strtol(p + 1, (char **)&p, 10);
  }
  if (*p) return -1;                      /* "int4x": not ours */
  switch (fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16:
  case QSR_WFMT_FP8:
    if (bits < 0) bits = fmt == QSR_WFMT_FP8 ? 8 : 16;
    if (group > 0) { snprintf(why, cap, "'%s': %s has no groups", s, qsr_wfmt_tab[fmt].name); return -2; }
    group = 0;
    break;
  default:
    if (bits < 0) { snprintf(why, cap, "'%s': give the bits (e.g. %s4g128)", s, qsr_wfmt_tab[fmt].name); return -2; }
    if (group < 0) group = 128;         /* as in design files */
  }
  if (!qsr_qformat_valid(fmt, bits, group)) {
    snprintf(why, cap, "'%s': %s at %d bits, group %d is not a qsr format (bits 2..6 or 8; group 0 or a multiple of 32)",
             s, qsr_wfmt_tab[fmt].name, bits, group);
    return -2;
  }
  snprintf(q->name, sizeof q->name, "%s", s);
  q->ggml = -1;
  q->wfmt = fmt;
  q->bits = bits;
  q->group = group;
  return 0;
}

int qsr_import_parse_quant(const char *text, struct qsr_quant *q, char *why, size_t cap) {
  char s[64];
  while (isspace((unsigned char)*text)) text++;
  snprintf(s, sizeof s, "%s", text);
  for (size_t l = strlen(s); l && isspace((unsigned char)s[l - 1]);) s[--l] = '\0';
  if (!*s) { snprintf(why, cap, "empty"); return -1; }
  int rc = parse_qsr_spelling(s, q, why, cap);
  if (rc == 0) return 0;
  if (rc == -2) return -1;
  const char *body = !strncasecmp(s, "mostly ", 7) ? s + 7 : s;
  for (int i = 0; i < N_FTYPES; i++)
    if (!strcasecmp(body, ftype_tab[i].name) || !strcmp(body, ftype_tab[i].desc))
      return set_ggml(q, ftype_tab[i].name, ftype_tab[i].type, why, cap);
  for (int i = 0; i < QSR_GGML_COUNT; i++)
    if (!strcasecmp(body, qsr_ggml_tab[i].name)) return set_ggml(q, qsr_ggml_tab[i].name, i, why, cap);
  snprintf(why, cap, "'%s' is neither a qsr format (int4g128, int_sym4g32, fp16, fp8...) nor a llama.cpp type "
                     "(Q4_0, Q4_K_M, F16...; docs/import.md)", s);
  return -1;
}

int qsr_import_quant_from_desc(const char *model_type, struct qsr_quant *q, size_t *prefix_len, char *why,
                               size_t cap) {
  char s[160];
  snprintf(s, sizeof s, "%s", model_type);
  char *g = strstr(s, "(guessed)");       /* llama.cpp marks a type it inferred */
  if (g) memmove(g, g + 9, strlen(g + 9) + 1);
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  int best = -1;
  size_t blen = 0;
  for (int i = 0; i < N_FTYPES; i++) {
    size_t l = strlen(ftype_tab[i].desc);
    if (l > n || l <= blen || strcmp(s + n - l, ftype_tab[i].desc)) continue;
    if (l < n && s[n - l - 1] != ' ') continue;
    best = i;
    blen = l;
  }
  if (best < 0) return 1;
  size_t p = n - blen;
  while (p && s[p - 1] == ' ') p--;
  if (p >= 6 && !strncmp(s + p - 6, "mostly", 6)) {  /* older builds: "llama 7B mostly Q4_0" */
    p -= 6;
    while (p && s[p - 1] == ' ') p--;
  }
  /* the prefix in the caller's string: the "(guessed)" mark comes after the type */
  *prefix_len = g && (size_t)(g - s) < p ? p + 9 : p;
  return set_ggml(q, ftype_tab[best].name, ftype_tab[best].type, why, cap);
}

/* A type name in a file name ("llama-2-7b.Q4_K_M.gguf"), between non-alphanumerics. */
static int quant_from_filename(const char *path, struct qsr_quant *q, char *why, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *best = NULL;
  int best_type = -1;
  size_t blen = 0;
  for (int k = 0; k < N_FTYPES + QSR_GGML_COUNT; k++) {
    const char *name = k < N_FTYPES ? ftype_tab[k].name : qsr_ggml_tab[k - N_FTYPES].name;
    size_t l = strlen(name);
    if (l <= blen) continue;
    for (const char *p = base; *p; p++) {
      if (strncasecmp(p, name, l)) continue;
      if (p > base && isalnum((unsigned char)p[-1])) continue;
      if (isalnum((unsigned char)p[l])) continue;
      best = name;
      best_type = k < N_FTYPES ? ftype_tab[k].type : k - N_FTYPES;
      blen = l;
      break;
    }
  }
  if (!best) return 1;
  return set_ggml(q, best, best_type, why, cap);
}

/* ---- the import object: rows, notes, string pool ------------------------ */

struct qsr_import_model {
  char name[QSR_NAME_MAX];
  double params;
  int family, ffn_act, norm;
};
struct qsr_import_models {
  int n;
  struct qsr_import_model m[64];
};

void qsr_import_free(struct qsr_import *im) {
  if (!im) return;
  for (size_t i = 0; i < im->n_pool; i++) free(im->pool[i]);
  for (size_t i = 0; i < im->n_notes; i++) free(im->notes[i]);
  free(im->pool);
  free(im->notes);
  free(im->rows);
  free(im->models);
  memset(im, 0, sizeof *im);
}

/* Room for `need` elements of `size` bytes: the (maybe moved) buffer, or
** NULL when out of memory (p is then still valid). */
static void *grow(void *p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return p;
  size_t c = *cap ? 2 * *cap : 16;
  while (c < need) c *= 2;
  void *t = realloc(p, c * size);
  if (t) *cap = c;
  return t;
}

/* A copy owned by im; NULL for NULL, and NULL (with *oom = 1) when out of memory. */
static const char *pool_dup(struct qsr_import *im, const char *s, int *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  char **t = d ? grow(im->pool, &im->cap_pool, im->n_pool + 1, sizeof *im->pool) : NULL;
  if (!t) {
    free(d);
    *oom = 1;
    return NULL;
  }
  im->pool = t;
  im->pool[im->n_pool++] = d;
  return d;
}

/* Adds a summary line unless already there. */
static int note(struct qsr_import *im, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int note(struct qsr_import *im, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  for (size_t i = 0; i < im->n_notes; i++)
    if (!strcmp(im->notes[i], buf)) return QSR_OK;
  char *d = strdup(buf);
  char **t = d ? grow(im->notes, &im->cap_notes, im->n_notes + 1, sizeof *im->notes) : NULL;
  if (!t) {
    free(d);
    return QSR_ERR_NOMEM;
  }
  im->notes = t;
  im->notes[im->n_notes++] = d;
  return QSR_OK;
}

/* ---- bundled models ------------------------------------------------------ */

static int cmp_model(const void *a, const void *b) {
  return strcmp(((const struct qsr_import_model *)a)->name, ((const struct qsr_import_model *)b)->name);
}

static int load_models(struct qsr_import *im) {
  if (im->models) return QSR_OK;
  if (!(im->models = calloc(1, sizeof *im->models))) return QSR_ERR_NOMEM;
  char dir[PATH_MAX], path[PATH_MAX + 300];
  snprintf(dir, sizeof dir, "%s/models", qsr_spec_config_dir());
  DIR *dp = opendir(dir);
  struct dirent *e;
  while (dp && (e = readdir(dp)) && im->models->n < (int)(sizeof im->models->m / sizeof im->models->m[0])) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct qsr_model m;
    char *err = NULL;
    int rc = qsr_model_load(path, &m, &err);
    free(err);
    if (rc) continue;                   /* a broken spec is reported by `qsr list models` */
    struct qsr_import_model *r = &im->models->m[im->models->n++];
    snprintf(r->name, sizeof r->name, "%s", m.name);
    r->params = qsr_model_params(&m, NULL);
    r->family = m.family;
    r->ffn_act = m.ffn_act;
    r->norm = m.norm;
  }
  if (dp) closedir(dp);
  qsort(im->models->m, (size_t)im->models->n, sizeof im->models->m[0], cmp_model);
  return QSR_OK;
}

/* llama.cpp architecture names whose blocks qsr's decoder describes. */
static const struct {
  const char *arch;
  int ffn_act, norm;
} arch_tab[] = {
  { "llama", QSR_FFNACT_SWIGLU, QSR_NORM_RMS },     /* LLaMA 1/2/3, Mistral, Mixtral, TinyLlama */
  { "gptneox", QSR_FFNACT_GELU, QSR_NORM_LAYER },   /* GPT-NeoX, Pythia */
};

#define MODEL_TOL 0.02 /* parameter counts within 2% name the same model */

const char *qsr_import_map_model(struct qsr_import *im, const char *arch, double n_params, double *off) {
  int a = -1;
  for (size_t i = 0; i < sizeof arch_tab / sizeof arch_tab[0]; i++)
    if (arch && !strcmp(arch, arch_tab[i].arch)) a = (int)i;
  if (a < 0 || !(n_params > 0) || load_models(im)) return NULL;
  const struct qsr_import_model *best = NULL;
  double bd = MODEL_TOL;
  for (int i = 0; i < im->models->n; i++) {
    const struct qsr_import_model *m = &im->models->m[i];
    if (m->family != QSR_FAMILY_DECODER || m->ffn_act != arch_tab[a].ffn_act || m->norm != arch_tab[a].norm) continue;
    double d = fabs(m->params - n_params) / n_params;
    if (d <= bd) { bd = d; best = m; }
  }
  if (best && off) *off = (best->params - n_params) / n_params;
  return best ? best->name : NULL;
}

/* ---- records -------------------------------------------------------------- */

enum { V_SCALAR, V_NULL, V_NESTED };

struct fld {
  const char *name, *val;
  int line, col;
  int kind;                 /* V_SCALAR, V_NULL (JSON null, empty CSV cell), V_NESTED */
  size_t off;               /* CSV: offset of val in the record buffer while it grows */
};

struct rec {
  const char *file;
  const char *what;         /* "column" or "field", for messages */
  int line, col;            /* where the record starts */
  struct fld *f;
  int n;
  const double *samples;    /* samples_ns (JSON) */
  int nsamples;
};

static const struct fld *get(const struct rec *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (!strcmp(r->f[i].name, name)) return &r->f[i];
  return NULL;
}

static int fld_err(const struct rec *r, const struct fld *f, char **err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int fld_err(const struct rec *r, const struct fld *f, char **err, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (f) return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: %s: %s", r->file, f->line, f->col, f->name, msg);
  return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: %s", r->file, r->line, r->col, msg);
}

/* A text field: NULL when absent or null. Not a scalar: error. */
static int get_str(const struct rec *r, const char *name, int required, const char **out, char **err) {
  const struct fld *f = get(r, name);
  *out = NULL;
  if (!f || f->kind == V_NULL) {
    if (!required) return QSR_OK;
    if (f) return fld_err(r, f, err, "empty");
    return fld_err(r, NULL, err, "missing %s '%s'", r->what, name);
  }
  if (f->kind == V_NESTED) return fld_err(r, f, err, "expected a single value, got a list or an object");
  *out = f->val;
  return QSR_OK;
}

/* A number field: *out = NAN when absent (not required). integer: must be a
** whole number >= 0. */
static int get_num(const struct rec *r, const char *name, int required, int integer, double *out, char **err) {
  const char *s;
  *out = NAN;
  int rc = get_str(r, name, required, &s, err);
  if (rc || !s) return rc;
  const struct fld *f = get(r, name);
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  while (*end == ' ') end++;
  if (!*s || *end || errno || !isfinite(v)) return fld_err(r, f, err, "expected a number, got '%s'", s);
  if (integer && (v != floor(v) || v < 0 || v > 2e9)) return fld_err(r, f, err, "expected a whole number >= 0, got '%s'", s);
  *out = v;
  return QSR_OK;
}

/* ---- llama-bench ---------------------------------------------------------- */

static const char *const lb_required[] = { "model_type", "n_prompt", "n_gen", "avg_ts" };

static int is_true(const char *s) { return s && (!strcasecmp(s, "true") || !strcmp(s, "1")); }

/* Backends: `backends` (mid-2024 on), or else the first of the older
** per-backend booleans that is true, in llama-bench's own order. */
static void lb_backends(const struct rec *r, char *buf, size_t cap) {
  const struct fld *f = get(r, "backends");
  buf[0] = '\0';
  if (f && f->kind == V_SCALAR) { snprintf(buf, cap, "%s", f->val); return; }
  static const char *const flags[][2] = {
    { "cuda", "CUDA" }, { "opencl", "OpenCL" }, { "vulkan", "Vulkan" }, { "kompute", "Kompute" },
    { "metal", "Metal" }, { "sycl", "SYCL" }, { "gpu_blas", "GPU BLAS" }, { "blas", "BLAS" },
  };
  int any = 0;
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    const struct fld *b = get(r, flags[i][0]);
    any |= b != NULL;
    if (b && b->kind == V_SCALAR && is_true(b->val)) { snprintf(buf, cap, "%s", flags[i][1]); return; }
  }
  if (any) snprintf(buf, cap, "CPU");
}

/* llama.cpp KV-cache types -> qsr KV formats (NULL: none, or K and V differ). */
static const char *lb_kvfmt(const char *tk, const char *tv) {
  if (!tk || !tv || strcasecmp(tk, tv)) return NULL;
  if (!strcasecmp(tk, "f16") || !strcasecmp(tk, "bf16")) return "fp16";
  if (!strcasecmp(tk, "q8_0")) return "int8";
  if (!strcasecmp(tk, "q4_0") || !strcasecmp(tk, "q4_1")) return "int4";
  return NULL;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* p-quantile (0..1) of sorted v by linear interpolation. */
static double quantile(const double *v, int n, double p) {
  double x = p * (n - 1);
  int i = (int)floor(x);
  if (i >= n - 1) return v[n - 1];
  return v[i] + (x - i) * (v[i + 1] - v[i]);
}

static int add_row(struct qsr_import *im, const struct qsr_meas *m) {
  struct qsr_meas *t = grow(im->rows, &im->cap, im->n + 1, sizeof *im->rows);
  if (!t) return QSR_ERR_NOMEM;
  im->rows = t;
  im->rows[im->n++] = *m;
  return QSR_OK;
}

static int lb_row(struct qsr_import *im, const struct qsr_import_opts *o, const struct rec *r, char **err) {
  struct qsr_meas m;
  qsr_meas_clear(&m);
  double np, ng, ts, ns, sd_ns, sd_ts, nb, nub, nt, nd, ngl, npar, msize;
  const char *mt, *fname, *gpu, *cpu, *commit, *tk, *tv;
  int rc;
  if ((rc = get_num(r, "n_prompt", 1, 1, &np, err)) || (rc = get_num(r, "n_gen", 1, 1, &ng, err)) ||
      (rc = get_num(r, "avg_ts", 1, 0, &ts, err)) || (rc = get_num(r, "avg_ns", 0, 0, &ns, err)) ||
      (rc = get_num(r, "stddev_ns", 0, 0, &sd_ns, err)) || (rc = get_num(r, "stddev_ts", 0, 0, &sd_ts, err)) ||
      (rc = get_num(r, "n_batch", 0, 1, &nb, err)) || (rc = get_num(r, "n_ubatch", 0, 1, &nub, err)) ||
      (rc = get_num(r, "n_threads", 0, 1, &nt, err)) || (rc = get_num(r, "n_depth", 0, 1, &nd, err)) ||
      (rc = get_num(r, "model_n_params", 0, 0, &npar, err)) ||
      (rc = get_str(r, "model_type", 1, &mt, err)) || (rc = get_str(r, "model_filename", 0, &fname, err)) ||
      (rc = get_str(r, "gpu_info", 0, &gpu, err)) || (rc = get_str(r, "cpu_info", 0, &cpu, err)) ||
      (rc = get_str(r, "build_commit", 0, &commit, err)) || (rc = get_str(r, "type_k", 0, &tk, err)) ||
      (rc = get_str(r, "type_v", 0, &tv, err)))
    return rc;
  /* n_gpu_layers is an integer that may be negative in some builds (-1 = all) */
  const struct fld *fngl = get(r, "n_gpu_layers");
  ngl = fngl && fngl->kind == V_SCALAR ? strtod(fngl->val, NULL) : NAN;
  if (np == 0 && ng == 0) return fld_err(r, get(r, "n_gen"), err, "n_prompt and n_gen are both 0: not a test");
  if (!(ts > 0)) return fld_err(r, get(r, "avg_ts"), err, "must be > 0, got %g", ts);
  if (!isnan(ns) && !(ns > 0)) return fld_err(r, get(r, "avg_ns"), err, "must be > 0, got %g", ns);

  /* weight type: the end of model_type, else the file name */
  struct qsr_quant q;
  size_t plen = 0;
  char why[384];
  rc = qsr_import_quant_from_desc(mt, &q, &plen, why, sizeof why);
  if (rc == 1 && fname) rc = quant_from_filename(fname, &q, why, sizeof why);
  if (rc < 0) return fld_err(r, get(r, "model_type"), err, "%s (docs/import.md)", why);
  if (rc > 0)
    return fld_err(r, get(r, "model_type"), err, "no llama.cpp weight type in '%s'%s%s%s (known: Q4_0, Q4_K_M, "
                   "F16...; docs/import.md)", mt, fname ? " nor in model_filename '" : "", fname ? fname : "",
                   fname ? "'" : "");

  /* model: --model, else a bundled model of the same architecture and size */
  char arch[64], raw[160], size[64] = "";
  snprintf(arch, sizeof arch, "%.*s", (int)strcspn(mt, " "), mt);
  snprintf(raw, sizeof raw, "%.*s", plen ? (int)plen : (int)strlen(mt), mt);
  if ((rc = get_num(r, "model_size", 0, 0, &msize, err))) return rc;
  if (msize > 0 && npar > 0) snprintf(size, sizeof size, ", %.2f bits per weight in the file", 8 * msize / npar);
  const char *model = o->model;
  double off = 0;
  if (!model) {
    model = qsr_import_map_model(im, arch, npar, &off);
    if (model) rc = note(im, "model '%s' (%.0f params%s) -> %s (params %+.2f%%)", mt, npar, size, model, 100 * off);
    else if (isnan(npar))
      rc = note(im, "model '%s' kept as '%s': no model_n_params to map it by (give --model NAME)", mt, raw);
    else
      rc = note(im, "model '%s' kept as '%s': no bundled model of llama.cpp architecture '%s' within 2%% of "
                "%.0f params (give --model NAME)", mt, raw, arch, npar);
    if (!model) model = raw;
    if (rc) return rc;
  }
  char qf[48];
  if ((rc = note(im, "weights %s -> %s (%s)", q.name, qfmt_str(qf, sizeof qf, q.wfmt, q.bits, q.group),
                 qsr_ggml_tab[q.ggml].note)))
    return rc;

  char backends[128];
  lb_backends(r, backends, sizeof backends);
  int oom = 0;
  m.kernel = "e2e";
  m.op_class = "e2e";
  m.backend = "external";
  m.source = "llama-bench";
  m.wfmt = qsr_wfmt_tab[q.wfmt].name;
  m.bits = q.bits;
  m.grp = q.group;
  m.kvfmt = lb_kvfmt(tk, tv);
  m.quant = pool_dup(im, q.name, &oom);
  m.model = pool_dup(im, model, &oom);
  m.device = o->device ? pool_dup(im, o->device, &oom) : NULL;
  /* the GPU ran it unless no layer was offloaded */
  m.device_desc = pool_dup(im, gpu && *gpu && !(ngl == 0) ? gpu : cpu && *cpu ? cpu : NULL, &oom);
  m.driver = backends[0] ? pool_dup(im, backends, &oom) : NULL;
  m.rev = commit && *commit ? pool_dup(im, commit, &oom) : NULL;
  m.split = o->split ? o->split : "holdout";
  if (oom) return QSR_ERR_NOMEM;
  m.threads = isnan(nt) ? -1 : (int)nt;
  /* llama-bench runs one sequence: n_batch/n_ubatch are prompt chunks, not qsr's batch */
  m.batch = 1;
  m.prompt = (int64_t)np;
  m.gen = (int64_t)ng;
  m.ctx = isnan(nd) ? 0 : (int64_t)nd;
  double chunk = !isnan(nub) && nub > 0 ? nub : !isnan(nb) && nb > 0 ? nb : np;
  m.tokens = np > 0 ? (int64_t)(np < chunk ? np : chunk) : 1;
  if (isnan(ns)) ns = 1e9 * (np + ng) / ts;    /* avg_ts = (n_prompt + n_gen) / time */
  m.median_us = ns / 1e3;                     /* the MEAN: llama-bench reports mean and stddev */
  m.spread_pct = !isnan(sd_ns) ? 100 * sd_ns / ns : !isnan(sd_ts) ? 100 * sd_ts / ts : NAN;
  if (r->nsamples > 0) {
    double *v = malloc((size_t)r->nsamples * sizeof *v);
    if (!v) return QSR_ERR_NOMEM;
    memcpy(v, r->samples, (size_t)r->nsamples * sizeof *v);
    qsort(v, (size_t)r->nsamples, sizeof *v, cmp_dbl);
    m.reps = r->nsamples;
    m.p10_us = quantile(v, r->nsamples, 0.10) / 1e3;
    m.p90_us = quantile(v, r->nsamples, 0.90) / 1e3;
    free(v);
  }
  if (ng == 0) { m.prompt_tok_s = ts; im->n_pp++; }
  else if (np == 0) { m.gen_tok_s = ts; im->n_tg++; }
  else {
    im->n_pg++;   /* avg_ts is (n_prompt + n_gen) / total time: it splits into neither rate */
    if ((rc = note(im, "pp+tg tests: prompt_tok_s and gen_tok_s left NULL (avg_ts mixes both); "
                       "median_us is the whole run")))
      return rc;
  }
  return add_row(im, &m);
}

/* ---- plain CSV ------------------------------------------------------------ */

static int device_known(const char *name) {
  char path[PATH_MAX];
  return !strchr(name, '/') && !qsr_spec_resolve("devices", name, path, sizeof path, NULL);
}

static int model_known(const char *name) {
  char path[PATH_MAX];
  return !strchr(name, '/') && !qsr_spec_resolve("models", name, path, sizeof path, NULL);
}

static int csv_row(struct qsr_import *im, const struct qsr_import_opts *o, const struct rec *r, char **err) {
  struct qsr_meas m;
  qsr_meas_clear(&m);
  const char *dev = o->device, *model = o->model, *qs;
  double batch, prompt, gen, pts, gts;
  int rc = QSR_OK;
  if ((!dev && (rc = get_str(r, "device", 1, &dev, err))) || (!model && (rc = get_str(r, "model", 1, &model, err))) ||
      (rc = get_str(r, "quantisation", 1, &qs, err)) || (rc = get_num(r, "batch", 0, 1, &batch, err)) ||
      (rc = get_num(r, "prompt", 1, 1, &prompt, err)) || (rc = get_num(r, "generation", 1, 1, &gen, err)) ||
      (rc = get_num(r, "prompt_tok_s", 0, 0, &pts, err)) || (rc = get_num(r, "gen_tok_s", 0, 0, &gts, err)))
    return rc;
  if (isnan(batch)) batch = 1;
  if (batch < 1) return fld_err(r, get(r, "batch"), err, "must be >= 1");
  if (isnan(pts) && isnan(gts)) return fld_err(r, NULL, err, "neither prompt_tok_s nor gen_tok_s is given");
  if (!isnan(pts) && !(pts > 0)) return fld_err(r, get(r, "prompt_tok_s"), err, "must be > 0, got %g", pts);
  if (!isnan(gts) && !(gts > 0)) return fld_err(r, get(r, "gen_tok_s"), err, "must be > 0, got %g", gts);
  if (!isnan(pts) && prompt == 0) return fld_err(r, get(r, "prompt"), err, "0 prompt tokens with a prompt_tok_s");
  if (!isnan(gts) && gen == 0) return fld_err(r, get(r, "generation"), err, "0 generated tokens with a gen_tok_s");
  struct qsr_quant q;
  char why[384];
  if (qsr_import_parse_quant(qs, &q, why, sizeof why)) return fld_err(r, get(r, "quantisation"), err, "%s", why);
  char qf[48];
  if (q.ggml >= 0)
    rc = note(im, "weights %s -> %s (%s)", q.name, qfmt_str(qf, sizeof qf, q.wfmt, q.bits, q.group),
              qsr_ggml_tab[q.ggml].note);
  if (!rc && !o->model && !model_known(model))
    rc = note(im, "model '%s' is not in configs/models: qsr validate cannot predict it (give --model NAME)", model);
  if (!rc && !o->device && !device_known(dev))
    rc = note(im, "device '%s' is not in configs/devices: qsr validate cannot predict it (give --device NAME)", dev);
  if (rc) return rc;
  int oom = 0;
  m.kernel = "e2e";
  m.op_class = "e2e";
  m.backend = "external";
  m.source = "csv";
  m.device = pool_dup(im, dev, &oom);
  m.model = pool_dup(im, model, &oom);
  m.quant = pool_dup(im, q.name, &oom);
  if (oom) return QSR_ERR_NOMEM;
  m.wfmt = qsr_wfmt_tab[q.wfmt].name;
  m.bits = q.bits;
  m.grp = q.group;
  m.split = o->split ? o->split : "holdout";
  m.batch = (int64_t)batch;
  m.prompt = (int64_t)prompt;
  m.gen = (int64_t)gen;
  m.prompt_tok_s = pts;
  m.gen_tok_s = gts;
  if (!isnan(pts) && !isnan(gts)) im->n_pg++;
  else if (!isnan(pts)) im->n_pp++;
  else im->n_tg++;
  return add_row(im, &m);
}

static const char *const csv_required[] = { "device", "model", "quantisation", "prompt", "generation" };

/* ---- the CSV reader (RFC 4180) -------------------------------------------- */

struct csv {
  const char *file;
  const char *p;            /* next character */
  int line;                 /* of *p */
  const char *line_start;
  char *buf;                /* decoded fields of the record, NUL-separated */
  size_t len, cap;
  struct fld *f;            /* names unset until the caller sets them */
  int n;
  size_t capf;
};

static int csv_put(struct csv *c, char ch) {
  char *t = grow(c->buf, &c->cap, c->len + 1, 1);
  if (!t) return -1;
  c->buf = t;
  c->buf[c->len++] = ch;
  return 0;
}

/* Reads one record into c->f[0..n): *got = 1, or 0 at the end. Blank lines
** are skipped. Returns QSR_OK or an error code. */
static int csv_next(struct csv *c, int *got, char **err) {
  c->len = 0;
  c->n = 0;
  *got = 0;
  for (;;) {                              /* skip blank lines */
    const char *q = c->p;
    while (*q == ' ' || *q == '\t') q++;
    if (*q == '\r' && q[1] == '\n') q++;
    if (*q != '\n') { if (!*q) return QSR_OK; break; }
    c->p = q + 1;
    c->line++;
    c->line_start = c->p;
  }
  for (;;) {
    while (*c->p == ' ' || *c->p == '\t') c->p++;
    struct fld *nf = grow(c->f, &c->capf, (size_t)c->n + 1, sizeof *c->f);
    if (!nf) return QSR_ERR_NOMEM;
    c->f = nf;
    struct fld *f = &c->f[c->n++];
    memset(f, 0, sizeof *f);
    f->line = c->line;
    f->col = (int)(c->p - c->line_start) + 1;
    f->off = c->len;
    size_t start = c->len;
    if (*c->p == '"') {
      int oline = c->line, ocol = f->col;
      c->p++;
      for (;;) {
        if (!*c->p)
          return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: unterminated quoted field", c->file, oline, ocol);
        if (*c->p == '"') {
          if (c->p[1] != '"') { c->p++; break; }
          c->p++;
        }
        if (*c->p == '\n') { c->line++; c->line_start = c->p + 1; }
        if (csv_put(c, *c->p++)) return QSR_ERR_NOMEM;
      }
      while (*c->p == ' ' || *c->p == '\t') c->p++;
      if (*c->p && *c->p != ',' && *c->p != '\n' && !(*c->p == '\r' && c->p[1] == '\n'))
        return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: '%c' after the closing quote of a field (a quote inside "
                        "a quoted field is written \"\")", c->file, c->line, (int)(c->p - c->line_start) + 1, *c->p);
      f->kind = V_SCALAR;
    } else {
      while (*c->p && *c->p != ',' && *c->p != '\n' && !(*c->p == '\r' && c->p[1] == '\n'))
        if (csv_put(c, *c->p++)) return QSR_ERR_NOMEM;
      while (c->len > start && (c->buf[c->len - 1] == ' ' || c->buf[c->len - 1] == '\t' || c->buf[c->len - 1] == '\r'))
        c->len--;
      f->kind = c->len == start ? V_NULL : V_SCALAR;
    }
    if (csv_put(c, '\0')) return QSR_ERR_NOMEM;
    if (*c->p == ',') { c->p++; continue; }
    if (*c->p == '\r') c->p++;
    if (*c->p == '\n') { c->p++; c->line++; c->line_start = c->p; }
    break;
  }
  for (int i = 0; i < c->n; i++) c->f[i].val = c->buf + c->f[i].off;
  *got = 1;
  return QSR_OK;
}

static int read_csv(struct qsr_import *im, const struct qsr_import_opts *o, const char *file, const char *text,
                    char **err) {
  struct csv c = { file, text, 1, text, NULL, 0, 0, NULL, 0, 0 };
  char **names = NULL;
  int nnames = 0, got = 0, lb = im->format == QSR_IMPORT_LB_CSV, hline = 1;
  int rc = csv_next(&c, &got, err);
  if (!rc && !got) rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: empty file", file);
  if (rc) goto out;
  hline = c.f[0].line;
  if (!(names = calloc((size_t)c.n, sizeof *names))) { rc = QSR_ERR_NOMEM; goto out; }
  for (nnames = 0; nnames < c.n; nnames++) {
    if (!(names[nnames] = strdup(c.f[nnames].val))) { rc = QSR_ERR_NOMEM; goto out; }
    for (int j = 0; j < nnames; j++)
      if (*names[nnames] && !strcmp(names[j], names[nnames])) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: column '%s' appears twice (columns %d and %d)", file, hline,
                      c.f[nnames].col, names[nnames], j + 1, nnames + 1);
        nnames++;
        goto out;
      }
  }
  /* required columns, named before any row is read */
  const char *const *req = lb ? lb_required : csv_required;
  int nreq = lb ? (int)(sizeof lb_required / sizeof *lb_required) : (int)(sizeof csv_required / sizeof *csv_required);
  for (int k = 0; k < nreq; k++) {
    if ((!strcmp(req[k], "device") && o->device) || (!strcmp(req[k], "model") && o->model)) continue;
    int have = 0;
    for (int j = 0; j < nnames && !have; j++) have = !strcmp(names[j], req[k]);
    if (!have) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: missing column '%s'%s", file, hline, req[k],
                    lb ? " (llama-bench -o csv writes it)"
                       : !strcmp(req[k], "device") ? " (or give --device)"
                       : !strcmp(req[k], "model") ? " (or give --model)" : "");
      goto out;
    }
  }
  if (!lb) {
    int have = 0;
    for (int j = 0; j < nnames; j++) have |= !strcmp(names[j], "prompt_tok_s") || !strcmp(names[j], "gen_tok_s");
    if (!have) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: missing column 'prompt_tok_s' or 'gen_tok_s' (at least one)", file, hline);
      goto out;
    }
  }
  while (!(rc = csv_next(&c, &got, err)) && got) {
    struct rec r = { file, "column", c.f[0].line, 1, c.f, c.n, NULL, 0 };
    if (c.n != nnames) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %d field%s, the header (line %d) has %d", file, r.line, c.n,
                    c.n == 1 ? "" : "s", hline, nnames);
      goto out;
    }
    for (int j = 0; j < c.n; j++) c.f[j].name = names[j];
    if ((rc = lb ? lb_row(im, o, &r, err) : csv_row(im, o, &r, err))) goto out;
  }
out:
  for (int j = 0; j < nnames; j++) free(names[j]);
  free(names);
  free(c.buf);
  free(c.f);
  return rc;
}

/* ---- JSON and JSONL (libyaml) --------------------------------------------- */

static int yaml_fail(yaml_parser_t *ps, const char *file, int line, char **err) {
  int l = line ? line : (int)ps->problem_mark.line + 1;
  if (ps->error == YAML_MEMORY_ERROR) return qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", file);
  return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%zu: malformed JSON: %s%s%s", file, l, ps->problem_mark.column + 1,
                  ps->problem ? ps->problem : "parse error", ps->context ? " " : "", ps->context ? ps->context : "");
}

static int is_null_scalar(const yaml_node_t *n) {
  const char *s = (const char *)n->data.scalar.value;
  return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (!*s || !strcmp(s, "null") || !strcmp(s, "~"));
}

/* One JSON object -> a record -> a row. line: the file line (JSONL), or 0 to use the marks. */
static int json_object(struct qsr_import *im, const struct qsr_import_opts *o, const char *file, yaml_document_t *doc,
                       yaml_node_t *map, int line, char **err) {
  int n = (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start), rc = QSR_OK;
  struct fld *f = calloc((size_t)(n ? n : 1), sizeof *f);
  double *samples = NULL;
  int ns = 0;
  if (!f) return QSR_ERR_NOMEM;
  struct rec r = { file, "field", line ? line : (int)map->start_mark.line + 1, (int)map->start_mark.column + 1,
                   f, 0, NULL, 0 };
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
    if (k->type != YAML_SCALAR_NODE) continue;
    struct fld *x = &f[r.n++];
    x->name = (const char *)k->data.scalar.value;
    x->line = line ? line : (int)v->start_mark.line + 1;
    x->col = (int)v->start_mark.column + 1;
    if (v->type == YAML_SCALAR_NODE) {
      x->kind = is_null_scalar(v) ? V_NULL : V_SCALAR;
      x->val = (const char *)v->data.scalar.value;
      continue;
    }
    x->kind = V_NESTED;
    if (strcmp(x->name, "samples_ns") || v->type != YAML_SEQUENCE_NODE) continue;
    int cnt = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    free(samples);
    if (!(samples = malloc((size_t)(cnt ? cnt : 1) * sizeof *samples))) { rc = QSR_ERR_NOMEM; goto out; }
    ns = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
      yaml_node_t *e = yaml_document_get_node(doc, *it);
      char *end = NULL;
      double d = e->type == YAML_SCALAR_NODE ? strtod((const char *)e->data.scalar.value, &end) : NAN;
      if (!end || *end || end == (char *)e->data.scalar.value || !(d > 0)) {
        struct fld at = *x;
        at.line = line ? line : (int)e->start_mark.line + 1;
        at.col = (int)e->start_mark.column + 1;
        rc = fld_err(&r, &at, err, "expected positive numbers (nanoseconds)");
        goto out;
      }
      samples[ns++] = d;
    }
  }
  r.samples = samples;
  r.nsamples = ns;
  rc = lb_row(im, o, &r, err);
out:
  free(samples);
  free(f);
  return rc;
}

/* Parses text as exactly one YAML document into doc. */
static int load_one(const char *file, const char *text, size_t len, int line, yaml_document_t *doc, char **err) {
  yaml_parser_t ps;
  if (!yaml_parser_initialize(&ps)) return qsr_errf(err, QSR_ERR_NOMEM, "%s: yaml parser", file);
  yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
  int rc = QSR_OK;
  if (!yaml_parser_load(&ps, doc)) {
    rc = yaml_fail(&ps, file, line, err);
  } else {
    yaml_document_t rest;                 /* anything after the value is an error */
    if (!yaml_parser_load(&ps, &rest)) rc = yaml_fail(&ps, file, line, err);
    else {
      if (yaml_document_get_root_node(&rest))
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: malformed JSON: more than one value", file,
                      line ? line : (int)rest.start_mark.line + 1);
      yaml_document_delete(&rest);
    }
    if (rc) yaml_document_delete(doc);
  }
  yaml_parser_delete(&ps);
  return rc;
}

static int read_json(struct qsr_import *im, const struct qsr_import_opts *o, const char *file, const char *text,
                     char **err) {
  yaml_document_t doc;
  int rc = load_one(file, text, strlen(text), 0, &doc, err);
  if (rc) return rc;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: empty file", file);
  else if (root->type == YAML_MAPPING_NODE) rc = json_object(im, o, file, &doc, root, 0, err);
  else if (root->type != YAML_SEQUENCE_NODE)
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: expected a JSON array of objects (llama-bench -o json)", file,
                  root->start_mark.line + 1, root->start_mark.column + 1);
  else
    for (yaml_node_item_t *it = root->data.sequence.items.start; !rc && it < root->data.sequence.items.top; it++) {
      yaml_node_t *e = yaml_document_get_node(&doc, *it);
      if (e->type != YAML_MAPPING_NODE)
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: expected an object in the array", file, e->start_mark.line + 1,
                      e->start_mark.column + 1);
      else rc = json_object(im, o, file, &doc, e, 0, err);
    }
  yaml_document_delete(&doc);
  return rc;
}

static int read_jsonl(struct qsr_import *im, const struct qsr_import_opts *o, const char *file, const char *text,
                      char **err) {
  int line = 1, rc = QSR_OK;
  for (const char *p = text; !rc && *p; line++) {
    size_t len = strcspn(p, "\n");
    const char *q = p;
    while (q < p + len && isspace((unsigned char)*q)) q++;
    if (q < p + len && (*q == '[' || *q == ']')) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: expected one JSON object per line (llama-bench -o jsonl); this "
                    "looks like a JSON array: --format llama-bench-json", file, line, (int)(q - p) + 1);
    } else if (q < p + len) {
      yaml_document_t doc;
      if ((rc = load_one(file, p, len, line, &doc, err))) break;
      yaml_node_t *root = yaml_document_get_root_node(&doc);
      if (!root || root->type != YAML_MAPPING_NODE)
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expected one JSON object per line (llama-bench -o jsonl)", file,
                      line);
      else rc = json_object(im, o, file, &doc, root, line, err);
      yaml_document_delete(&doc);
    }
    p += len;
    if (*p == '\n') p++;
  }
  return rc;
}

/* ---- entry points --------------------------------------------------------- */

static int detect(const char *file, const char *text, char **err) {
  const char *p = text;
  while (isspace((unsigned char)*p)) p++;
  if (*p == '[') return QSR_IMPORT_LB_JSON;
  if (*p == '{') return QSR_IMPORT_LB_JSONL;
  if (*p == '|' || !strncmp(p, "CREATE TABLE", 12)) {
    qsr_errf(err, QSR_ERR_CONFIG, "%s:1: looks like llama-bench -o %s output: write -o csv, json or jsonl instead",
             file, *p == '|' ? "md" : "sql");
    return -1;
  }
  /* CSV: llama-bench's header has these names, a plain one has none of them */
  struct csv c = { file, text, 1, text, NULL, 0, 0, NULL, 0, 0 };
  int got = 0, lb = 0;
  if (!csv_next(&c, &got, NULL) && got)
    for (int i = 0; i < c.n && !lb; i++)
      lb = !strcmp(c.f[i].val, "build_commit") || !strcmp(c.f[i].val, "model_type") || !strcmp(c.f[i].val, "n_prompt");
  free(c.buf);
  free(c.f);
  return lb ? QSR_IMPORT_LB_CSV : QSR_IMPORT_CSV;
}

int qsr_import_text(const char *origin, const char *text, const struct qsr_import_opts *o, struct qsr_import *im,
                    char **err) {
  memset(im, 0, sizeof *im);
  if (err) *err = NULL;
  if (!strncmp(text, "\xEF\xBB\xBF", 3)) text += 3;   /* UTF-8 byte-order mark */
  im->format = o->format;
  if (im->format == QSR_IMPORT_AUTO && (im->format = detect(origin, text, err)) < 0) {
    im->format = QSR_IMPORT_AUTO;
    return QSR_ERR_CONFIG;
  }
  int rc;
  switch (im->format) {
  case QSR_IMPORT_LB_CSV:
  case QSR_IMPORT_CSV: rc = read_csv(im, o, origin, text, err); break;
  case QSR_IMPORT_LB_JSON: rc = read_json(im, o, origin, text, err); break;
  case QSR_IMPORT_LB_JSONL: rc = read_jsonl(im, o, origin, text, err); break;
  default: return qsr_errf(err, QSR_ERR_USAGE, "import format %d", im->format);
  }
  if (rc == QSR_ERR_NOMEM && err && !*err) qsr_errf(err, rc, "%s: out of memory", origin);
  if (!rc && !im->n) rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: no measurements in the file", origin);
  return rc;
}

int qsr_import_file(const char *path, const struct qsr_import_opts *o, struct qsr_import *im, char **err) {
  memset(im, 0, sizeof *im);
  char *text = qsr_spec_read_file(path, err);
  if (!text) return err && *err && strstr(*err, "out of memory") ? QSR_ERR_NOMEM : QSR_ERR_IO;
  int rc = qsr_import_text(path, text, o, im, err);
  free(text);
  return rc;
}
