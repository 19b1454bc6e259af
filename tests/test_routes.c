/*
** test_routes.c -- routing traces (sim/routes.h) and the expert cache
** (sim/ecache.h): cache policies on access sequences worked by hand; a
** recorded CSV replayed exactly, and its bad inputs named by file:line;
** synthesis from small hand-written statistics and from the real files in
** ../shared/data/moe (skipped when absent): per-layer shares and consecutive-
** token overlap against the files, k distinct experts, determinism.
*/
#include "test.h"

#include "sim/ecache.h"
#include "sim/routes.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIXTRAL_COUNTS "../shared/data/moe/mixtral-8x7b-expert-counts.csv"
#define DS_COUNTS "../shared/data/moe/deepseek-v2-lite-expert-counts.csv"
#define DS_SUMMARY "../shared/data/moe/deepseek-v2-lite-layer-summary.csv"

/* Mixtral, 200k tokens x 2 = 400k selections a layer: a share s has standard
** error sqrt(s(1-s)/4e5) <= 6.6e-4 (s <= 0.23); the largest of 256 cells
** stays within 4 of those (2.6e-3), the file's 4-digit shares add 5e-5.
** 0.005 is tighter than the 0.01 asked for; drawing without the fitted
** weights misses by up to 0.0136. */
#define MIXTRAL_SHARE_TOL 0.005
/* DeepSeek, 50k tokens x 6 = 3e5 selections a layer: s <= 0.041 gives a
** standard error of 3.6e-4, about 1.7x that with the token-to-token
** correlation of the locality (rho <= 0.28): 4 of those over 64 x 26 cells. */
#define DS_SHARE_TOL 0.003
/* Consecutive-token overlap over 50k tokens: per-token overlap has a
** standard deviation of ~0.2, so the mean is within ~0.001 (x ~1.5 for the
** chain's correlation); the fit itself lands within ~5e-4. */
#define OVERLAP_TOL 0.02
/* Small hand-written statistics, 100k tokens x 2: s(1-s) <= 0.25 -> 1.1e-3. */
#define SMALL_SHARE_TOL 0.005

static int have_file(const char *path) {
  if (access(path, R_OK) == 0) return 1;
  fprintf(stderr, "\n  skipped: %s absent\n", path);
  CU_PASS("data file absent: skipped");
  return 0;
}

/* Copies tst_write_tmp's static path. */
static const char *tmp_file(const char *name, const char *text, char *buf, size_t n) {
  snprintf(buf, n, "%s", tst_write_tmp(name, text));
  return buf;
}

/* Expects rc and a message in *errp containing part (and, when path,
** starting with path); frees it. Reads *errp after the call that set it. */
static void expect_err(int rc, int want, char **errp, const char *path, const char *part) {
  char *err = *errp;
  *errp = NULL;
  CU_ASSERT_EQUAL(rc, want);
  CU_ASSERT_PTR_NOT_NULL(err);
  if (!err) return;
  if (part && !strstr(err, part)) fprintf(stderr, "\n  message '%s' lacks '%s'\n", err, part);
  if (part) CU_ASSERT_PTR_NOT_NULL(strstr(err, part));
  if (path) CU_ASSERT_EQUAL(strncmp(err, path, strlen(path)), 0);
  free(err);
}

static void run_seq(qsr_ecache *c, int layer, const int *seq, const int *want, int n) {
  for (int i = 0; i < n; i++) {
    int hit = qsr_ecache_access(c, layer, seq[i]);
    if (hit != want[i]) fprintf(stderr, "\n  access %d (expert %d): hit %d, expected %d\n", i, seq[i], hit, want[i]);
    CU_ASSERT_EQUAL(hit, want[i]);
  }
}

/* ------------------------------------------------------------ ecache */

static const int SEQ[10] = {0, 1, 0, 2, 0, 1, 3, 3, 2, 0};

