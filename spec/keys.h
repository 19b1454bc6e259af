/*
** keys.h -- YAML -> struct through key tables (libyaml document API).
**
** A spec is a tree of mappings; nested keys form dotted paths
** ("quant.weights.bits"). Each path must match exactly one row of the
** table ("*" in a row matches any one segment); a row either stores a
** scalar at an offset in the target struct (with range and enum checks) or
** calls a setter. Unknown keys, wrong types, values out of range and
** duplicate keys are errors "file:line:col: key: what was expected".
*/
#ifndef QSR_SPEC_KEYS_H
#define QSR_SPEC_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

enum qsr_ktype {
  QSR_K_F64,     /* double */
  QSR_K_INT,     /* int */
  QSR_K_BOOL,    /* int 0/1 */
  QSR_K_STR,     /* char[QSR_NAME_MAX] */
  QSR_K_ENUM,    /* int index into names */
  QSR_K_CUSTOM,  /* set() */
};

#define QSR_KEY_REQUIRED 1u

struct qsr_kctx;
typedef int (*qsr_key_set_fn)(void *obj, struct qsr_kctx *k);

struct qsr_key {
  const char *path;
  int type;                       /* enum qsr_ktype */
  size_t off;                     /* offset in the target struct */
  double min, max;                /* inclusive range for numbers (min > max: none) */
  const char *const *names;       /* QSR_K_ENUM: NULL-terminated spellings */
  qsr_key_set_fn set;             /* QSR_K_CUSTOM */
  unsigned flags;
  const char *help;               /* one line, for docs and errors */
};

/* What a setter sees. */
struct qsr_kctx {
  const char *file;               /* file name or "--set" */
  int line, col;                  /* 1-based position of the value */
  char path[128];                 /* full dotted key */
  const char *seg[8];             /* its segments (into path_buf) */
  int nseg;
  char path_buf[128];
  yaml_document_t *doc;
  yaml_node_t *node;              /* the value */
  char **err;
};

/* Loads `file` into obj. section: the single top-level key the file must
** have ("device"), or NULL when the table's paths start at the root.
** seen (may be NULL) gets one byte per key row: 1 when set. */
int qsr_spec_load(const char *file, const char *section, const struct qsr_key *keys, int nkeys,
                  void *obj, uint8_t *seen, char **err);

/* The same from YAML text; `file` names it in messages. */
int qsr_spec_load_text(const char *file, const char *text, const char *section, const struct qsr_key *keys,
                       int nkeys, void *obj, uint8_t *seen, char **err);

/* A whole file as a NUL-terminated heap string (caller frees); NULL with *err. */
char *qsr_spec_read_file(const char *path, char **err);

/* Applies one "path=value" override (value is YAML: scalar or flow list). */
int qsr_spec_set(const char *assignment, const struct qsr_key *keys, int nkeys, void *obj,
                 uint8_t *seen, char **err);

/* Helpers for setters. */
int qsr_kctx_error(struct qsr_kctx *k, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int qsr_kctx_f64(struct qsr_kctx *k, double min, double max, double *out);
int qsr_kctx_int(struct qsr_kctx *k, double min, double max, int *out);
int qsr_kctx_str(struct qsr_kctx *k, const char **out);
/* A sequence of numbers (or one number) into out[0..max); *n = count. */
int qsr_kctx_f64_list(struct qsr_kctx *k, double min, double hi, double *out, int max, int *n);

#endif
