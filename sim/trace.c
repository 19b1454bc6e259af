/*
** trace.c -- request traces: the file readers (Azure 2023 CSV, plain CSV,
** Mooncake JSONL), the synthetic generator and scale/head/free. Contract in
** trace.h; formats, grammar and errors in docs/simulate.md ("Traces").
**
** Files are read a line at a time with getline, so a line may be of any
** length. The format is told by the first line that is not blank or a '#'
** comment:
**   '{'                                   Mooncake JSONL (a small scanner for
**                                         flat objects; no JSON library)
**   a header naming ContextTokens or      Azure 2023 CSV (wall-clock times,
**   GeneratedTokens (or TIMESTAMP alone)  made relative with days-from-civil)
**   any other header                      plain CSV
** Times are compared in the file's own units (exact for the Azure ticks),
** then made relative to the first row. On any error *t is left zeroed.
**
** Synthetic traces draw, per request in this order, the inter-arrival gap,
** the prompt length, the output length and the complexity from one
** gsl_rng_mt19937 seeded with `seed`: the same spec gives the same trace.
*/
#include "sim/trace.h"

#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#define MOONCAKE_BLOCK_TOKENS 512   /* tokens per hash_ids block */
#define MOONCAKE_FMT "Mooncake JSONL, 512-token blocks"
#define TRACE_MAX_N 100000000       /* synthetic requests, at most (3.2 GB) */
#define JSON_MAX_DEPTH 64           /* nesting of skipped values */

/* ---- building a trace ------------------------------------------------------ */

struct builder {
  struct qsr_trace *t;  /* the trace being filled */
  size_t cap;           /* t->req capacity, requests */
  uint64_t bcap;        /* t->blocks capacity, ids */
  size_t n_out0;        /* rows with 0 output tokens, read as 1 */
  const char *fmt;      /* the format read, for t->source */
};

/* Room for one more request; NULL when out of memory. */
static struct qsr_request *push_req(struct builder *b) {
  struct qsr_trace *t = b->t;
  if (t->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    if (cap > SIZE_MAX / sizeof *t->req) return NULL;
    struct qsr_request *r = realloc(t->req, cap * sizeof *r);
    if (!r) return NULL;
    t->req = r;
    b->cap = cap;
  }
  struct qsr_request *r = &t->req[t->n++];
  memset(r, 0, sizeof *r);
  r->complexity = -1;
  return r;
}

static int push_block(struct builder *b, uint32_t id) {
  struct qsr_trace *t = b->t;
  if (t->n_blocks == b->bcap) {
    uint64_t cap = b->bcap ? b->bcap * 2 : 4096;
    if (cap > SIZE_MAX / sizeof *t->blocks) return -1;
    uint32_t *v = realloc(t->blocks, (size_t)cap * sizeof *v);
    if (!v) return -1;
    t->blocks = v;
    b->bcap = cap;
  }
  t->blocks[t->n_blocks++] = id;
  return 0;
}

/* ---- numbers ----------------------------------------------------------------- */

/* A decimal number and nothing else: no hex, inf or nan (strtod takes them). */
static int parse_real(const char *s, double *v) {
  if (!*s) return -1;
  for (const char *p = s; *p; p++)
    if (!strchr("+-.0123456789eE", *p)) return -1;
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  return *end || !isfinite(*v) ? -1 : 0;
}

/* A whole number ("512", "512.0", "5e2"); range checked by the caller. */
static int parse_whole(const char *s, double *v) {
  return parse_real(s, v) || *v != floor(*v) ? -1 : 0;
}

/* ---- lines ---------------------------------------------------------------------- */

struct reader {
  const char *path;     /* for messages */
  FILE *f;
  char *buf;            /* getline's buffer; owned */
  size_t cap;
  int line;             /* number of the line in buf, 1-based */
};

/* The next line without its "\n" or "\r\n" (and, on line 1, a UTF-8 BOM);
** NULL at the end of the file or on a read error (ferror tells). A NUL byte
** inside a line ends it: such a line then fails to parse, it cannot crash. */
static char *next_line(struct reader *r) {
  ssize_t len = getline(&r->buf, &r->cap, r->f);
  if (len < 0) return NULL;
  r->line++;
  while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == '\r')) r->buf[--len] = 0;
  if (r->line == 1 && !strncmp(r->buf, "\xEF\xBB\xBF", 3)) return r->buf + 3;
  return r->buf;
}

static int blank(const char *s) {
  while (isspace((unsigned char)*s)) s++;
  return !*s;
}

/* ---- CSV (Azure 2023 and plain) -------------------------------------------------- */