static void test_ecache_lru(void) {
  /* 4 experts, capacity 2, no popularity: starts with {0, 1}, 0 most recent.
  **   access  list (MRU..LRU) after   hit
  **   0       0 1                     1
  **   1       1 0                     1
  **   0       0 1                     1
  **   2       2 0   (1 evicted)       0
  **   0       0 2                     1
  **   1       1 0   (2 evicted)       0
  **   3       3 1   (0 evicted)       0
  **   3       3 1                     1
  **   2       2 3   (1 evicted)       0
  **   0       0 2   (3 evicted)       0     -> 5 hits of 10 */
  static const int want[10] = {1, 1, 1, 0, 1, 0, 0, 1, 0, 0};
  qsr_ecache *c = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(2, 4, 2, QSR_ECACHE_LRU, NULL, &c, &err), QSR_OK);
  CU_ASSERT_PTR_NULL(err);
  run_seq(c, 1, SEQ, want, 10);
  CU_ASSERT_EQUAL(qsr_ecache_hits(c), 5);
  CU_ASSERT_EQUAL(qsr_ecache_misses(c), 5);
  /* layer 0 untouched: still {0, 1} */
  CU_ASSERT_EQUAL(qsr_ecache_access(c, 0, 1), 1);
  CU_ASSERT_EQUAL(qsr_ecache_access(c, 0, 0), 1);
  qsr_ecache_free(c);

  /* warm start by popularity: pop {0.1, 0.4, 0.2, 0.3} -> {1 (MRU), 3}.
  **   2 miss, evicts 3 -> 2 1;  1 hit -> 1 2;  3 miss, evicts 2 -> 3 1 */
  static const double pop[4] = {0.1, 0.4, 0.2, 0.3};
  static const int seq2[3] = {2, 1, 3}, want2[3] = {0, 1, 0};
  CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(1, 4, 2, QSR_ECACHE_LRU, pop, &c, &err), QSR_OK);
  run_seq(c, 0, seq2, want2, 3);
  qsr_ecache_free(c);
}

static void test_ecache_lfu(void) {
  /* 4 experts, capacity 2: starts with {0, 1}, counts 0, 0 more recent.
  ** Counts are accesses since creation (kept across evictions).
  **   access  counts 0 1 2 3 after   resident after        hit
  **   0       1 0 0 0                {0,1}                 1
  **   1       1 1 0 0                {0,1}                 1
  **   0       2 1 0 0                {0,1}                 1
  **   2       2 1 1 0                {0,2} (1: count 1<2)  0
  **   0       3 1 1 0                {0,2}                 1
  **   1       3 2 1 0                {0,1} (2: count 1<3)  0
  **   3       3 2 1 1                {0,3} (1: count 2<3)  0
  **   3       3 2 1 2                {0,3}                 1
  **   2       3 2 2 2                {0,2} (3: count 2<3)  0
  **   0       4 2 2 2                {0,2}                 1     -> 6 hits */
  static const int want[10] = {1, 1, 1, 0, 1, 0, 0, 1, 0, 1};
  qsr_ecache *c = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(1, 4, 2, QSR_ECACHE_LFU, NULL, &c, &err), QSR_OK);
  run_seq(c, 0, SEQ, want, 10);
  CU_ASSERT_EQUAL(qsr_ecache_hits(c), 6);
  qsr_ecache_free(c);

  /* ties go to the least recent. 3 experts, capacity 2, {0 (recent), 1}:
  **   2  miss; 0 and 1 both count 0, 1 older -> evict 1: {0,2}
  **   1  miss; 0 count 0 < 2 count 1 -> evict 0: {2,1}
  **   0  miss; 2 and 1 both count 1, 2 older -> evict 2: {1,0}
  **   2  miss; 1 and 0 both count 1, 1 older -> evict 1: {0,2}
  **   0  hit */
  static const int seq2[5] = {2, 1, 0, 2, 0}, want2[5] = {0, 0, 0, 0, 1};
  CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(1, 3, 2, QSR_ECACHE_LFU, NULL, &c, &err), QSR_OK);
  run_seq(c, 0, seq2, want2, 5);
  qsr_ecache_free(c);
}

