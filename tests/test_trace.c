/*
** test_trace.c -- request traces (sim/trace.c): hand-written Azure 2023 CSV
** (day, month, year and leap-day rollovers, 7-digit fractions), plain CSV
** and Mooncake JSONL files whose numbers are worked out by hand; the real
** traces in ../shared/data/traces/ against the counts and means of
** ../shared/data/README.md (skipped when absent); bad input, each error
** naming its line and field; random and very long input; and the synthetic
** generator against the moments of its distributions.
*/
#include "sim/trace.h"
#include "tests/test.h"
#include "util/err.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRACES "../shared/data/traces/"
#define TIME_TOL 1e-9    /* s: relative times are exact differences of 100 ns ticks */
#define MEAN_TOL 0.03    /* relative: sample means of 20,000 draws (std 0.7% or less) */
#define CV_TOL 0.10      /* relative: sample CV of 100,000 gamma gaps with cv 4 (std ~3%) */

#if defined(__SANITIZE_ADDRESS__)
#define SYNTH_1M_MAX_S 10.0  /* sanitizer builds run several times slower */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYNTH_1M_MAX_S 10.0
#endif
#endif
#ifndef SYNTH_1M_MAX_S
#define SYNTH_1M_MAX_S 1.0
#endif

static int rel_eq(double got, double want, double tol) {
  return fabs(got - want) <= tol * fabs(want);
}