enum col {
  COL_ARRIVAL_S, COL_TIMESTAMP_MS, COL_PROMPT, COL_OUTPUT, COL_COMPLEXITY,   /* plain */
  COL_AZ_TIME, COL_AZ_PROMPT, COL_AZ_OUTPUT,                                /* Azure 2023 */
  COL_COUNT
};
static const char *const col_names[COL_COUNT] = {
  [COL_ARRIVAL_S] = "arrival_s",
  [COL_TIMESTAMP_MS] = "timestamp_ms",
  [COL_PROMPT] = "prompt_tokens",
  [COL_OUTPUT] = "output_tokens",
  [COL_COMPLEXITY] = "complexity",
  [COL_AZ_TIME] = "TIMESTAMP",
  [COL_AZ_PROMPT] = "ContextTokens",
  [COL_AZ_OUTPUT] = "GeneratedTokens",
};

/* Splits a line at commas in place; fields are trimmed of blanks and of one
** pair of surrounding double quotes. Returns the count, or -1 (no memory). */
static int split_csv(char *line, char ***fv, int *fcap) {
  int n = 0;
  for (char *p = line;;) {
    char *end = strchr(p, ',');
    if (end) *end = 0;
    while (isspace((unsigned char)*p)) p++;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) p[--len] = 0;
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
      p[len - 1] = 0;
      p++;
    }
    if (n == *fcap) {
      int cap = *fcap ? *fcap * 2 : 16;
      char **v = realloc(*fv, (size_t)cap * sizeof *v);
      if (!v) return -1;
      *fv = v;
      *fcap = cap;
    }
    (*fv)[n++] = p;
    if (!end) return n;
    p = end + 1;
  }
}

static int64_t days_from_civil(int64_t y, int m, int d) {
  /* H. Hinnant's algorithm: proleptic Gregorian, day 0 = 1970-01-01 */
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;                                  /* [0, 399] */
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
  return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (!isdigit((unsigned char)**p)) return -1;
    *v = *v * 10 + (**p - '0');
  }
  return 0;
}

/* "YYYY-MM-DD HH:MM:SS[.f...]" (up to 9 fraction digits; 'T' also separates)
** -> ns since 1970-01-01 (no time zone: the file's clock is taken as is, and
** only differences are used). Years 1900-2100. */
static int parse_wallclock(const char *s, int64_t *ns) {
  static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  int y, mo, d, h, mi, sec, frac = 0, nd = 0;
  const char *p = s;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d)) return -1;
  if ((*p != ' ' && *p != 'T') || (p++, digits(&p, 2, &h)) || *p++ != ':' || digits(&p, 2, &mi) ||
      *p++ != ':' || digits(&p, 2, &sec))
    return -1;
  if (*p == '.') {
    for (p++; isdigit((unsigned char)*p); p++, nd++)
      if (nd < 9) frac = frac * 10 + (*p - '0');
    if (!nd || nd > 9) return -1;
    for (int i = nd; i < 9; i++) frac *= 10;
  }
  /* 1900-2100 keeps ns and differences of ns inside int64 */
  if (*p || y < 1900 || y > 2100 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59) return -1;
  if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return -1;
  *ns = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000000000) + frac;
  return 0;
}

/* A token count of column `name` on line `line`: >= lo (1 for prompts, 0 for outputs). */
static int csv_count(const char *path, int line, const char *name, const char *s, int lo, int32_t *out,
                     char **err) {
  double v;
  if (!*s) return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s is empty", path, line, name);
  if (parse_whole(s, &v))
    return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s '%.40s' is not a whole number", path, line, name, s);
  if (v < lo)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s %.40s: must be >= %d (%s)", path, line, name, s, lo,
                    lo ? "no request has an empty prompt" : "a negative length");
  if (v > INT32_MAX) return qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s %.40s: too large", path, line, name, s);
  *out = (int32_t)v;
  return QSR_OK;
}