static void test_ecache_pinned(void) {
  /* layer 0 pop {0.1, 0.4, 0.2, 0.3} -> pinned {1, 3}: of SEQ the 1, 1, 3, 3
  ** hit (4 of 10) and nothing else ever enters. Layer 1 all equal -> the
  ** lower ids {0, 1}. */
  static const double pop[8] = {0.1, 0.4, 0.2, 0.3, 0.25, 0.25, 0.25, 0.25};
  static const int want0[10] = {0, 1, 0, 0, 0, 1, 1, 1, 0, 0};
  static const int want1[10] = {1, 1, 1, 0, 1, 1, 0, 0, 0, 1};
  qsr_ecache *c = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(2, 4, 2, QSR_ECACHE_PINNED, pop, &c, &err), QSR_OK);
  run_seq(c, 0, SEQ, want0, 10);
  CU_ASSERT_EQUAL(qsr_ecache_hits(c), 4);
  run_seq(c, 1, SEQ, want1, 10);
  CU_ASSERT_EQUAL(qsr_ecache_hits(c), 10);
  CU_ASSERT_EQUAL(qsr_ecache_misses(c), 10);
  qsr_ecache_free(c);
}

static void test_ecache_edges(void) {
  static const double pop[8] = {0.1, 0.4, 0.2, 0.3, 0.25, 0.25, 0.25, 0.25};
  qsr_ecache *c = NULL;
  char *err = NULL;
  for (int p = 0; p < QSR_ECACHE_COUNT; p++) {
    /* capacity >= experts: every access hits */
    for (int cap = 4; cap <= 9; cap += 5) {
      CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(2, 4, cap, p, pop, &c, &err), QSR_OK);
      unsigned x = 12345;
      for (int i = 0; i < 1000; i++) {
        x = x * 1103515245u + 12345u;
        CU_ASSERT_EQUAL(qsr_ecache_access(c, (int)(x >> 20) & 1, (int)(x >> 16) % 4), 1);
      }
      CU_ASSERT_EQUAL(qsr_ecache_hits(c), 1000);
      CU_ASSERT_EQUAL(qsr_ecache_misses(c), 0);
      qsr_ecache_free(c);
    }
    /* capacity 0: every access misses */
    CU_ASSERT_EQUAL_FATAL(qsr_ecache_new(2, 4, 0, p, pop, &c, &err), QSR_OK);
    for (int i = 0; i < 20; i++) CU_ASSERT_EQUAL(qsr_ecache_access(c, i & 1, i % 4), 0);
    CU_ASSERT_EQUAL(qsr_ecache_misses(c), 20);
    qsr_ecache_free(c);
    CU_ASSERT_STRING_EQUAL(qsr_ecache_policy_names[p], p == 0 ? "lru" : p == 1 ? "lfu" : "pinned");
  }
  /* bad arguments */
  c = NULL;
  expect_err(qsr_ecache_new(2, 4, -1, QSR_ECACHE_LRU, NULL, &c, &err), QSR_ERR_CONFIG, &err, NULL, "capacity -1");
  CU_ASSERT_PTR_NULL(c);
  expect_err(qsr_ecache_new(2, 4, 2, 3, NULL, &c, &err), QSR_ERR_CONFIG, &err, NULL, "policy 3");
  expect_err(qsr_ecache_new(2, 4, 2, -1, NULL, &c, &err), QSR_ERR_CONFIG, &err, NULL, "policy -1");
  expect_err(qsr_ecache_new(2, 4, 2, QSR_ECACHE_PINNED, NULL, &c, &err), QSR_ERR_CONFIG, &err, NULL, "pinned");
  const double bad[4] = {0.1, -0.4, 0.2, 0.3};
  expect_err(qsr_ecache_new(1, 4, 2, QSR_ECACHE_LFU, bad, &c, &err), QSR_ERR_CONFIG, &err, NULL, "expert 1");
  expect_err(qsr_ecache_new(0, 4, 2, QSR_ECACHE_LRU, NULL, &c, &err), QSR_ERR_CONFIG, &err, NULL, "layers");
  CU_ASSERT_PTR_NULL(c);
}

/* ---------------------------------------------------------- recorded */

static const char REC_CSV[] =
    "token,layer,expert\n"
    "0,0,1\n"
    "0,0,3\n"
    "0,1,0\n"
    "0,1,2\n"
    "1,0,2\n"          /* one selection: filled with layer 0's most popular, 1 */
    "1,1,1\r\n"
    "1,1,3\n"
    "\n"
    "2,0,0\n"
    "2,0,1\n"
    "2,0,3\n"          /* a third selection: only the first top_k = 2 are kept */
    "2,1,2\n"
    "2,1,3\n";

