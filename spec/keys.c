/*
** keys.c -- the key-table walker over a libyaml document.
*/
#include "spec/keys.h"

#include "costmodel/types.h"
#include "util/err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int qsr_kctx_error(struct qsr_kctx *k, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (k->line > 0) return qsr_errf(k->err, QSR_ERR_CONFIG, "%s:%d:%d: %s: %s", k->file, k->line, k->col, k->path, msg);
  return qsr_errf(k->err, QSR_ERR_CONFIG, "%s: %s: %s", k->file, k->path, msg);
}

static const char *scalar(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_num(const char *s, double *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

static int num_node(struct qsr_kctx *k, yaml_node_t *n, double min, double max, double *out) {
  const char *s = scalar(n);
  double v;
  if (!s) return qsr_kctx_error(k, "expected a number, got a %s", n->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
  if (parse_num(s, &v)) return qsr_kctx_error(k, "expected a number, got '%s'", s);
  if (min <= max && (v < min || v > max)) return qsr_kctx_error(k, "%g out of range [%g, %g]", v, min, max);
  *out = v;
  return QSR_OK;
}

int qsr_kctx_f64(struct qsr_kctx *k, double min, double max, double *out) {
  return num_node(k, k->node, min, max, out);
}

int qsr_kctx_int(struct qsr_kctx *k, double min, double max, int *out) {
  double v;
  int rc = num_node(k, k->node, min, max, &v);
  if (rc) return rc;
  if (v != floor(v) || fabs(v) > 2e9) return qsr_kctx_error(k, "expected an integer, got %s", scalar(k->node));
  *out = (int)v;
  return QSR_OK;
}

int qsr_kctx_str(struct qsr_kctx *k, const char **out) {
  const char *s = scalar(k->node);
  if (!s) return qsr_kctx_error(k, "expected a string");
  *out = s;
  return QSR_OK;
}

int qsr_kctx_f64_list(struct qsr_kctx *k, double min, double max, double *out, int cap, int *n) {
  *n = 0;
  if (k->node->type == YAML_SCALAR_NODE) {
    if (!*scalar(k->node)) return QSR_OK;  /* empty = empty list */
    int rc = num_node(k, k->node, min, max, &out[0]);
    if (!rc) *n = 1;
    return rc;
  }
  if (k->node->type != YAML_SEQUENCE_NODE) return qsr_kctx_error(k, "expected a list of numbers");
  for (yaml_node_item_t *it = k->node->data.sequence.items.start; it < k->node->data.sequence.items.top; it++) {
    if (*n >= cap) return qsr_kctx_error(k, "more than %d entries", cap);
    yaml_node_t *e = yaml_document_get_node(k->doc, *it);
    int rc = num_node(k, e, min, max, &out[*n]);
    if (rc) return rc;
    (*n)++;
  }
  return QSR_OK;
}

/* Does table path p match the dotted path of k? */
static int match(const char *p, const struct qsr_kctx *k) {
  int i = 0;
  while (*p) {
    if (i >= k->nseg) return 0;
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (!(len == 1 && *p == '*') && (strlen(k->seg[i]) != len || strncmp(p, k->seg[i], len))) return 0;
    i++;
    p += len + (dot ? 1 : 0);
    if (!dot) break;
  }
  return i == k->nseg;
}

/* Is the path of k a proper prefix of some table row? */
static int is_prefix(const struct qsr_key *keys, int nkeys, const struct qsr_kctx *k) {
  for (int r = 0; r < nkeys; r++) {
    const char *p = keys[r].path;
    int i = 0;
    while (i < k->nseg) {
      const char *dot = strchr(p, '.');
      if (!dot) break;
      size_t len = (size_t)(dot - p);
      if (!(len == 1 && *p == '*') && (strlen(k->seg[i]) != len || strncmp(p, k->seg[i], len))) break;
      i++;
      p = dot + 1;
    }
    if (i == k->nseg) return 1;
  }
  return 0;
}

static void set_path(struct qsr_kctx *k, const char *path) {
  snprintf(k->path, sizeof k->path, "%s", path);
  snprintf(k->path_buf, sizeof k->path_buf, "%s", path);
  k->nseg = 0;
  char *s = k->path_buf;
  while (s && k->nseg < 8) {
    k->seg[k->nseg++] = s;
    s = strchr(s, '.');
    if (s) *s++ = '\0';
  }
}

/* Lists the keys under the same parent, for an "unknown key" message. */
static void known_siblings(const struct qsr_key *keys, int nkeys, const struct qsr_kctx *k, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  struct qsr_kctx parent = *k;
  const char *last = strrchr(k->path, '.');
  size_t plen = last ? (size_t)(last - k->path) + 1 : 0;
  (void)parent;
  for (int r = 0; r < nkeys; r++) {
    if (strncmp(keys[r].path, k->path, plen)) continue;
    const char *rest = keys[r].path + plen;
    size_t len = strcspn(rest, ".");
    char item[64];
    snprintf(item, sizeof item, "%.*s", (int)len, rest);
    if (strstr(buf, item) && (strstr(buf, item) == buf || strstr(buf, item)[-1] == ' ')) continue;
    int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", item);
    if (w < 0 || (size_t)w >= cap - used) break;
    used += (size_t)w;
  }
}

static int set_value(const struct qsr_key *key, void *obj, struct qsr_kctx *k) {
  char *base = (char *)obj + key->off;
  switch (key->type) {
  case QSR_K_F64: return qsr_kctx_f64(k, key->min, key->max, (double *)base);
  case QSR_K_INT: return qsr_kctx_int(k, key->min, key->max, (int *)base);
  case QSR_K_BOOL: {
    const char *s = scalar(k->node);
    if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1"))) *(int *)base = 1;
    else if (s && (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0"))) *(int *)base = 0;
    else return qsr_kctx_error(k, "expected true or false");
    return QSR_OK;
  }
  case QSR_K_STR: {
    const char *s = NULL;
    int rc = qsr_kctx_str(k, &s);
    if (rc) return rc;
    if (strlen(s) >= QSR_NAME_MAX) return qsr_kctx_error(k, "longer than %d characters", QSR_NAME_MAX - 1);
    snprintf(base, QSR_NAME_MAX, "%s", s);
    return QSR_OK;
  }
  case QSR_K_ENUM: {
    const char *s = scalar(k->node);
    char list[256] = "";
    for (int i = 0; key->names[i]; i++) {
      if (s && !strcmp(s, key->names[i])) { *(int *)base = i; return QSR_OK; }
      size_t u = strlen(list);
      snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", key->names[i]);
    }
    return qsr_kctx_error(k, "expected one of %s, got '%s'", list, s ? s : "(not a scalar)");
  }
  case QSR_K_CUSTOM: return key->set(obj, k);
  default: QSR_ASSERT(0); return QSR_ERR_CONFIG;
  }
}

/* Sets one leaf; returns rc. */
static int set_leaf(const struct qsr_key *keys, int nkeys, void *obj, uint8_t *seen, struct qsr_kctx *k) {
  for (int r = 0; r < nkeys; r++) {
    if (!match(keys[r].path, k)) continue;
    if (seen && seen[r] && k->line > 0 && !strchr(keys[r].path, '*'))
      return qsr_kctx_error(k, "duplicate key");
    int rc = set_value(&keys[r], obj, k);
    if (!rc && seen) seen[r] = 1;
    return rc;
  }
  char sib[256];
  known_siblings(keys, nkeys, k, sib, sizeof sib);
  return qsr_kctx_error(k, "unknown key%s%s%s", sib[0] ? " (known here: " : "", sib, sib[0] ? ")" : "");
}

static int walk(const struct qsr_key *keys, int nkeys, void *obj, uint8_t *seen, struct qsr_kctx *k,
                yaml_node_t *map, const char *prefix) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *kn = yaml_document_get_node(k->doc, p->key);
    yaml_node_t *vn = yaml_document_get_node(k->doc, p->value);
    const char *ks = scalar(kn);
    char path[128];
    k->line = (int)kn->start_mark.line + 1;
    k->col = (int)kn->start_mark.column + 1;
    if (!ks) { set_path(k, prefix); return qsr_kctx_error(k, "keys must be plain scalars"); }
    snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", ks);
    set_path(k, path);
    k->node = vn;
    int leaf = 0;
    for (int r = 0; r < nkeys && !leaf; r++) leaf = match(keys[r].path, k);
    int rc;
    if (!leaf && vn->type == YAML_MAPPING_NODE && is_prefix(keys, nkeys, k)) {
      rc = walk(keys, nkeys, obj, seen, k, vn, path);
    } else {
      if (leaf) {  /* value errors point at the value; unknown keys at the key */
        k->line = (int)vn->start_mark.line + 1;
        k->col = (int)vn->start_mark.column + 1;
      }
      rc = set_leaf(keys, nkeys, obj, seen, k);
    }
    if (rc) return rc;
  }
  return QSR_OK;
}

static int parse_doc(yaml_parser_t *ps, yaml_document_t *doc, const char *origin, char **err) {
  if (!yaml_parser_load(ps, doc)) {
    int rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s%s%s", origin,
                      ps->problem_mark.line + 1, ps->problem_mark.column + 1,
                      ps->problem ? ps->problem : "parse error", ps->context ? " " : "",
                      ps->context ? ps->context : "");
    return rc;
  }
  return QSR_OK;
}

char *qsr_spec_read_file(const char *path, char **err) {
  FILE *f = fopen(path, "rb");
  if (!f) { qsr_errf(err, QSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
  char *s = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? 2 * cap : 8192;
      char *t = realloc(s, cap);
      if (!t) { free(s); fclose(f); qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", path); return NULL; }
      s = t;
    }
    size_t got = fread(s + n, 1, 4096, f);
    n += got;
    if (got < 4096) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) { free(s); qsr_errf(err, QSR_ERR_IO, "%s: read error", path); return NULL; }
  s[n] = '\0';
  return s;
}

int qsr_spec_load(const char *file, const char *section, const struct qsr_key *keys, int nkeys, void *obj,
                  uint8_t *seen, char **err) {
  char *text = qsr_spec_read_file(file, err);
  if (!text) return err && *err && strstr(*err, "out of memory") ? QSR_ERR_NOMEM : QSR_ERR_IO;
  int rc = qsr_spec_load_text(file, text, section, keys, nkeys, obj, seen, err);
  free(text);
  return rc;
}

int qsr_spec_load_text(const char *file, const char *text, const char *section, const struct qsr_key *keys,
                       int nkeys, void *obj, uint8_t *seen, char **err) {
  yaml_parser_t ps;
  yaml_document_t doc;
  int have_doc = 0, rc = QSR_OK;
  struct qsr_kctx k;
  memset(&k, 0, sizeof k);
  k.file = file;
  k.err = err;
  k.doc = &doc;
  if (!yaml_parser_initialize(&ps)) return qsr_errf(err, QSR_ERR_NOMEM, "%s: yaml parser", file);
  yaml_parser_set_input_string(&ps, (const unsigned char *)text, strlen(text));
  if ((rc = parse_doc(&ps, &doc, file, err))) goto out;
  have_doc = 1;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) { rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1:1: empty file", file); goto out; }
  if (root->type != YAML_MAPPING_NODE) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: expected a mapping at the top level", file,
                  root->start_mark.line + 1, root->start_mark.column + 1);
    goto out;
  }
  if (section) {
    yaml_node_pair_t *p = root->data.mapping.pairs.start;
    yaml_node_t *kn = p < root->data.mapping.pairs.top ? yaml_document_get_node(&doc, p->key) : NULL;
    if (!kn || !scalar(kn) || strcmp(scalar(kn), section) || root->data.mapping.pairs.top - p != 1) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: expected exactly one top-level key '%s:'", file,
                    kn ? kn->start_mark.line + 1 : 1, kn ? kn->start_mark.column + 1 : 1, section);
      goto out;
    }
    yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
    if (vn->type != YAML_MAPPING_NODE) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%zu:%zu: %s: expected a mapping", file, vn->start_mark.line + 1,
                    vn->start_mark.column + 1, section);
      goto out;
    }
    root = vn;
  }
  if ((rc = walk(keys, nkeys, obj, seen, &k, root, ""))) goto out;
  for (int r = 0; r < nkeys; r++)
    if ((keys[r].flags & QSR_KEY_REQUIRED) && seen && !seen[r]) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: %s%s%s: required key missing", file, section ? section : "",
                    section ? "." : "", keys[r].path);
      goto out;
    }