static int read_csv(struct reader *r, char *header, struct builder *b, char **err) {
  struct qsr_trace *t = b->t;
  char **fv = NULL;
  int fcap = 0, rc = QSR_OK, col[COL_COUNT], hline = r->line, nf;
  int64_t ns0 = 0, ns_prev = 0;
  double raw0 = 0, raw_prev = 0;
  char prev_txt[64] = "";
  int prev_line = 0;

  for (int c = 0; c < COL_COUNT; c++) col[c] = -1;
  if ((nf = split_csv(header, &fv, &fcap)) < 0) goto nomem;
  for (int i = 0; i < nf; i++)
    for (int c = 0; c < COL_COUNT; c++)
      if (!strcasecmp(fv[i], col_names[c])) {
        if (col[c] >= 0) {
          rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: column %s appears twice (columns %d and %d)", r->path, hline,
                        col_names[c], col[c] + 1, i + 1);
          goto out;
        }
        col[c] = i;
      }
  int azure = col[COL_AZ_PROMPT] >= 0 || col[COL_AZ_OUTPUT] >= 0 ||
              (col[COL_AZ_TIME] >= 0 && col[COL_PROMPT] < 0 && col[COL_OUTPUT] < 0);
  int c_time = azure ? COL_AZ_TIME : col[COL_ARRIVAL_S] >= 0 ? COL_ARRIVAL_S : COL_TIMESTAMP_MS;
  int c_prompt = azure ? COL_AZ_PROMPT : COL_PROMPT, c_output = azure ? COL_AZ_OUTPUT : COL_OUTPUT;
  int c_cx = azure ? -1 : COL_COMPLEXITY;
  char missing[128] = "";
  int n_missing = 0;
  if (!azure && col[COL_ARRIVAL_S] >= 0 && col[COL_TIMESTAMP_MS] >= 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: both arrival_s and timestamp_ms columns: keep one", r->path, hline);
    goto out;
  }
  const char *need[3] = { azure ? "TIMESTAMP" : "arrival_s (or timestamp_ms)",
                          azure ? "ContextTokens" : "prompt_tokens", azure ? "GeneratedTokens" : "output_tokens" };
  const int have[3] = { col[c_time] >= 0, col[c_prompt] >= 0, col[c_output] >= 0 };
  for (int i = 0; i < 3; i++)
    if (!have[i]) {
      if (n_missing++) strcat(missing, ", ");
      strcat(missing, need[i]);
    }
  if (n_missing) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: missing column%s %s (%s)", r->path, hline, n_missing > 1 ? "s" : "",
                  missing,
                  azure ? "an Azure 2023 trace has TIMESTAMP,ContextTokens,GeneratedTokens"
                        : "a plain trace CSV has arrival_s or timestamp_ms, prompt_tokens, output_tokens, "
                          "optional complexity, in any order");
    goto out;
  }

  const char *tname = col_names[c_time], *pname = col_names[c_prompt], *oname = col_names[c_output];
  char *line;
  while ((line = next_line(r))) {
    if (blank(line) || *line == '#') continue;
    if ((nf = split_csv(line, &fv, &fcap)) < 0) goto nomem;
    int want = 0;
    for (int i = 0; i < COL_COUNT; i++)
      if (col[i] + 1 > want) want = col[i] + 1;
    if (nf < want) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %d field%s, the header (line %d) has at least %d", r->path,
                    r->line, nf, nf == 1 ? "" : "s", hline, want);
      goto out;
    }
    struct qsr_request *q = push_req(b);
    if (!q) goto nomem;
    const char *ts = fv[col[c_time]];
    double rel;
    if (azure) {
      int64_t ns;
      if (parse_wallclock(ts, &ns)) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s '%.40s' is not a time YYYY-MM-DD HH:MM:SS.fffffff", r->path,
                      r->line, tname, ts);
        goto out;
      }
      if (t->n == 1) ns0 = ns_prev = ns;
      if (ns < ns_prev) goto unsorted;
      ns_prev = ns;
      rel = (double)(ns - ns0) * 1e-9;
    } else {
      double v;
      if (parse_real(ts, &v)) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s '%.40s' is not a number", r->path, r->line, tname, ts);
        goto out;
      }
      if (t->n == 1) raw0 = raw_prev = v;
      if (v < raw_prev) goto unsorted;
      raw_prev = v;
      rel = (v - raw0) * (c_time == COL_TIMESTAMP_MS ? 1e-3 : 1);
    }
    snprintf(prev_txt, sizeof prev_txt, "%s", ts);
    prev_line = r->line;
    q->arrival_s = rel;
    if ((rc = csv_count(r->path, r->line, pname, fv[col[c_prompt]], 1, &q->prompt, err))) goto out;
    if ((rc = csv_count(r->path, r->line, oname, fv[col[c_output]], 0, &q->output, err))) goto out;
    if (!q->output) {
      q->output = 1;
      b->n_out0++;
    }
    if (c_cx >= 0 && col[c_cx] >= 0 && *fv[col[c_cx]]) {
      const char *s = fv[col[c_cx]];
      double v;
      if (parse_real(s, &v) || v < 0 || v > 1) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: complexity '%.40s' is not a number in [0,1]", r->path, r->line, s);
        goto out;
      }
      q->complexity = (float)v;
    }
    continue;
  unsorted:
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s %.40s is earlier than %s on line %d: rows must be sorted by time",
                  r->path, r->line, tname, ts, prev_txt, prev_line);
    goto out;
  }
  b->fmt = azure ? "Azure 2023 CSV" : "plain CSV";
  goto out;