static void test_recorded_replay(void) {
  /* kept counts, layer 0: e0 1, e1 2, e2 1, e3 1 (of 5); layer 1: 1, 1, 2, 2 (of 6) */
  static const int want[3][4] = {{1, 3, 0, 2}, {2, 1, 1, 3}, {0, 1, 2, 3}};
  char path[512], *err = NULL, want_desc[600];
  qsr_routes *r = NULL;
  tmp_file("rec.csv", REC_CSV, path, sizeof path);
  CU_ASSERT_EQUAL_FATAL(qsr_routes_load_csv(path, 2, 4, 2, &r, &err), QSR_OK);
  CU_ASSERT_PTR_NULL(err);
  CU_ASSERT_EQUAL(qsr_routes_recorded(r), 1);
  CU_ASSERT_EQUAL(qsr_routes_layers(r), 2);
  CU_ASSERT_EQUAL(qsr_routes_experts(r), 4);
  snprintf(want_desc, sizeof want_desc, "recorded: %s (3 tokens)", path);
  CU_ASSERT_STRING_EQUAL(qsr_routes_desc(r), want_desc);
  const double p0[4] = {0.2, 0.4, 0.2, 0.2}, p1[4] = {1 / 6., 1 / 6., 2 / 6., 2 / 6.};
  for (int e = 0; e < 4; e++) {
    CU_ASSERT_DOUBLE_EQUAL(qsr_routes_popularity(r, 0)[e], p0[e], 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(qsr_routes_popularity(r, 1)[e], p1[e], 1e-12);
  }
  void *st = malloc(qsr_routes_state_size(r));
  int ids[4];
  qsr_routes_seq_init(r, st, 0);  /* sequence 0 starts at token 0 */
  for (int t = 0; t < 7; t++) {   /* cyclic: 0 1 2 0 1 2 0 */
    qsr_routes_token(r, st, 2, ids);
    CU_ASSERT_EQUAL(memcmp(ids, want[t % 3], sizeof ids), 0);
  }
  /* sequence 1 starts at (1 * 2654435761) mod 3 = 1 (digit sum 43) */
  qsr_routes_seq_init(r, st, 1);
  qsr_routes_token(r, st, 2, ids);
  CU_ASSERT_EQUAL(memcmp(ids, want[1], sizeof ids), 0);
  /* k = 1: the first of each layer */
  qsr_routes_seq_init(r, st, 0);
  qsr_routes_token(r, st, 1, ids);
  CU_ASSERT(ids[0] == 1 && ids[1] == 0);
  free(st);
  qsr_routes_free(r);
}

static void test_recorded_errors(void) {
  static const struct { const char *text, *part; int rc; } cases[] = {
    {"token,layer,expert\n0,0,1\n0,0,7\n0,1,0\n", ":3: expert 7 out of range 0..3", QSR_ERR_CONFIG},
    {"token,layer\n0,0\n", ":1: missing column 'expert'", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,x,1\n", ":2: layer: 'x' is not an integer", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1.5\n", ":2: expert: '1.5' is not an integer", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1\n0,0\n", ":3: expected 3 fields, found 2", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,2,1\n", ":2: layer 2 out of range 0..1", QSR_ERR_CONFIG},
    {"token,layer,expert\n1,0,1\n", ":2: token 1: token ids must start at 0", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1\n0,1,1\n2,0,1\n", ":4: token 2 after token 0", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1\n1,0,1\n1,1,0\n", ":3: token 0 has no rows for layer 1", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,1,1\n", ":2: token 0 has no rows for layer 0", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1\n0,1,1\n0,0,2\n", ":4: layer 0 after layer 1", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1\n0,0,1\n", ":3: expert 1 repeated", QSR_ERR_CONFIG},
    {"token,layer,expert\n0,0,1\n", ":2: token 0 has no rows for layer 1", QSR_ERR_CONFIG},
    {"token,layer,expert\n", ": no rows", QSR_ERR_CONFIG},
    {"", ":1: empty file", QSR_ERR_CONFIG},
  };
  char path[512];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *err = NULL;
    qsr_routes *r = NULL;
    tmp_file("bad.csv", cases[i].text, path, sizeof path);
    expect_err(qsr_routes_load_csv(path, 2, 4, 2, &r, &err), cases[i].rc, &err, path, cases[i].part);
    CU_ASSERT_PTR_NULL(r);
  }
  char *err = NULL;
  qsr_routes *r = NULL;
  expect_err(qsr_routes_load_csv("no/such/file.csv", 2, 4, 2, &r, &err), QSR_ERR_IO, &err, "no/such/file.csv",
             "cannot open");
  tmp_file("rec.csv", REC_CSV, path, sizeof path);
  expect_err(qsr_routes_load_csv(path, 2, 4, 5, &r, &err), QSR_ERR_CONFIG, &err, NULL, "top_k 5");
}

/* ------------------------------------------------------- synthesised */

/* Draws n tokens of one sequence, checks every layer's k ids are distinct
** and in range, adds them to cnt (layers x experts) and the consecutive
** overlap to ov (layers). */
static int draw_stream(qsr_routes *r, uint64_t seq, int k, long n, double *cnt, double *ov) {
  int L = qsr_routes_layers(r), E = qsr_routes_experts(r), bad = 0;
  int *ids = malloc(sizeof *ids * (size_t)L * (size_t)k), *prev = malloc(sizeof *prev * (size_t)L * (size_t)k);
  void *st = malloc(qsr_routes_state_size(r));
  qsr_routes_seq_init(r, st, seq);
  for (long t = 0; t < n; t++) {
    qsr_routes_token(r, st, k, ids);
    for (int l = 0; l < L; l++) {
      const int *x = ids + l * k, *y = prev + l * k;
      int same = 0;
      for (int j = 0; j < k; j++) {
        bad += x[j] < 0 || x[j] >= E;
        for (int i = 0; i < j; i++) bad += x[i] == x[j];
        if (t)
          for (int i = 0; i < k; i++) same += x[j] == y[i];
        if (cnt && x[j] >= 0 && x[j] < E) cnt[(size_t)l * E + x[j]] += 1;
      }
      if (ov && t) ov[l] += (double)same / k / (double)(n - 1);
    }
    memcpy(prev, ids, sizeof *ids * (size_t)L * (size_t)k);
  }
  free(st);
  free(ids);
  free(prev);
  return bad;
}

/* Reads the share_of_layer_selections column: shares[file layer rank][expert]. */
static int read_shares(const char *path, int E, double *shares, int max_layers) {
  FILE *f = fopen(path, "r");
  char line[256];
  int first = -1, nl = 0;
  if (!f) return 0;
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return 0;
  }
  while (fgets(line, sizeof line, f)) {
    int l, e;
    long c;
    double s;
    if (sscanf(line, "%d,%d,%ld,%lf", &l, &e, &c, &s) != 4) continue;
    if (first < 0) first = l;
    if (l - first >= max_layers || e >= E) continue;
    shares[(size_t)(l - first) * E + e] = s;
    if (l - first + 1 > nl) nl = l - first + 1;
  }
  fclose(f);
  return nl;
}