out:
  if (have_doc) yaml_document_delete(&doc);
  yaml_parser_delete(&ps);
  return rc;
}

int qsr_spec_set(const char *assign, const struct qsr_key *keys, int nkeys, void *obj, uint8_t *seen,
                 char **err) {
  const char *eq = strchr(assign, '=');
  if (!eq || eq == assign) return qsr_errf(err, QSR_ERR_USAGE, "--set %s: expected key=value", assign);
  struct qsr_kctx k;
  memset(&k, 0, sizeof k);
  char path[128];
  snprintf(path, sizeof path, "%.*s", (int)(eq - assign), assign);
  set_path(&k, path);
  k.file = "--set";
  k.err = err;
  const char *val = eq + 1;
  yaml_parser_t ps;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&ps)) return qsr_errf(err, QSR_ERR_NOMEM, "yaml parser");
  yaml_parser_set_input_string(&ps, (const unsigned char *)val, strlen(val));
  int rc = parse_doc(&ps, &doc, "--set", err);
  if (!rc) {
    k.doc = &doc;
    k.node = yaml_document_get_root_node(&doc);
    if (!k.node) rc = qsr_kctx_error(&k, "missing value");
    else if (k.node->type == YAML_MAPPING_NODE) rc = qsr_kctx_error(&k, "expected a scalar or a list");
    else rc = set_leaf(keys, nkeys, obj, seen, &k);
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&ps);
  return rc;
}