nomem:
  rc = qsr_errf(err, QSR_ERR_NOMEM, "%s:%d: out of memory", r->path, r->line);
out:
  free(fv);
  return rc;
}

/* ---- Mooncake JSONL ----------------------------------------------------------- */

static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
  return p;
}

/* p at '"': the byte after the closing quote, *s and *len the raw contents; NULL if unterminated. */
static const char *js_string(const char *p, const char **s, size_t *len) {
  const char *q = ++p;
  for (; *q != '"'; q++) {
    if (!*q) return NULL;
    if (*q == '\\' && !*++q) return NULL;
  }
  *s = p;
  *len = (size_t)(q - p);
  return q + 1;
}

/* A JSON number at p -> *v; the byte after it, or NULL. */
static const char *js_number(const char *p, double *v) {
  size_t len = strspn(p, "+-.0123456789eE");
  char tmp[64];
  if (!len || len >= sizeof tmp || (*p != '-' && !isdigit((unsigned char)*p))) return NULL;
  memcpy(tmp, p, len);
  tmp[len] = 0;
  return parse_real(tmp, v) ? NULL : p + len;
}

/* Skips any JSON value at p (of a key we do not read); NULL with *why on bad syntax. */
static const char *js_skip(const char *p, const char **why) {
  char close[JSON_MAX_DEPTH];
  int depth = 0;
  const char *s;
  size_t len;
  double v;
  for (;;) {
    p = ws(p);                                   /* a value */
    if (*p == '"') {
      if (!(p = js_string(p, &s, &len))) return *why = "unterminated string", NULL;
    } else if (*p == '{' || *p == '[') {
      if (depth == JSON_MAX_DEPTH) return *why = "nested too deeply", NULL;
      close[depth++] = *p == '{' ? '}' : ']';
      p = ws(p + 1);
      if (*p == close[depth - 1]) {
        p++;
        depth--;
      } else {
        if (close[depth - 1] == '}') {
          if (*p != '"' || !(p = js_string(p, &s, &len))) return *why = "expected a key string", NULL;
          if (*(p = ws(p)) != ':') return *why = "expected ':'", NULL;
          p++;
        }
        continue;
      }
    } else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4)) {
      p += 4;
    } else if (!strncmp(p, "false", 5)) {
      p += 5;
    } else if (!(p = js_number(p, &v))) {
      return *why = "expected a value", NULL;
    }
    for (;;) {                                   /* after a value */
      if (!depth) return p;
      p = ws(p);
      if (*p == close[depth - 1]) {
        p++;
        depth--;
      } else if (*p == ',') {
        p = ws(p + 1);
        if (close[depth - 1] == '}') {
          if (*p != '"' || !(p = js_string(p, &s, &len))) return *why = "expected a key string", NULL;
          if (*(p = ws(p)) != ':') return *why = "expected ':'", NULL;
          p++;
        }
        break;
      } else {
        return *why = "expected ',' or a closing bracket", NULL;
      }
    }
  }
}

enum { JK_TIMESTAMP, JK_INPUT, JK_OUTPUT, JK_HASH_IDS, JK_COUNT };
static const char *const jk_names[JK_COUNT] = { "timestamp", "input_length", "output_length", "hash_ids" };