static const char SMALL_COUNTS[] =
    "layer,expert,count,share_of_layer_selections\n"
    "5,0,10,0.1\n5,1,20,0.2\n5,2,30,0.3\n5,3,40,0.4\n"
    "9,0,25,0.25\n9,1,25,0.25\n9,2,25,0.25\n9,3,25,0.25\n";

static void test_synth_small(void) {
  char cpath[512], spath[512], *err = NULL;
  qsr_routes *r = NULL;
  tmp_file("counts.csv", SMALL_COUNTS, cpath, sizeof cpath);
  /* 4 model layers on 2 file layers: 0,1 -> layer 5; 2,3 -> layer 9 */
  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(cpath, NULL, 4, 4, 2, 7, &r, &err), QSR_OK);
  CU_ASSERT_PTR_NULL(err);
  CU_ASSERT_EQUAL(qsr_routes_recorded(r), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(qsr_routes_desc(r), "no locality data"));
  CU_ASSERT_PTR_NOT_NULL(strstr(qsr_routes_desc(r), cpath));
  for (int l = 0; l < 4; l++)
    for (int e = 0; e < 4; e++)
      CU_ASSERT_DOUBLE_EQUAL(qsr_routes_popularity(r, l)[e], l < 2 ? 0.1 * (e + 1) : 0.25, 1e-12);
  /* the hottest expert (share 0.4) is in 80% of the tokens */
  double cnt[16] = {0};
  const long n = 100000;
  CU_ASSERT_EQUAL(draw_stream(r, 3, 2, n, cnt, NULL), 0);
  for (int l = 0; l < 4; l++)
    for (int e = 0; e < 4; e++)
      CU_ASSERT_DOUBLE_EQUAL(cnt[l * 4 + e] / (2.0 * n), qsr_routes_popularity(r, l)[e], SMALL_SHARE_TOL);
  qsr_routes_free(r);
  r = NULL;

  /* locality: overlap 0.8 on layer 5, 0.7 on layer 9 (independent tokens
  ** would overlap sum_i (2 s_i)^2 / 2 = 0.6 and 0.5) */
  tmp_file("summary.csv", "layer,tokens,consecutive_token_expert_overlap\n9,100,0.7\n5,100,0.8\n", spath,
           sizeof spath);
  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(cpath, spath, 2, 4, 2, 7, &r, &err), QSR_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(qsr_routes_desc(r), "overlap 0.750 measured"));
  CU_ASSERT_PTR_NOT_NULL(strstr(qsr_routes_desc(r), "rho"));
  double ov[2] = {0, 0};
  memset(cnt, 0, sizeof cnt);
  CU_ASSERT_EQUAL(draw_stream(r, 3, 2, n, cnt, ov), 0);
  CU_ASSERT_DOUBLE_EQUAL(ov[0], 0.8, OVERLAP_TOL);
  CU_ASSERT_DOUBLE_EQUAL(ov[1], 0.7, OVERLAP_TOL);
  /* locality keeps the shares; the chain's correlation widens the error (x2) */
  for (int l = 0; l < 2; l++)
    for (int e = 0; e < 4; e++)
      CU_ASSERT_DOUBLE_EQUAL(cnt[l * 4 + e] / (2.0 * n), qsr_routes_popularity(r, l)[e], 2 * SMALL_SHARE_TOL);
  qsr_routes_free(r);
  r = NULL;

  /* errors */
  expect_err(qsr_routes_synth(cpath, NULL, 4, 8, 2, 7, &r, &err), QSR_ERR_CONFIG, &err, cpath,
             ": has 4 experts per layer, the model 8");
  tmp_file("counts-missing.csv",
           "layer,expert,count\n5,0,10\n5,1,20\n5,2,30\n5,3,40\n9,0,25\n9,1,25\n9,3,25\n", cpath, sizeof cpath);
  expect_err(qsr_routes_synth(cpath, NULL, 4, 4, 2, 7, &r, &err), QSR_ERR_CONFIG, &err, cpath,
             "layer 9 has no row for expert 2");
  tmp_file("counts-bad.csv", "layer,expert,count\n5,0,10\n5,1,x\n", cpath, sizeof cpath);
  expect_err(qsr_routes_synth(cpath, NULL, 4, 4, 2, 7, &r, &err), QSR_ERR_CONFIG, &err, cpath,
             ":3: count: 'x'");
  tmp_file("counts-dup.csv", "layer,expert,count\n5,0,10\n5,1,10\n5,0,10\n", cpath, sizeof cpath);
  expect_err(qsr_routes_synth(cpath, NULL, 4, 2, 1, 7, &r, &err), QSR_ERR_CONFIG, &err, cpath,
             ":4: layer 5 expert 0 repeated");
  tmp_file("counts-nocol.csv", "layer,expert,share\n5,0,1\n", cpath, sizeof cpath);
  expect_err(qsr_routes_synth(cpath, NULL, 4, 1, 1, 7, &r, &err), QSR_ERR_CONFIG, &err, cpath,
             ":1: missing column 'count'");
  tmp_file("counts.csv", SMALL_COUNTS, cpath, sizeof cpath);
  tmp_file("summary-missing.csv", "layer,consecutive_token_expert_overlap\n5,0.2\n", spath, sizeof spath);
  expect_err(qsr_routes_synth(cpath, spath, 4, 4, 2, 7, &r, &err), QSR_ERR_CONFIG, &err, spath,
             "no row for layer 9");
  tmp_file("summary-bad.csv", "layer,consecutive_token_expert_overlap\n5,0.2\n9,1.5\n", spath, sizeof spath);
  expect_err(qsr_routes_synth(cpath, spath, 4, 4, 2, 7, &r, &err), QSR_ERR_CONFIG, &err, spath,
             ":3: consecutive_token_expert_overlap: '1.5'");
  expect_err(qsr_routes_synth(cpath, "no/such/summary.csv", 4, 4, 2, 7, &r, &err), QSR_ERR_IO, &err,
             "no/such/summary.csv", "cannot open");
  CU_ASSERT_PTR_NULL(r);
}