static int read_ok(const char *path, struct qsr_trace *t) {
  char *err = NULL;
  int rc = qsr_trace_read(path, t, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc;
}

static int synth_ok(const char *spec, struct qsr_trace *t) {
  char *err = NULL;
  int rc = qsr_trace_synth(spec, t, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc;
}

/* Sorted, lengths >= 1, complexity none or in [0,1], blocks inside the array. */
static int valid(const struct qsr_trace *t) {
  if (!t->n || t->req[0].arrival_s != 0) return 0;
  for (size_t i = 0; i < t->n; i++) {
    const struct qsr_request *q = &t->req[i];
    if ((i && q->arrival_s < q[-1].arrival_s) || q->prompt < 1 || q->output < 1) return 0;
    if (q->complexity > 1 || (q->complexity < 0 && q->complexity != -1)) return 0;
    if (q->block_off + q->n_blocks > t->n_blocks) return 0;
  }
  return 1;
}

static void means(const struct qsr_trace *t, double *prompt, double *output) {
  double p = 0, o = 0;
  for (size_t i = 0; i < t->n; i++) {
    p += t->req[i].prompt;
    o += t->req[i].output;
  }
  *prompt = p / (double)t->n;
  *output = o / (double)t->n;
}

/* Mean and coefficient of variation of the inter-arrival gaps. */
static void gaps(const struct qsr_trace *t, double *mean, double *cv) {
  double s = 0, s2 = 0, m = (double)(t->n - 1);
  for (size_t i = 1; i < t->n; i++) {
    double g = t->req[i].arrival_s - t->req[i - 1].arrival_s;
    s += g;
    s2 += g * g;
  }
  *mean = s / m;
  *cv = sqrt(s2 / m - *mean * *mean) / *mean;
}

/* ---- files -------------------------------------------------------------------- */

static void test_azure_small(void) {
  struct qsr_trace t;
  /* CRLF as in the real files; no newline at the end. Days from 2023-12-31
  ** 23:59:59.5: to 2024-02-29 12:00 are 59 days + 12 h + 0.5 s = 5140800.5 s;
  ** to 2024-03-01 00:00, 60 days + 0.5 s (2024 is a leap year). */
  const char *p = tst_write_tmp("azure-small.csv",
                                "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
                                "2023-12-31 23:59:59.5000000,100,10\r\n"
                                "2024-01-01 00:00:00.2500000,200,0\r\n"
                                "2024-01-01 00:00:01.0000001,300,30\r\n"
                                "2024-02-29 12:00:00.0000000,400,40\r\n"
                                "2024-03-01 00:00:00.0000000,500,50");
  if (read_ok(p, &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 5);
  CU_ASSERT(valid(&t));
  CU_ASSERT_DOUBLE_EQUAL(t.req[0].arrival_s, 0, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(t.req[1].arrival_s, 0.75, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(t.req[2].arrival_s, 1.5000001, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(t.req[3].arrival_s, 5140800.5, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(t.req[4].arrival_s, 5184000.5, TIME_TOL);
  CU_ASSERT(t.req[0].prompt == 100 && t.req[0].output == 10);
  CU_ASSERT(t.req[1].prompt == 200 && t.req[1].output == 1);  /* 0 output tokens read as 1 */
  CU_ASSERT(t.req[4].prompt == 500 && t.req[4].output == 50);
  CU_ASSERT(t.req[2].complexity < 0 && t.req[2].n_blocks == 0);
  CU_ASSERT(t.block_tokens == 0 && t.blocks == NULL && !t.synthetic);
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "azure-small.csv (Azure 2023 CSV)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "; 1 row with 0 output tokens read as 1"));
  qsr_trace_free(&t);
  CU_ASSERT(t.req == NULL && t.n == 0);

  /* a month rollover 200 ns apart: all 7 fraction digits count */
  p = tst_write_tmp("azure-month.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                       "2023-11-30 23:59:59.9999999,1,1\n"
                                       "2023-12-01 00:00:00.0000001,2,2\n");
  if (read_ok(p, &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 2);
  CU_ASSERT_DOUBLE_EQUAL(t.req[1].arrival_s, 2e-7, 1e-12);
  CU_ASSERT_PTR_NULL(strstr(t.source, "read as 1"));
  qsr_trace_free(&t);
}

static int have(const char *path) {
  if (!access(path, R_OK)) return 1;
  fprintf(stderr, "\n  skipped: %s not found\n", path);
  CU_PASS("real trace file not found: skipped");
  return 0;
}

static void test_azure_real(void) {
  struct qsr_trace t;
  double mp, mo;
  if (have(TRACES "azure-llm-2023-conv.csv")) {
    if (read_ok(TRACES "azure-llm-2023-conv.csv", &t)) return;
    CU_ASSERT_EQUAL(t.n, 19366);
    CU_ASSERT(valid(&t));
    means(&t, &mp, &mo);
    CU_ASSERT(rel_eq(mp, 1155, REL_TOL));   /* data/README.md: mean context 1,155 */
    CU_ASSERT(rel_eq(mo, 211, REL_TOL));    /* mean generated 211 */
    /* 18:15:46.6805900 to 19:14:08.4025270 */
    CU_ASSERT_DOUBLE_EQUAL(t.req[t.n - 1].arrival_s, 3501.721937, TIME_TOL);
    CU_ASSERT(rel_eq((double)t.n / t.req[t.n - 1].arrival_s, 5.53, REL_TOL));
    CU_ASSERT_STRING_EQUAL(t.source, "azure-llm-2023-conv.csv (Azure 2023 CSV)");
    qsr_trace_free(&t);
  }
  if (have(TRACES "azure-llm-2023-code.csv")) {
    if (read_ok(TRACES "azure-llm-2023-code.csv", &t)) return;
    CU_ASSERT_EQUAL(t.n, 8819);
    CU_ASSERT(valid(&t));
    means(&t, &mp, &mo);
    CU_ASSERT(rel_eq(mp, 2048, REL_TOL));
    CU_ASSERT(rel_eq(mo, 27.9, REL_TOL));
    CU_ASSERT_DOUBLE_EQUAL(t.req[t.n - 1].arrival_s, 3435.948056, TIME_TOL);
    qsr_trace_free(&t);
  }
}

static void test_mooncake_real(void) {
  struct qsr_trace t;
  double mp, mo;
  if (!have(TRACES "mooncake-conversation.jsonl") || read_ok(TRACES "mooncake-conversation.jsonl", &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 12031);
  CU_ASSERT(valid(&t));
  CU_ASSERT_EQUAL(t.block_tokens, 512);
  CU_ASSERT_EQUAL(t.n_blocks, 288500);      /* data/README.md: 288,500 block references */
  const struct qsr_request *q = t.req;
  CU_ASSERT(q[0].prompt == 6758 && q[0].output == 500 && q[0].n_blocks == 14 && q[0].block_off == 0);
  CU_ASSERT(t.blocks[0] == 0 && t.blocks[13] == 13);
  /* second line: [0, 14, ..., 27], the shared first block again */
  CU_ASSERT(q[1].prompt == 7322 && q[1].n_blocks == 15 && q[1].block_off == 14);
  CU_ASSERT(t.blocks[14] == 0 && t.blocks[15] == 14 && t.blocks[28] == 27);
  /* every request has ceil(prompt / 512) blocks in this file */
  size_t bad = 0;
  for (size_t i = 0; i < t.n; i++) bad += q[i].n_blocks != (uint32_t)((q[i].prompt + 511) / 512);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_DOUBLE_EQUAL(q[t.n - 1].arrival_s, 3536.999, TIME_TOL);
  means(&t, &mp, &mo);
  CU_ASSERT(rel_eq(mp, 12035, REL_TOL) && rel_eq(mo, 343, REL_TOL));
  CU_ASSERT_STRING_EQUAL(t.source, "mooncake-conversation.jsonl (Mooncake JSONL, 512-token blocks)");
  qsr_trace_head(&t, 2);
  CU_ASSERT(t.n == 2 && t.n_blocks == 29);
  qsr_trace_head(&t, 100);                  /* n >= t.n: no-op */
  CU_ASSERT(t.n == 2);
  qsr_trace_free(&t);
}

static void test_jsonl_small(void) {
  struct qsr_trace t;
  const char *p = tst_write_tmp("small.jsonl",
    "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 0, \"hash_ids\": [1, 2]}\n"
    "\n"
    "  { \"hash_ids\":[3] ,\"output_length\":5,\"note\":\"a \\\"quoted\\\" } string\",\"input_length\":600,"
    " \"extra\": [1, {\"a\": [true, null, -2.5e3]}, \"x\"], \"timestamp\": 1500.5 }\r\n"
    "{\"input_length\": 7, \"timestamp\": 2000, \"output_length\": 3, \"meta\": {}, \"hash_ids\": [], \"f\": false}");
  if (read_ok(p, &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 3);
  CU_ASSERT(valid(&t));
  CU_ASSERT_DOUBLE_EQUAL(t.req[1].arrival_s, 1.5005, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(t.req[2].arrival_s, 2.0, TIME_TOL);
  CU_ASSERT(t.req[0].prompt == 10 && t.req[0].output == 1 && t.req[0].n_blocks == 2);
  CU_ASSERT(t.req[1].prompt == 600 && t.req[1].output == 5 && t.req[1].n_blocks == 1 && t.req[1].block_off == 2);
  CU_ASSERT(t.req[2].prompt == 7 && t.req[2].n_blocks == 0 && t.req[2].block_off == 3);
  CU_ASSERT(t.n_blocks == 3 && t.blocks[0] == 1 && t.blocks[2] == 3);
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "; 1 row with 0 output tokens read as 1"));
  qsr_trace_free(&t);
}

static void test_plain_csv(void) {
  struct qsr_trace t;
  /* shuffled columns, an unknown one, spaces, comments, blank lines, CRLF */
  const char *p = tst_write_tmp("plain.csv", "# made by hand\r\n"
                                             "output_tokens, complexity ,prompt_tokens,id,arrival_s\r\n"
                                             "\r\n"
                                             "10,0.5,100,a,1.5\r\n"
                                             "# a comment between rows\r\n"
                                             "20,,200,b,2.0\r\n"
                                             "30,1,300,c,2\r\n");
  if (read_ok(p, &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 3);
  CU_ASSERT(valid(&t));
  CU_ASSERT_DOUBLE_EQUAL(t.req[1].arrival_s, 0.5, TIME_TOL);
  CU_ASSERT_DOUBLE_EQUAL(t.req[2].arrival_s, 0.5, TIME_TOL);
  CU_ASSERT(t.req[0].prompt == 100 && t.req[0].output == 10 && t.req[0].complexity == 0.5f);
  CU_ASSERT(t.req[1].prompt == 200 && t.req[1].output == 20 && t.req[1].complexity < 0);  /* empty: none */
  CU_ASSERT(t.req[2].prompt == 300 && t.req[2].output == 30 && t.req[2].complexity == 1.0f);
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "plain.csv (plain CSV)"));
  qsr_trace_free(&t);

  p = tst_write_tmp("plain-ms.csv", "timestamp_ms,prompt_tokens,output_tokens\n1000,5,6\n2500,7,8\n");
  if (read_ok(p, &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 2);
  CU_ASSERT_DOUBLE_EQUAL(t.req[1].arrival_s, 1.5, TIME_TOL);
  CU_ASSERT(t.req[1].prompt == 7 && t.req[1].output == 8);
  qsr_trace_free(&t);

  /* qsr_trace_load sends a path to the reader */
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_trace_load(p, &t, &err), QSR_OK);
  CU_ASSERT(t.n == 2 && !t.synthetic);
  qsr_trace_free(&t);
  free(err);
}

/* ---- bad input ----------------------------------------------------------------------- */

static const struct bad {
  const char *name, *text;
  const char *want[3];          /* substrings of the message */
} bad_tab[] = {
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n1.25,10,10\n0.5,10,10\n", { "x.csv:3:", "0.5", "1.25" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,0,5\n", { "x.csv:3:", "prompt_tokens", ">= 1" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,-4,5\n", { "x.csv:2:", "prompt_tokens", "-4" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,4,5\n1,4,-1\n", { "x.csv:3:", "output_tokens", "-1" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,abc,5\n", { "x.csv:2:", "prompt_tokens", "'abc'" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,1.5,5\n", { "x.csv:2:", "prompt_tokens", "whole" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,5\nnan,1,5\n", { "x.csv:3:", "arrival_s", "'nan'" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,\n", { "x.csv:2:", "output_tokens", "empty" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,1\n", { "x.csv:3:", "2 fields", NULL } },
  { "x.csv", "arrival_s,prompt_tokens\n0,1\n", { "x.csv:1:", "missing column", "output_tokens" } },
  { "x.csv", "\n# c\nprompt_tokens,output_tokens\n", { "x.csv:3:", "arrival_s", NULL } },
  { "x.csv", "arrival_s,timestamp_ms,prompt_tokens,output_tokens\n", { "x.csv:1:", "timestamp_ms", NULL } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens,prompt_tokens\n", { "x.csv:1:", "twice", NULL } },
  { "x.csv", "# c\narrival_s,prompt_tokens,output_tokens,complexity\n0,1,1,0.5\n1,1,1,1.5\n",
    { "x.csv:4:", "complexity", "1.5" } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens,complexity\n0,1,1,-0.1\n", { "x.csv:2:", "complexity", NULL } },
  { "x.csv", "arrival_s,prompt_tokens,output_tokens\n# nothing\n", { "x.csv:2:", "empty trace", NULL } },
  { "x.csv", "", { "x.csv:1:", "empty trace", NULL } },
  { "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:50.0000000,1,1\n"
             "2023-11-16 18:15:49.9000000,1,1\n", { "a.csv:3:", "18:15:49.9000000", "18:15:50.0000000" } },
  { "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-02-29 00:00:00.0,1,1\n", { "a.csv:2:", "TIMESTAMP", NULL } },
  { "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 24:00:00,1,1\n", { "a.csv:2:", "TIMESTAMP", NULL } },
  { "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,0,1\n",
    { "a.csv:2:", "ContextTokens", ">= 1" } },
  { "a.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:00:00,1\n", { "a.csv:1:", "GeneratedTokens", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1}\n{\"timestamp\": 1, \"input_length\": 5}\n",
    { "m.jsonl:2:", "output_length", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 5 \"output_length\": 1}\n", { "m.jsonl:1:36:", "malformed", NULL } },
  { "m.jsonl", "{\"timestamp\": 5, \"input_length\": 5, \"output_length\": 1}\n"
               "{\"timestamp\": 4, \"input_length\": 5, \"output_length\": 1}\n", { "m.jsonl:2:", "timestamp 4", "5" } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1}\n", { "m.jsonl:1:", "input_length", ">= 1" } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": -1}\n", { "m.jsonl:1:", "output_length", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": \"7\", \"output_length\": 1}\n", { "m.jsonl:1:", "input_length", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1, -2]}\n",
    { "m.jsonl:1:", "hash_ids", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"x\": \"unterminated}\n",
    { "m.jsonl:1:", "unterminated", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1} {}\n", { "m.jsonl:1:", "after", NULL } },
  { "m.jsonl", "{\"timestamp\": 0, \"timestamp\": 1, \"input_length\": 1, \"output_length\": 1}\n",
    { "m.jsonl:1:", "twice", NULL } },
};

static void test_bad_input(void) {
  for (size_t i = 0; i < sizeof bad_tab / sizeof bad_tab[0]; i++) {
    const struct bad *b = &bad_tab[i];
    struct qsr_trace t;
    char *err = NULL;
    int rc = qsr_trace_read(tst_write_tmp(b->name, b->text), &t, &err);
    int ok = rc == QSR_ERR_CONFIG && err && t.n == 0 && t.req == NULL;
    for (int k = 0; ok && k < 3 && b->want[k]; k++) ok = strstr(err, b->want[k]) != NULL;
    if (!ok) fprintf(stderr, "\n  case %zu: rc %d, '%s'\n", i, rc, err ? err : "(no message)");
    CU_ASSERT(ok);
    free(err);
  }
  /* a missing file: QSR_ERR_IO naming the path */
  struct qsr_trace t;
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_trace_read("no/such/trace.csv", &t, &err), QSR_ERR_IO);
  CU_ASSERT(err && strstr(err, "no/such/trace.csv"));
  free(err);
  qsr_trace_free(NULL);                     /* NULL-safe */
}

static const char *write_bytes(const char *name, const char *buf, size_t len) {
  const char *path = tst_write_tmp(name, "");
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fwrite(buf, 1, len, f);
  fclose(f);
  return path;
}

/* Random bytes and random edits of good files: an error or a valid trace, no crash. */
static void test_robust(void) {
  static const char *const seeds[] = {
    "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:15:46.6805900,374,44\r\n"
    "2023-11-16 18:15:50.9951690,396,109\r\n",
    "arrival_s,prompt_tokens,output_tokens,complexity\n0,10,5,0.5\n1.5,20,0,1\n",
    "{\"timestamp\": 0, \"input_length\": 6758, \"output_length\": 500, \"hash_ids\": [0, 1, 2]}\n"
    "{\"timestamp\": 3, \"x\": [{\"a\": \"}\"}], \"input_length\": 7, \"output_length\": 5, \"hash_ids\": []}\n",
  };
  static const char alphabet[] = "{}[]\",:0123456789.-+eE \t\r\n#abcx\\\0";
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  char buf[512];
  int n_ok = 0, n_bad = 0;
  for (int it = 0; it < 3000; it++) {
    size_t len;
    if (it % 3 == 0) {                      /* random bytes from the alphabet */
      len = gsl_rng_uniform_int(rng, 200);
      for (size_t i = 0; i < len; i++) buf[i] = alphabet[gsl_rng_uniform_int(rng, sizeof alphabet)];
    } else {                                /* a good file with a few bytes changed */
      const char *s = seeds[gsl_rng_uniform_int(rng, 3)];
      len = strlen(s);
      memcpy(buf, s, len);
      for (int e = 0, ne = 1 + (int)gsl_rng_uniform_int(rng, 3); e < ne && len; e++) {
        size_t at = gsl_rng_uniform_int(rng, len);
        if (gsl_rng_uniform_int(rng, 2)) buf[at] = alphabet[gsl_rng_uniform_int(rng, sizeof alphabet)];
        else len = at;                      /* cut short */
      }
    }
    struct qsr_trace t;
    char *err = NULL;
    int rc = qsr_trace_read(write_bytes("fuzz", buf, len), &t, &err);
    if (rc == QSR_OK) {
      n_ok++;
      CU_ASSERT(valid(&t) && err == NULL);
    } else {
      n_bad++;
      CU_ASSERT(rc == QSR_ERR_CONFIG && err && t.n == 0);
    }
    qsr_trace_free(&t);
    free(err);
  }
  CU_ASSERT(n_ok > 0 && n_bad > 0);
  gsl_rng_free(rng);

  /* a 2 MB line: 300,000 block ids, read whole */
  enum { N_IDS = 300000 };
  size_t cap = 64 + (size_t)N_IDS * 8, len = 0;
  char *big = malloc(cap);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  len += (size_t)snprintf(big, cap, "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [");
  for (int i = 0; i < N_IDS; i++) len += (size_t)snprintf(big + len, cap - len, i ? ",%d" : "%d", i);
  len += (size_t)snprintf(big + len, cap - len, "]}\n");
  struct qsr_trace t;
  if (!read_ok(write_bytes("long.jsonl", big, len), &t)) {
    CU_ASSERT(t.n == 1 && t.n_blocks == N_IDS && t.req[0].n_blocks == N_IDS && t.blocks[N_IDS - 1] == N_IDS - 1);
    qsr_trace_free(&t);
  }
  /* a 2 MB CSV field: an error, not a crash */
  memset(big, '9', len);
  memcpy(big, "arrival_s,prompt_tokens,output_tokens\n0,1,", 42);
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_trace_read(write_bytes("long.csv", big, len), &t, &err), QSR_ERR_CONFIG);
  CU_ASSERT(err && strstr(err, "long.csv:2:") && strstr(err, "output_tokens"));
  free(err);
  free(big);
}

/* ---- synthetic ------------------------------------------------------------------------ */

static void test_synth_poisson(void) {
  struct qsr_trace t;
  double mean, cv;
  if (synth_ok("synthetic:poisson,rate=2,n=20000,seed=7", &t)) return;
  CU_ASSERT_EQUAL_FATAL(t.n, 20000);
  CU_ASSERT(valid(&t) && t.synthetic == 1);
  gaps(&t, &mean, &cv);
  CU_ASSERT(rel_eq(mean, 0.5, MEAN_TOL));   /* 1 / rate */
  CU_ASSERT(rel_eq(cv, 1.0, MEAN_TOL));     /* exponential gaps */
  CU_ASSERT(t.req[0].prompt == 512 && t.req[t.n - 1].output == 128 && t.req[5].complexity < 0);  /* defaults */
  CU_ASSERT_STRING_EQUAL(t.source, "synthetic poisson rate=2/s, n=20000, seed=7, prompt=512, output=128");
  qsr_trace_free(&t);
}

static void test_synth_gamma(void) {
  struct qsr_trace t;
  double mean, cv;
  if (synth_ok("synthetic:gamma,rate=2,cv=4,n=100000,seed=3", &t)) return;
  CU_ASSERT(valid(&t));
  gaps(&t, &mean, &cv);
  CU_ASSERT(rel_eq(mean, 0.5, 2 * MEAN_TOL)); /* shape 1/16: the mean's std is 4/sqrt(n) = 1.3% */
  CU_ASSERT(rel_eq(cv, 4.0, CV_TOL));
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "gamma rate=2/s cv=4"));
  qsr_trace_free(&t);
}

static void test_synth_lengths(void) {
  struct qsr_trace t;
  double mp, mo;
  if (synth_ok("synthetic:poisson, rate=5, n=20000, prompt=lognormal:1000:1.0, output=exp:200, "
               "complexity=beta:2:5", &t)) return;
  means(&t, &mp, &mo);
  CU_ASSERT(rel_eq(mp, 1000, MEAN_TOL));
  CU_ASSERT(rel_eq(mo, 200, MEAN_TOL));
  double cx = 0;
  int in01 = 1;
  for (size_t i = 0; i < t.n; i++) {
    cx += t.req[i].complexity;
    in01 &= t.req[i].complexity >= 0 && t.req[i].complexity <= 1;
  }
  CU_ASSERT(in01 && rel_eq(cx / (double)t.n, 2.0 / 7.0, MEAN_TOL));   /* beta mean a / (a + b) */
  CU_ASSERT(valid(&t));
  qsr_trace_free(&t);

  if (synth_ok("synthetic:poisson,rate=1,n=5000,prompt=uniform:5:9,output=3,complexity=0.25", &t)) return;
  int seen[10] = { 0 }, inside = 1;
  for (size_t i = 0; i < t.n; i++) {
    int p = t.req[i].prompt;
    inside &= p >= 5 && p <= 9 && t.req[i].output == 3 && t.req[i].complexity == 0.25f;
    if (p >= 5 && p <= 9) seen[p] = 1;
  }
  CU_ASSERT(inside && seen[5] && seen[6] && seen[7] && seen[8] && seen[9]);   /* inclusive bounds */
  qsr_trace_free(&t);

  /* duration instead of n: about rate x duration requests, all before it */
  if (synth_ok("synthetic:poisson,rate=10,duration=100", &t)) return;
  CU_ASSERT(rel_eq((double)t.n, 1000, 0.1) && t.req[t.n - 1].arrival_s < 100);
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "duration=100s"));
  qsr_trace_free(&t);
}

static void test_synth_seed(void) {
  struct qsr_trace a, b, c;
  const char *s1 = "synthetic:gamma,rate=3,cv=2,n=1000,prompt=lognormal:500:0.5,output=exp:50,seed=11";
  if (synth_ok(s1, &a) || synth_ok(s1, &b) ||
      synth_ok("synthetic:gamma,rate=3,cv=2,n=1000,prompt=lognormal:500:0.5,output=exp:50,seed=12", &c))
    return;
  CU_ASSERT(a.n == b.n && !memcmp(a.req, b.req, a.n * sizeof *a.req));
  CU_ASSERT(a.n == c.n && memcmp(a.req, c.req, a.n * sizeof *a.req));
  qsr_trace_free(&a);
  qsr_trace_free(&b);
  qsr_trace_free(&c);
}

static void test_synth_1m(void) {
  struct qsr_trace t;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (synth_ok("synthetic:poisson,rate=100,n=1000000,prompt=lognormal:1000:1,output=exp:200", &t)) return;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  CU_ASSERT_EQUAL(t.n, 1000000);
  CU_ASSERT(s < SYNTH_1M_MAX_S);
  if (s >= SYNTH_1M_MAX_S) fprintf(stderr, "\n  1M requests took %.2f s\n", s);
  qsr_trace_free(&t);
}

static void test_scale_head(void) {
  struct qsr_trace t;
  char *err = NULL;
  if (qsr_trace_load("synthetic:poisson,rate=1,n=100", &t, &err)) {
    CU_FAIL(err);
    free(err);
    return;
  }
  CU_ASSERT(t.synthetic);
  double *before = malloc(t.n * sizeof *before);
  CU_ASSERT_PTR_NOT_NULL_FATAL(before);
  for (size_t i = 0; i < t.n; i++) before[i] = t.req[i].arrival_s;
  qsr_trace_scale(&t, 2);                   /* twice the load: half the times, exactly */
  int half = 1;
  for (size_t i = 0; i < t.n; i++) half &= t.req[i].arrival_s == before[i] / 2;
  CU_ASSERT(half);
  CU_ASSERT_PTR_NOT_NULL(strstr(t.source, "; rate x2"));
  qsr_trace_head(&t, 10);
  CU_ASSERT(t.n == 10 && t.req[9].arrival_s == before[9] / 2);
  free(before);
  qsr_trace_free(&t);
}

static const struct { const char *spec, *want; } synth_bad[] = {
  { "synthetic:poisson,rate=1,foo=1", "'foo'" },
  { "synthetic:poisson,rate=abc", "rate=abc" },
  { "synthetic:poisson,n=10", "rate not given" },
  { "synthetic:poisson,rate=-1", "rate=-1" },
  { "synthetic:weibull,rate=1", "weibull" },
  { "synthetic:poisson,rate=1,cv=4", "cv" },
  { "synthetic:gamma,rate=1,cv=0", "cv=0" },
  { "synthetic:poisson,rate=1,n=0", "n=0" },
  { "synthetic:poisson,rate=1,n=1.5", "n=1.5" },
  { "synthetic:poisson,rate=1,n=10,duration=5", "duration" },
  { "synthetic:poisson,rate=1,seed=-1", "seed" },
  { "synthetic:poisson,rate=1,prompt=uniform:9:5", "prompt=uniform:9:5" },
  { "synthetic:poisson,rate=1,prompt=0", "prompt=0" },
  { "synthetic:poisson,rate=1,output=weird:1", "output=weird:1" },
  { "synthetic:poisson,rate=1,output=lognormal:100", "output" },
  { "synthetic:poisson,rate=1,complexity=beta:0:1", "complexity" },
  { "synthetic:poisson,rate=1,complexity=2", "complexity" },
  { "synthetic:poisson,rate=1,rate=2", "rate given twice" },
  { "synthetic:poisson,rate=1,n", "n: expected n=VALUE" },
};

static void test_synth_bad(void) {
  for (size_t i = 0; i < sizeof synth_bad / sizeof synth_bad[0]; i++) {
    struct qsr_trace t;
    char *err = NULL;
    int rc = qsr_trace_synth(synth_bad[i].spec, &t, &err);
    int ok = rc == QSR_ERR_CONFIG && err && strstr(err, synth_bad[i].want) && t.n == 0 && !t.req;
    if (!ok) fprintf(stderr, "\n  %s: rc %d, '%s'\n", synth_bad[i].spec, rc, err ? err : "(no message)");
    CU_ASSERT(ok);
    free(err);
  }
}

void tst_register_trace(void) {
  CU_pSuite s = CU_add_suite("trace", NULL, NULL);
  CU_add_test(s, "Azure 2023 CSV by hand: day, month, leap-day rollovers", test_azure_small);
  CU_add_test(s, "Azure 2023 CSV: the real conv and code traces", test_azure_real);
  CU_add_test(s, "Mooncake JSONL: the real conversation trace, blocks", test_mooncake_real);
  CU_add_test(s, "Mooncake JSONL by hand: key order, unknown keys", test_jsonl_small);
  CU_add_test(s, "plain CSV: shuffled columns, complexity, comments", test_plain_csv);
  CU_add_test(s, "bad input: file, line and field", test_bad_input);
  CU_add_test(s, "random and very long input", test_robust);
  CU_add_test(s, "synthetic poisson: mean gap 1/rate", test_synth_poisson);
  CU_add_test(s, "synthetic gamma: gap CV", test_synth_gamma);
  CU_add_test(s, "synthetic lengths and complexity", test_synth_lengths);
  CU_add_test(s, "synthetic: same seed, same trace", test_synth_seed);
  CU_add_test(s, "synthetic: 1,000,000 requests", test_synth_1m);
  CU_add_test(s, "scale and head", test_scale_head);
  CU_add_test(s, "synthetic spec errors name the key", test_synth_bad);
}