static int read_jsonl(struct reader *r, char *first, struct builder *b, char **err) {
  struct qsr_trace *t = b->t;
  double ms0 = 0, ms_prev = 0;
  int prev_line = 0, rc = QSR_OK;
  const char *why = NULL, *p = NULL;
  char *line = first;

  t->block_tokens = MOONCAKE_BLOCK_TOKENS;
  for (; line; line = next_line(r)) {
    if (blank(line)) continue;
    struct qsr_request *q = push_req(b);
    if (!q) goto nomem;
    q->block_off = t->n_blocks;
    double val[JK_COUNT] = { 0 };
    int seen[JK_COUNT] = { 0 }, vcol[JK_COUNT] = { 0 };
    p = ws(line);
    if (*p != '{') {
      why = "expected '{': one JSON object a line";
      goto syntax;
    }
    p = ws(p + 1);
    if (*p == '}') p++;
    else
      for (;;) {
        const char *key;
        size_t klen;
        int k;
        if (*p != '"' || !(p = js_string(p, &key, &klen))) {
          why = "expected a key string";
          goto syntax;
        }
        if (*(p = ws(p)) != ':') {
          why = "expected ':'";
          goto syntax;
        }
        p = ws(p + 1);
        for (k = 0; k < JK_COUNT; k++)
          if (strlen(jk_names[k]) == klen && !memcmp(key, jk_names[k], klen)) break;
        if (k < JK_COUNT && seen[k]) {
          rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: %s appears twice", r->path, r->line, (int)(p - line) + 1,
                        jk_names[k]);
          goto out;
        }
        if (k < JK_COUNT) {
          seen[k] = 1;
          vcol[k] = (int)(p - line) + 1;
        }
        if (k == JK_HASH_IDS) {
          if (*p != '[') {
            why = "hash_ids: expected a list of block ids";
            goto syntax;
          }
          p = ws(p + 1);
          if (*p == ']') p++;
          else
            for (;;) {
              double id;
              const char *at = p;
              if (!(p = js_number(at, &id)) || id != floor(id) || id < 0 || id > UINT32_MAX) {
                p = at;
                why = "hash_ids: expected a block id (a whole number in [0, 2^32))";
                goto syntax;
              }
              if (push_block(b, (uint32_t)id)) goto nomem;
              p = ws(p);
              if (*p == ']') {
                p++;
                break;
              }
              if (*p != ',') {
                why = "hash_ids: expected ',' or ']'";
                goto syntax;
              }
              p = ws(p + 1);
            }
        } else if (k < JK_COUNT) {
          if (!(p = js_number(p, &val[k]))) {
            rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: %s: expected a number", r->path, r->line, vcol[k],
                          jk_names[k]);
            goto out;
          }
        } else if (!(p = js_skip(p, &why))) {
          p = line + strlen(line);
          goto syntax;
        }
        p = ws(p);
        if (*p == '}') {
          p++;
          break;
        }
        if (*p != ',') {
          why = "expected ',' or '}'";
          goto syntax;
        }
        p = ws(p + 1);
      }
    if (*(p = ws(p))) {
      why = "text after the object (one object a line)";
      goto syntax;
    }
    for (int k = 0; k < JK_HASH_IDS; k++)
      if (!seen[k]) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: no %s (a Mooncake line has timestamp, input_length, "
                      "output_length, hash_ids)", r->path, r->line, jk_names[k]);
        goto out;
      }
    double ms = val[JK_TIMESTAMP], in = val[JK_INPUT], outl = val[JK_OUTPUT];
    if (t->n == 1) ms0 = ms_prev = ms;
    if (ms < ms_prev) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: timestamp %.17g is earlier than %.17g on line %d: rows must "
                    "be sorted by time", r->path, r->line, vcol[JK_TIMESTAMP], ms, ms_prev, prev_line);
      goto out;
    }
    ms_prev = ms;
    prev_line = r->line;
    q->arrival_s = (ms - ms0) * 1e-3;
    if (in != floor(in) || in < 1 || in > INT32_MAX) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: input_length %.17g: must be a whole number >= 1", r->path,
                    r->line, vcol[JK_INPUT], in);
      goto out;
    }
    if (outl != floor(outl) || outl < 0 || outl > INT32_MAX) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: output_length %.17g: must be a whole number >= 0", r->path,
                    r->line, vcol[JK_OUTPUT], outl);
      goto out;
    }
    q->prompt = (int32_t)in;
    q->output = (int32_t)outl;
    if (!q->output) {
      q->output = 1;
      b->n_out0++;
    }
    if (t->n_blocks - q->block_off > UINT32_MAX) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: too many hash_ids", r->path, r->line);
      goto out;
    }
    q->n_blocks = (uint32_t)(t->n_blocks - q->block_off);
  }
  b->fmt = MOONCAKE_FMT;
  goto out;
syntax:
  rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d:%d: malformed JSON: %s", r->path, r->line, (int)(p - line) + 1, why);
  goto out;
nomem:
  rc = qsr_errf(err, QSR_ERR_NOMEM, "%s:%d: out of memory", r->path, r->line);
out:
  return rc;
}

/* ---- reading ----------------------------------------------------------------- */