static void test_synth_mixtral(void) {
  if (!have_file(MIXTRAL_COUNTS)) return;
  enum { L = 32, E = 8, K = 2 };
  char *err = NULL;
  qsr_routes *r = NULL, *r2 = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(MIXTRAL_COUNTS, NULL, L, E, K, 42, &r, &err), QSR_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(qsr_routes_desc(r), "(no locality data)"));
  static double file[L * E], cnt[L * E];
  CU_ASSERT_EQUAL_FATAL(read_shares(MIXTRAL_COUNTS, E, file, L), L);
  const long n = 200000;
  CU_ASSERT_EQUAL(draw_stream(r, 0, K, n, cnt, NULL), 0);
  double worst = 0;
  for (int l = 0; l < L; l++) {
    double sum = 0;
    for (int e = 0; e < E; e++) {
      double d = fabs(cnt[l * E + e] / (K * (double)n) - file[l * E + e]);
      if (d > worst) worst = d;
      sum += qsr_routes_popularity(r, l)[e];
    }
    CU_ASSERT_DOUBLE_EQUAL(sum, 1, 1e-12);
  }
  if (worst > MIXTRAL_SHARE_TOL) fprintf(stderr, "\n  worst share error %.4f\n", worst);
  CU_ASSERT(worst <= MIXTRAL_SHARE_TOL);
  CU_ASSERT_EQUAL(draw_stream(r, 1, 1, 1000, NULL, NULL), 0); /* k < top_k */

  /* determinism: equal seeds give equal streams whatever the interleaving,
  ** and a state block may be copied mid-stream */
  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(MIXTRAL_COUNTS, NULL, L, E, K, 42, &r2, &err), QSR_OK);
  size_t sz = qsr_routes_state_size(r);
  CU_ASSERT_EQUAL(sz, qsr_routes_state_size(r2));
  char *a = malloc(sz), *b = malloc(sz), *a2 = malloc(sz), *b2 = malloc(sz);
  static int ia[100][L * K], ib[100][L * K];
  int x[L * K];
  qsr_routes_seq_init(r, a, 5);
  qsr_routes_seq_init(r, b, 6);
  for (int t = 0; t < 100; t++) {            /* interleaved, one routes object */
    qsr_routes_token(r, a, K, ia[t]);
    qsr_routes_token(r, b, K, ib[t]);
  }
  qsr_routes_seq_init(r2, b2, 6);            /* the other object, b first, a alone */
  int same_b = 1, same_a = 1, differ = 0;
  for (int t = 0; t < 100; t++) {
    qsr_routes_token(r2, b2, K, x);
    same_b &= !memcmp(x, ib[t], sizeof x);
    differ |= memcmp(ia[t], ib[t], sizeof x) != 0;
  }
  qsr_routes_seq_init(r2, a2, 5);
  for (int t = 0; t < 100; t++) {
    if (t == 50) {                           /* move the block */
      memcpy(b2, a2, sz);
      memset(a2, 0xa5, sz);
      char *tmp = a2;
      a2 = b2;
      b2 = tmp;
    }
    qsr_routes_token(r2, a2, K, x);
    same_a &= !memcmp(x, ia[t], sizeof x);
  }
  CU_ASSERT(same_a);
  CU_ASSERT(same_b);
  CU_ASSERT(differ);                         /* sequences differ from each other */
  qsr_routes_free(r2);
  r2 = NULL;
  /* another seed, another stream */
  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(MIXTRAL_COUNTS, NULL, L, E, K, 43, &r2, &err), QSR_OK);
  qsr_routes_seq_init(r2, a2, 5);
  differ = 0;
  for (int t = 0; t < 100; t++) {
    qsr_routes_token(r2, a2, K, x);
    differ |= memcmp(x, ia[t], sizeof x) != 0;
  }
  CU_ASSERT(differ);
  free(a);
  free(b);
  free(a2);
  free(b2);
  qsr_routes_free(r2);
  qsr_routes_free(r);
}