int qsr_trace_read(const char *path, struct qsr_trace *t, char **err) {
  struct reader r = { path, NULL, NULL, 0, 0 };
  struct builder b = { t, 0, 0, 0, "" };
  char *line;
  int rc = QSR_OK;

  memset(t, 0, sizeof *t);
  if (err) *err = NULL;
  if (!(r.f = fopen(path, "r"))) {
    rc = qsr_errf(err, QSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  while ((line = next_line(&r)) && (blank(line) || *line == '#')) {
  }
  if (line) {
    const char *p = ws(line);
    rc = *p == '{' ? read_jsonl(&r, line, &b, err) : read_csv(&r, line, &b, err);
    if (rc) goto out;
  }
  if (ferror(r.f)) {
    rc = qsr_errf(err, QSR_ERR_IO, "%s:%d: read error: %s", path, r.line + 1, strerror(errno));
    goto out;
  }
  if (!t->n) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: empty trace: no requests", path, r.line ? r.line : 1);
    goto out;
  }
  if (t->n < b.cap) {                       /* give back the doubling slack */
    struct qsr_request *q = realloc(t->req, t->n * sizeof *q);
    if (q) t->req = q;
  }
  if (t->blocks && t->n_blocks < b.bcap) {
    uint32_t *v = realloc(t->blocks, (size_t)t->n_blocks * sizeof *v);
    if (v) t->blocks = v;
  }
  const char *base = strrchr(path, '/');
  if (b.n_out0)
    snprintf(t->source, sizeof t->source, "%s (%s); %zu row%s with 0 output tokens read as 1", base ? base + 1 : path,
             b.fmt, b.n_out0, b.n_out0 == 1 ? "" : "s");
  else snprintf(t->source, sizeof t->source, "%s (%s)", base ? base + 1 : path, b.fmt);
out:
  if (rc) qsr_trace_free(t);
  if (r.f) fclose(r.f);
  free(r.buf);
  return rc;
}

/* Appends to t->source (cut at its size). */
static void source_add(struct qsr_trace *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void source_add(struct qsr_trace *t, const char *fmt, ...) {
  size_t len = strlen(t->source);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->source + len, sizeof t->source - len, fmt, ap);
  va_end(ap);
}

/* ---- synthetic traces ----------------------------------------------------------- */

enum { LEN_FIXED, LEN_UNIFORM, LEN_EXP, LEN_LOGNORMAL };

struct lendist {
  int kind;             /* LEN_* */
  double a, b;          /* fixed: a; uniform: [a, b]; exp: mean a; lognormal: mu a, sigma b */
};

#define SPEC_ERR(...) qsr_errf(err, QSR_ERR_CONFIG, "synthetic trace: " __VA_ARGS__)

/* N | uniform:A:B | exp:MEAN | lognormal:MEAN:CV */
static int parse_len(const char *key, const char *val, struct lendist *d, char **err) {
  char buf[128], *f[4] = { NULL };
  int nf = 0;
  if (strlen(val) >= sizeof buf) return SPEC_ERR("%s: value too long", key);
  strcpy(buf, val);
  for (char *p = buf; nf < 4; nf++) {
    f[nf] = p;
    if (!(p = strchr(p, ':'))) {
      nf++;
      break;
    }
    *p++ = 0;
  }
  double x, y;
  if (nf == 1) {
    if (parse_whole(f[0], &x) || x < 1 || x > INT32_MAX)
      return SPEC_ERR("%s=%s: a fixed length must be a whole number >= 1 (or uniform:A:B, exp:MEAN, "
                      "lognormal:MEAN:CV)", key, val);
    *d = (struct lendist){ LEN_FIXED, x, 0 };
  } else if (!strcmp(f[0], "uniform")) {
    if (nf != 3 || parse_whole(f[1], &x) || parse_whole(f[2], &y) || x < 1 || y < x || y > INT32_MAX)
      return SPEC_ERR("%s=%s: expected uniform:A:B with whole numbers 1 <= A <= B", key, val);
    *d = (struct lendist){ LEN_UNIFORM, x, y };
  } else if (!strcmp(f[0], "exp")) {
    if (nf != 2 || parse_real(f[1], &x) || x <= 0)
      return SPEC_ERR("%s=%s: expected exp:MEAN with MEAN > 0", key, val);
    *d = (struct lendist){ LEN_EXP, x, 0 };
  } else if (!strcmp(f[0], "lognormal")) {
    if (nf != 3 || parse_real(f[1], &x) || parse_real(f[2], &y) || x <= 0 || y < 0)
      return SPEC_ERR("%s=%s: expected lognormal:MEAN:CV with MEAN > 0, CV >= 0", key, val);
    double s2 = log1p(y * y);               /* sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2/2 */
    *d = (struct lendist){ LEN_LOGNORMAL, log(x) - s2 / 2, sqrt(s2) };
  } else {
    return SPEC_ERR("%s=%s: unknown distribution '%s' (N, uniform:A:B, exp:MEAN, lognormal:MEAN:CV)", key, val,
                    f[0]);
  }
  return QSR_OK;
}

/* Rounded to the nearest token, at least 1. */
static int32_t draw_len(const gsl_rng *rng, const struct lendist *d) {
  double x;
  switch (d->kind) {
  case LEN_FIXED: return (int32_t)d->a;
  case LEN_UNIFORM: return (int32_t)(d->a + (double)gsl_rng_uniform_int(rng, (unsigned long)(d->b - d->a + 1)));
  case LEN_EXP: x = gsl_ran_exponential(rng, d->a); break;
  default: x = gsl_ran_lognormal(rng, d->a, d->b); break;
  }
  x = floor(x + 0.5);
  return x < 1 ? 1 : x > INT32_MAX ? INT32_MAX : (int32_t)x;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t len = strlen(s);
  while (len && isspace((unsigned char)s[len - 1])) s[--len] = 0;
  return s;
}

enum { SK_RATE, SK_CV, SK_N, SK_DURATION, SK_SEED, SK_PROMPT, SK_OUTPUT, SK_COMPLEXITY, SK_COUNT };
static const char *const sk_names[SK_COUNT] = { "rate", "cv", "n", "duration", "seed", "prompt", "output",
                                                "complexity" };

int qsr_trace_synth(const char *spec, struct qsr_trace *t, char **err) {
  const char *val[SK_COUNT] = { NULL };
  char *buf = NULL;
  gsl_rng *rng = NULL;
  struct builder b = { t, 0, 0, 0, NULL };
  struct lendist dp = { LEN_FIXED, 512, 0 }, dout = { LEN_FIXED, 128, 0 };
  double rate = 0, cv = 1, duration = 0, n = 1000, seed = 1, ba = 0, bb = 0, cx = -1;
  int rc = QSR_OK, gamma;

  memset(t, 0, sizeof *t);
  if (err) *err = NULL;
  if (!strncmp(spec, "synthetic:", 10)) spec += 10;
  if (!(buf = strdup(spec))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "synthetic trace: out of memory");
    goto out;
  }
  char *proc = strtok(buf, ","), *item;
  if (proc) proc = trim(proc);
  if (!proc || (strcmp(proc, "poisson") && strcmp(proc, "gamma"))) {
    rc = SPEC_ERR("'%s': expected synthetic:poisson,... or synthetic:gamma,...", proc ? proc : "");
    goto out;
  }
  gamma = !strcmp(proc, "gamma");
  while ((item = strtok(NULL, ","))) {
    char *eq = strchr(item, '='), *v = NULL;
    int k;
    if (eq) {
      *eq = 0;
      v = trim(eq + 1);
    }
    item = trim(item);
    for (k = 0; k < SK_COUNT && strcmp(item, sk_names[k]); k++) {
    }
    if (k == SK_COUNT) {
      rc = SPEC_ERR("unknown key '%s' (keys: rate, cv, n, duration, seed, prompt, output, complexity)", item);
      goto out;
    }
    if (!v || !*v) {
      rc = SPEC_ERR("%s: expected %s=VALUE", item, item);
      goto out;
    }
    if (val[k]) {
      rc = SPEC_ERR("%s given twice", item);
      goto out;
    }
    val[k] = v;
  }
  if (!val[SK_RATE] || parse_real(val[SK_RATE], &rate) || rate <= 0) {
    rc = SPEC_ERR("rate%s%s: must be a number of requests/s > 0", val[SK_RATE] ? "=" : " not given",
                  val[SK_RATE] ? val[SK_RATE] : "");
    goto out;
  }
  if (val[SK_CV] && !gamma) {
    rc = SPEC_ERR("cv: only gamma arrivals have a cv (poisson's is 1)");
    goto out;
  }
  if (val[SK_CV] && (parse_real(val[SK_CV], &cv) || cv <= 0)) {
    rc = SPEC_ERR("cv=%s: must be a number > 0", val[SK_CV]);
    goto out;
  }
  if (val[SK_N] && val[SK_DURATION]) {
    rc = SPEC_ERR("n and duration: give one");
    goto out;
  }
  if (val[SK_N] && (parse_whole(val[SK_N], &n) || n < 1 || n > TRACE_MAX_N)) {
    rc = SPEC_ERR("n=%s: must be a whole number in [1, %d]", val[SK_N], TRACE_MAX_N);
    goto out;
  }
  if (val[SK_DURATION] && (parse_real(val[SK_DURATION], &duration) || duration <= 0)) {
    rc = SPEC_ERR("duration=%s: must be a number of seconds > 0", val[SK_DURATION]);
    goto out;
  }
  if (duration > 0 && duration * rate > TRACE_MAX_N / 2) {
    rc = SPEC_ERR("duration=%s: rate x duration is more than %d requests", val[SK_DURATION], TRACE_MAX_N / 2);
    goto out;
  }
  if (val[SK_SEED] && (parse_whole(val[SK_SEED], &seed) || seed < 0 || seed > 4294967295.0)) {
    rc = SPEC_ERR("seed=%s: must be a whole number in [0, 2^32)", val[SK_SEED]);
    goto out;
  }
  if (val[SK_PROMPT] && (rc = parse_len("prompt", val[SK_PROMPT], &dp, err))) goto out;
  if (val[SK_OUTPUT] && (rc = parse_len("output", val[SK_OUTPUT], &dout, err))) goto out;
  if (val[SK_COMPLEXITY]) {
    const char *s = val[SK_COMPLEXITY];
    char tail[64];
    if (!strncmp(s, "beta:", 5)) {
      int used = 0;
      if (strlen(s) >= sizeof tail || sscanf(s + 5, "%63[^:]:%n", tail, &used) != 1 || !used ||
          parse_real(tail, &ba) || parse_real(s + 5 + used, &bb) || ba <= 0 || bb <= 0) {
        rc = SPEC_ERR("complexity=%s: expected beta:A:B with A, B > 0 (or a number in [0,1])", s);
        goto out;
      }
    } else if (parse_real(s, &cx) || cx < 0 || cx > 1) {
      rc = SPEC_ERR("complexity=%s: expected beta:A:B or a number in [0,1]", s);
      goto out;
    }
  }

  /* Gamma gaps: shape k = 1/cv^2 and scale mean/k, so the mean is 1/rate and the CV cv. */
  double shape = 1 / (cv * cv), scale = cv * cv / rate, tabs = 0, first = 0;
  size_t want = duration > 0 ? (size_t)(duration * rate * 1.05) + 64 : (size_t)n;
  if (!(t->req = malloc(want * sizeof *t->req))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "synthetic trace: out of memory for %zu requests", want);
    goto out;
  }
  b.cap = want;
  if (!(rng = gsl_rng_alloc(gsl_rng_mt19937))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "synthetic trace: out of memory");
    goto out;
  }
  gsl_rng_set(rng, (unsigned long)seed);
  for (size_t i = 0; duration > 0 || i < (size_t)n; i++) {
    tabs += gamma ? gsl_ran_gamma(rng, shape, scale) : gsl_ran_exponential(rng, 1 / rate);
    if (!isfinite(tabs)) {
      rc = SPEC_ERR("rate=%s: arrival times beyond the range of doubles", val[SK_RATE]);
      goto out;
    }
    if (!i) first = tabs;                   /* the first request is at 0 */
    double rel = tabs - first;
    if (duration > 0 && rel >= duration) break;
    if (i == TRACE_MAX_N) {
      rc = SPEC_ERR("duration=%s: more than %d requests", val[SK_DURATION], TRACE_MAX_N);
      goto out;
    }
    struct qsr_request *q = push_req(&b);
    if (!q) {
      rc = qsr_errf(err, QSR_ERR_NOMEM, "synthetic trace: out of memory at %zu requests", i);
      goto out;
    }
    q->arrival_s = rel;
    q->prompt = draw_len(rng, &dp);
    q->output = draw_len(rng, &dout);
    q->complexity = ba > 0 ? (float)gsl_ran_beta(rng, ba, bb) : (float)cx;
  }

  source_add(t, "synthetic %s rate=%g/s", proc, rate);
  if (gamma) source_add(t, " cv=%g", cv);
  if (duration > 0) source_add(t, ", duration=%gs (n=%zu)", duration, t->n);
  else source_add(t, ", n=%zu", t->n);
  source_add(t, ", seed=%.0f, prompt=%s, output=%s", seed, val[SK_PROMPT] ? val[SK_PROMPT] : "512",
             val[SK_OUTPUT] ? val[SK_OUTPUT] : "128");
  if (val[SK_COMPLEXITY]) source_add(t, ", complexity=%s", val[SK_COMPLEXITY]);
  t->synthetic = 1;