static void test_synth_deepseek(void) {
  if (!have_file(DS_COUNTS) || !have_file(DS_SUMMARY)) return;
  enum { L = 26, E = 64, K = 6 };
  char *err = NULL;
  qsr_routes *r = NULL;
  /* the expert count must match */
  expect_err(qsr_routes_synth(DS_COUNTS, NULL, 32, 8, 2, 1, &r, &err), QSR_ERR_CONFIG, &err, DS_COUNTS,
             ": has 64 experts per layer, the model 8");
  CU_ASSERT_PTR_NULL(r);
  /* 13 model layers on 26 file layers: model layer l reads file layer 2l */
  static double file[L * E], cnt[L * E];
  CU_ASSERT_EQUAL_FATAL(read_shares(DS_COUNTS, E, file, L), L);
  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(DS_COUNTS, NULL, 13, E, K, 1, &r, &err), QSR_OK);
  for (int l = 0; l < 13; l++)
    for (int e = 0; e < E; e += 9)
      CU_ASSERT_DOUBLE_EQUAL(qsr_routes_popularity(r, l)[e], file[2 * l * E + e], 1e-5);
  qsr_routes_free(r);
  r = NULL;

  CU_ASSERT_EQUAL_FATAL(qsr_routes_synth(DS_COUNTS, DS_SUMMARY, L, E, K, 1, &r, &err), QSR_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(qsr_routes_desc(r), "measured, rho"));
  double ov[L] = {0};
  const long n = 50000;
  CU_ASSERT_EQUAL(draw_stream(r, 11, K, n, cnt, ov), 0);
  /* file layers 1, 8, 13, 26 (model layers 0, 7, 12, 25) */
  static const int pick[4] = {0, 7, 12, 25};
  static const double want[4] = {0.1372, 0.3396, 0.3375, 0.2058};
  for (int i = 0; i < 4; i++) {
    if (fabs(ov[pick[i]] - want[i]) > OVERLAP_TOL)
      fprintf(stderr, "\n  layer %d overlap %.4f, file %.4f\n", pick[i], ov[pick[i]], want[i]);
    CU_ASSERT_DOUBLE_EQUAL(ov[pick[i]], want[i], OVERLAP_TOL);
  }
  double worst = 0;
  for (int i = 0; i < L * E; i++) {
    double d = fabs(cnt[i] / (K * (double)n) - file[i]);
    if (d > worst) worst = d;
  }
  if (worst > DS_SHARE_TOL) fprintf(stderr, "\n  worst share error %.4f\n", worst);
  CU_ASSERT(worst <= DS_SHARE_TOL);
  qsr_routes_free(r);
}

void tst_register_routes(void) {
  CU_pSuite s = CU_add_suite("routes", NULL, NULL);
  CU_add_test(s, "ecache LRU by hand, warm start", test_ecache_lru);
  CU_add_test(s, "ecache LFU by hand, ties to least recent", test_ecache_lfu);
  CU_add_test(s, "ecache pinned by hand", test_ecache_pinned);
  CU_add_test(s, "ecache full, empty, bad arguments", test_ecache_edges);
  CU_add_test(s, "recorded trace replays exactly", test_recorded_replay);
  CU_add_test(s, "recorded trace errors: file:line", test_recorded_errors);
  CU_add_test(s, "synthesised from hand-written statistics", test_synth_small);
  CU_add_test(s, "synthesised from mixtral counts", test_synth_mixtral);
  CU_add_test(s, "synthesised from deepseek counts + locality", test_synth_deepseek);
}