out:
  if (rc) qsr_trace_free(t);
  gsl_rng_free(rng);
  free(buf);
  return rc;
}

/* ---- the rest ------------------------------------------------------------------ */

int qsr_trace_load(const char *path_or_spec, struct qsr_trace *t, char **err) {
  if (!strncmp(path_or_spec, "synthetic:", 10)) return qsr_trace_synth(path_or_spec, t, err);
  return qsr_trace_read(path_or_spec, t, err);
}

/* rate_scale must be finite and > 0: callers check user input (the contract is void). */
void qsr_trace_scale(struct qsr_trace *t, double rate_scale) {
  QSR_ASSERT(isfinite(rate_scale) && rate_scale > 0);
  for (size_t i = 0; i < t->n; i++) t->req[i].arrival_s /= rate_scale;
  if (rate_scale != 1) {
    source_add(t, "; rate x%g", rate_scale);
  }
}

void qsr_trace_head(struct qsr_trace *t, size_t n) {
  if (n >= t->n) return;
  t->n = n;
  /* blocks are stored in request order: drop those of the requests cut */
  t->n_blocks = n ? t->req[n - 1].block_off + t->req[n - 1].n_blocks : 0;
}

void qsr_trace_free(struct qsr_trace *t) {
  if (!t) return;
  free(t->req);
  free(t->blocks);
  memset(t, 0, sizeof *t);
}
