/*
** test_run.c -- the deployment runner (kernels/runner.h) on a tiny decoder
** built in code: its logits against a naive double-precision forward pass
** over the same weights, prefill against decode (the same position reached
** two ways), the layer cap and its scaling, memory = exact buffer bytes, the
** kernel list per design, MoE and sparse heads, refused backends and models;
** and the measurements table's added columns on an old table.
*/
#include "test.h"

#include "kernels/quant.h"
#include "kernels/runner.h"
#include "kernels/variants.h"
#include "store/measure.h"
#include "util/err.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* Logits agree to this share of their largest magnitude. Derivation: each
** fp32 dot product of n <= 512 terms carries a relative error of at most
** n * 2^-24 ~ 3e-5 of its |terms| sum; a 2-layer pass chains about 12 such
** ops (norm, qkv, scores, softmax sum, values, out, norm, up, gate, down,
** final norm, head), so ~4e-4 accumulated, and an fp16 KV entry may round
** one ulp (2^-11 ~ 4.9e-4) differently when its fp32 input differs in the
** last bits. 2e-3 covers their sum with margin; an indexing bug (wrong
** head, token or row) moves logits by O(1). */
#define LOGIT_TOL 2e-3

static void tiny_model(struct qsr_model *m) {
  memset(m, 0, sizeof *m);
  snprintf(m->name, sizeof m->name, "tiny-run");
  m->family = QSR_FAMILY_DECODER;
  m->layers = 2;
  m->hidden = 256;
  m->heads = 4;
  m->kv_heads = 2;
  m->head_dim = 64;
  m->ffn = 512;
  m->ffn_act = QSR_FFNACT_SWIGLU;
  m->vocab = 512;
  m->norm = QSR_NORM_RMS;
  m->max_context = 2048;
}

static void tiny_design(const struct qsr_model *m, struct qsr_design *d, int int4) {
  qsr_design_baseline(m, d);
  if (int4) d->weights = (struct qsr_wq){ QSR_WFMT_INT, 4, 128 };
  d->batch = 1;
  d->prompt = 20;
  d->gen = 4;
}

static int run_reps(const struct qsr_model *m, const struct qsr_design *d, int prompt, int steps, double budget_gb,
                    int reps, float *logits, struct qsr_run_result *r) {
  struct qsr_run_opts o = { QSR_RUN_CPU, NULL, 1, prompt, steps, budget_gb, reps, 7, 0, logits };
  char *err = NULL;
  int rc = qsr_run_model(m, d, &o, r, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  return rc;
}

static int run(const struct qsr_model *m, const struct qsr_design *d, int prompt, int steps, double budget_gb,
               float *logits, struct qsr_run_result *r) {
  return run_reps(m, d, prompt, steps, budget_gb, 1, logits, r);
}

static double max_abs(const float *v, int n) {
  double mx = 0;
  for (int i = 0; i < n; i++) mx = fmax(mx, fabs(v[i]));
  return mx;
}

/* ---- the naive reference forward pass ------------------------------------ */

struct dmat { int rows, cols; double *w; };

static void dmat_get(const struct qsr_model *m, const struct qsr_design *d, int which, int layer, struct dmat *out) {
  qsr_qmatrix q;
  char *err = NULL;
  int rc = qsr_run_weight(m, d, 7, which, layer, 0, &q, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  out->rows = (int)q.rows;
  out->cols = (int)q.cols;
  out->w = malloc((size_t)q.rows * q.cols * sizeof *out->w);
  float *row = malloc(q.cols * sizeof *row);
  for (uint32_t r = 0; r < q.rows; r++) {
    qsr_dequantize_row(&q, r, row);
    for (uint32_t c = 0; c < q.cols; c++) out->w[(size_t)r * q.cols + c] = row[c];
  }
  free(row);
  qsr_qmatrix_free(&q);
}

static void dlin(const struct dmat *w, const double *x, double *y) {
  for (int r = 0; r < w->rows; r++) {
    double s = 0;
    for (int c = 0; c < w->cols; c++) s += w->w[(size_t)r * w->cols + c] * x[c];
    y[r] = s;
  }
}

static void drms(const double *x, int n, double *out) {
  double ss = 0;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  double r = 1.0 / sqrt(ss / n + 1e-5);
  for (int i = 0; i < n; i++) out[i] = x[i] * r;
}

/* fp16 KV storage: the value the cache hands back */
static double kv16(double v) {
  float f = (float)v, o;
  uint8_t b[2 * 32];
  float blk[32] = { 0 }, dec[32];
  blk[0] = f;
  qsr_kv_encode(QSR_KVFMT_FP16, 32, blk, b);
  qsr_kv_decode(QSR_KVFMT_FP16, 32, b, dec);
  o = dec[0];
  return o;
}

/* Logits at the last of P prompt tokens (sequence 0, seed 7). */
static void reference(const struct qsr_model *m, const struct qsr_design *d, int P, double *logits) {
  int h = m->hidden, H = m->heads, KV = m->kv_heads, hd = m->head_dim, F = m->ffn;
  int qd = H * hd, kd = KV * hd;
  struct dmat emb, head, L[2][5];
  dmat_get(m, d, QSR_RUN_W_EMBED, 0, &emb);
  dmat_get(m, d, QSR_RUN_W_LM_HEAD, 0, &head);
  for (int l = 0; l < m->layers; l++) {
    dmat_get(m, d, QSR_RUN_W_QKV, l, &L[l][0]);
    dmat_get(m, d, QSR_RUN_W_OUT, l, &L[l][1]);
    dmat_get(m, d, QSR_RUN_W_UP, l, &L[l][2]);
    dmat_get(m, d, QSR_RUN_W_GATE, l, &L[l][3]);
    dmat_get(m, d, QSR_RUN_W_DOWN, l, &L[l][4]);
  }
  double *res = calloc((size_t)P * h, sizeof *res), *xn = malloc((size_t)h * sizeof *xn);
  double *qkv = malloc((size_t)(qd + 2 * kd) * sizeof *qkv), *q = malloc((size_t)P * qd * sizeof *q);
  double *K = malloc((size_t)P * kd * sizeof *K), *V = malloc((size_t)P * kd * sizeof *V);
  double *att = malloc((size_t)qd * sizeof *att), *o = malloc((size_t)h * sizeof *o);
  double *u = malloc((size_t)F * sizeof *u), *g = malloc((size_t)F * sizeof *g), *sc = malloc((size_t)P * sizeof *sc);
  for (int t = 0; t < P; t++) {
    int id = qsr_run_token(7, 0, t, m->vocab);
    for (int i = 0; i < h; i++) res[(size_t)t * h + i] = emb.w[(size_t)id * h + i];
  }
  for (int l = 0; l < m->layers; l++) {
    for (int t = 0; t < P; t++) {
      drms(res + (size_t)t * h, h, xn);
      dlin(&L[l][0], xn, qkv);
      for (int i = 0; i < qd; i++) q[(size_t)t * qd + i] = qkv[i];
      for (int i = 0; i < kd; i++) {
        K[(size_t)t * kd + i] = kv16(qkv[qd + i]);
        V[(size_t)t * kd + i] = kv16(qkv[qd + kd + i]);
      }
    }
    for (int t = 0; t < P; t++) {
      for (int hh = 0; hh < H; hh++) {
        int kvh = hh / (H / KV);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= t; j++) {
          double s = 0;
          for (int e = 0; e < hd; e++) s += q[(size_t)t * qd + hh * hd + e] * K[(size_t)j * kd + kvh * hd + e];
          sc[j] = s / sqrt((double)hd);
          mx = fmax(mx, sc[j]);
        }
        for (int e = 0; e < hd; e++) att[hh * hd + e] = 0;
        for (int j = 0; j <= t; j++) {
          double p = exp(sc[j] - mx);
          sum += p;
          for (int e = 0; e < hd; e++) att[hh * hd + e] += p * V[(size_t)j * kd + kvh * hd + e];
        }
        for (int e = 0; e < hd; e++) att[hh * hd + e] /= sum;
      }
      double *rt = res + (size_t)t * h;
      dlin(&L[l][1], att, o);
      for (int i = 0; i < h; i++) rt[i] += o[i];
      drms(rt, h, xn);
      dlin(&L[l][2], xn, u);
      dlin(&L[l][3], xn, g);
      for (int i = 0; i < F; i++) u[i] *= g[i] / (1 + exp(-g[i]));
      dlin(&L[l][4], u, o);
      for (int i = 0; i < h; i++) rt[i] += o[i];
    }
  }
  drms(res + (size_t)(P - 1) * h, h, xn);
  for (int r = 0; r < m->vocab; r++) {
    double s = 0;
    for (int c = 0; c < h; c++) s += head.w[(size_t)r * h + c] * xn[c];
    logits[r] = s;
  }
  free(emb.w);
  free(head.w);
  for (int l = 0; l < m->layers; l++)
    for (int i = 0; i < 5; i++) free(L[l][i].w);
  free(res); free(xn); free(qkv); free(q); free(K); free(V); free(att); free(o); free(u); free(g); free(sc);
}

static void check_reference(int int4, int P) {
  struct qsr_model m;
  struct qsr_design d;
  tiny_model(&m);
  tiny_design(&m, &d, int4);
  float *lg = malloc((size_t)m.vocab * sizeof *lg);
  double *ref = malloc((size_t)m.vocab * sizeof *ref);
  struct qsr_run_result r;
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, P, -1, 0, lg, &r), QSR_OK);
  reference(&m, &d, P, ref);
  double mx = 0, diff = 0;
  for (int i = 0; i < m.vocab; i++) {
    mx = fmax(mx, fabs(ref[i]));
    diff = fmax(diff, fabs(ref[i] - lg[i]));
  }
  CU_ASSERT(mx > 0.1);                         /* not trivially zero */
  CU_ASSERT(diff <= LOGIT_TOL * mx);
  if (getenv("QSR_TEST_VERBOSE") || diff > LOGIT_TOL * mx) fprintf(stderr, "\n  %s P=%d: max |diff| %.3g of max |logit| %.3g\n", int4 ? "int4" : "fp16", P, diff, mx);
  free(lg);
  free(ref);
}

/* prompt 20: gemm_<fmt> and attn_prefill; prompt 5: gemv in prefill too */
static void test_reference_fp16(void) { check_reference(0, 20); check_reference(0, 5); }
static void test_reference_int4(void) { check_reference(1, 20); }

/* Position P reached by a prefill of P + 1 tokens (timed three times), and
** by a prefill of P - 1 tokens then the warm-up decode step (position P - 1)
** and one timed step. */
static void test_prefill_vs_decode(void) {
  for (int int4 = 0; int4 < 2; int4++) {
    struct qsr_model m;
    struct qsr_design d;
    tiny_model(&m);
    tiny_design(&m, &d, int4);
    int P = 24;
    float *a = malloc((size_t)m.vocab * sizeof *a), *b = malloc((size_t)m.vocab * sizeof *b);
    struct qsr_run_result ra, rb;
    /* three prefill passes: each must start from an empty cache */
    CU_ASSERT_EQUAL_FATAL(run_reps(&m, &d, P + 1, -1, 0, 3, a, &ra), QSR_OK);
    CU_ASSERT_EQUAL(ra.prefill_reps, 3);
    CU_ASSERT(ra.prefill_ms_min <= ra.prefill_ms && ra.prefill_ms <= ra.prefill_ms_max);
    CU_ASSERT_EQUAL_FATAL(run(&m, &d, P - 1, 1, 0, b, &rb), QSR_OK);
    CU_ASSERT_EQUAL(rb.steps, 1);
    double mx = max_abs(a, m.vocab), diff = 0;
    for (int i = 0; i < m.vocab; i++) diff = fmax(diff, fabs((double)a[i] - b[i]));
    CU_ASSERT(mx > 0.1);
    CU_ASSERT(diff <= LOGIT_TOL * mx);
    /* and a different position differs: the check can fail */
    CU_ASSERT_EQUAL_FATAL(run(&m, &d, P, -1, 0, b, &rb), QSR_OK);
    diff = 0;
    for (int i = 0; i < m.vocab; i++) diff = fmax(diff, fabs((double)a[i] - b[i]));
    CU_ASSERT(diff > 10 * LOGIT_TOL * mx);
    free(a);
    free(b);
  }
}

/* Bytes of the weights the runner allocates, from the layouts. */
static double weight_bytes(const struct qsr_model *m, const struct qsr_design *d, int layers) {
  double sum = 0;
  static const int ws[] = { QSR_RUN_W_QKV, QSR_RUN_W_OUT, QSR_RUN_W_UP, QSR_RUN_W_GATE, QSR_RUN_W_DOWN };
  for (int l = -1; l < layers; l++)
    for (int i = 0; i < (l < 0 ? 2 : 5); i++) {
      qsr_qmatrix q;
      CU_ASSERT_EQUAL_FATAL(qsr_run_weight(m, d, 7, l < 0 ? i : ws[i], l < 0 ? 0 : l, 0, &q, NULL), QSR_OK);
      sum += (double)qsr_qmatrix_bytes(&q);
      qsr_qmatrix_free(&q);
    }
  return sum;
}

static void test_memory_and_cap(void) {
  struct qsr_model m;
  struct qsr_design d;
  tiny_model(&m);
  tiny_design(&m, &d, 1);
  struct qsr_run_result full, capped;
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, 20, 3, 0, NULL, &full), QSR_OK);
  double wb = weight_bytes(&m, &d, 2);
  CU_ASSERT_DOUBLE_EQUAL(full.weights_mb * 1e6, wb, 1e-3);
  CU_ASSERT(full.peak_mb * 1e6 >= wb);
  CU_ASSERT_DOUBLE_EQUAL(full.peak_mb, full.weights_mb + full.kv_mb + full.act_mb, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(full.model_mb, full.peak_mb, 1e-9);
  /* KV: 2 layers x K and V x 2 kv heads x (20 + 3 + 1) tokens x 64 fp16 values */
  CU_ASSERT_DOUBLE_EQUAL(full.kv_mb * 1e6, 2.0 * 2 * 2 * 24 * 64 * 2, 1e-6);
  CU_ASSERT(full.rss_mb > 0);
  CU_ASSERT_EQUAL(full.layers_run, 2);
  CU_ASSERT_DOUBLE_EQUAL(full.layer_scale, 1.0, 0);
  CU_ASSERT_EQUAL(full.steps, 3);
  CU_ASSERT(full.decode_ms_p10 <= full.decode_ms_mean && full.decode_ms_mean <= full.decode_ms_p90 + 1e-9);
  /* a budget that holds everything but half a layer: one layer runs, x2 */
  double layer = (weight_bytes(&m, &d, 2) - weight_bytes(&m, &d, 1)) + full.kv_mb * 1e6 / 2;
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, 20, 3, (full.peak_mb * 1e6 - layer / 2) / 1e9, NULL, &capped), QSR_OK);
  CU_ASSERT_EQUAL(capped.layers_run, 1);
  CU_ASSERT_EQUAL(capped.layers_model, 2);
  CU_ASSERT_DOUBLE_EQUAL(capped.layer_scale, 2.0, 0);
  CU_ASSERT_DOUBLE_EQUAL(capped.peak_mb * 1e6, full.peak_mb * 1e6 - layer, 1e-3);
  CU_ASSERT_DOUBLE_EQUAL(capped.model_mb, full.model_mb, 1e-9);
  CU_ASSERT(strstr(capped.notes, "1 of 2 layers ran") != NULL);
  /* the one layer's time counts twice: prefill = ends + 2 x that layer */
  CU_ASSERT(capped.prefill_ms > capped.ends_prefill_ms);
  /* a budget below one layer is an error */
  char *err = NULL;
  struct qsr_run_opts o = { QSR_RUN_CPU, NULL, 1, 20, 3, (full.peak_mb * 1e6 - 1.5 * layer) / 1e9, 1, 7, 0, NULL };
  CU_ASSERT_EQUAL(qsr_run_model(&m, &d, &o, &capped, &err), QSR_ERR_NOMEM);
  CU_ASSERT_PTR_NOT_NULL(err);
  free(err);
}

static void test_kernels_named(void) {
  struct qsr_model m;
  struct qsr_design d;
  tiny_model(&m);
  tiny_design(&m, &d, 0);
  struct qsr_run_result r;
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, 20, 2, 0, NULL, &r), QSR_OK);
  CU_ASSERT_STRING_EQUAL(r.kernels, "gemv_fp16,gemm_fp16,attn_decode_dense,attn_prefill_dense,rmsnorm_add,silu_gate,embedding");
  tiny_design(&m, &d, 1);
  d.layer[QSR_LCLASS_LM_HEAD] = (struct qsr_wq){ QSR_WFMT_FP16, 16, 0 };
  d.kv = QSR_KVFMT_INT4;
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, 20, 2, 0, NULL, &r), QSR_OK);
  CU_ASSERT_STRING_EQUAL(r.kernels, "gemv_fp16,gemv_int,gemm_int,attn_decode_dense,attn_prefill_dense,rmsnorm_add,silu_gate,embedding");
  struct qsr_wq w = qsr_run_main_wq(&m, &d);
  CU_ASSERT(w.fmt == QSR_WFMT_INT && w.bits == 4 && w.group == 128);
  /* sparse heads: 1 dense, 1 paged top-k, 2 local; layer 1 all dense; LayerNorm + GELU */
  d.att_local = 0.5;
  d.att_topk = 0.25;
  d.att_dense = 0.25;
  d.window = 8;
  d.topk = 8;
  d.page = 4;
  d.selection = QSR_SEL_PAGED;
  d.dense_layer[1] = 1;
  m.norm = QSR_NORM_LAYER;
  m.ffn_act = QSR_FFNACT_GELU;
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, 20, 2, 0, NULL, &r), QSR_OK);
  CU_ASSERT_STRING_EQUAL(r.kernels, "gemv_fp16,gemv_int,gemm_int,attn_decode_dense,attn_decode_local,attn_decode_topk_paged,"
                                    "attn_prefill_dense,attn_prefill_local,attn_prefill_topk_paged,layernorm_add,gelu,embedding");
}

static void test_moe(void) {
  struct qsr_model m;
  struct qsr_design d;
  tiny_model(&m);
  tiny_design(&m, &d, 1);
  d.route = QSR_ROUTE_MOEFY;
  d.experts = 4;
  d.top_k = 2;
  d.capacity = 1.25;
  struct qsr_run_result r;
  float *lg = malloc((size_t)m.vocab * sizeof *lg);
  CU_ASSERT_EQUAL_FATAL(run(&m, &d, 20, 2, 0, lg, &r), QSR_OK);
  CU_ASSERT_STRING_EQUAL(r.kernels, "gemv_int,gemm_int,attn_decode_dense,attn_prefill_dense,moe_router,moe_experts_gemv,"
                                    "moe_experts_gemm,rmsnorm_add,silu_gate,embedding");
  int finite = 1;
  for (int i = 0; i < m.vocab; i++) finite &= isfinite(lg[i]) != 0;
  CU_ASSERT(finite);
  free(lg);
  /* weights: router 4 x 256 and 4 experts of 128 wide per layer, each its own buffer */
  qsr_qmatrix q;
  CU_ASSERT_EQUAL_FATAL(qsr_run_weight(&m, &d, 7, QSR_RUN_W_EXPERT_DOWN, 1, 3, &q, NULL), QSR_OK);
  CU_ASSERT(q.rows == 256 && q.cols == 128);
  qsr_qmatrix_free(&q);
}

static void test_refusals(void) {
  struct qsr_model m;
  struct qsr_design d;
  tiny_model(&m);
  tiny_design(&m, &d, 0);
  struct qsr_run_result r;
  struct qsr_run_opts o = { QSR_RUN_CUDA, NULL, 1, 8, 1, 0, 1, 7, 0, NULL };
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_run_model(&m, &d, &o, &r, &err), QSR_ERR_CUDA);
  CU_ASSERT(err && strstr(err, "not built"));
  free(err);
  err = NULL;
  o.backend = QSR_RUN_CPU;
  m.family = QSR_FAMILY_DIT;
  CU_ASSERT_EQUAL(qsr_run_model(&m, &d, &o, &r, &err), QSR_ERR_CONFIG);
  free(err);
  err = NULL;
  tiny_model(&m);
  m.head_dim = 48;                           /* not a multiple of 32 */
  CU_ASSERT_EQUAL(qsr_run_model(&m, &d, &o, &r, &err), QSR_ERR_CONFIG);
  free(err);
}

/* A table from before the prediction columns gains them and takes a row. */
static void test_measure_columns(void) {
  sqlite3 *db = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_open(":memory:", &db), SQLITE_OK);
  CU_ASSERT_EQUAL(sqlite3_exec(db, "CREATE TABLE measurements(id INTEGER PRIMARY KEY, kernel TEXT NOT NULL, median_us REAL,"
                                   " created_at TEXT DEFAULT CURRENT_TIMESTAMP);"
                                   "INSERT INTO measurements(kernel, median_us) VALUES('gemv_int', 5)", NULL, NULL, NULL), SQLITE_OK);
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_measure_schema(db, ":memory:", &err), QSR_OK);
  free(err);
  CU_ASSERT_EQUAL(qsr_measure_schema(db, ":memory:", NULL), QSR_OK);   /* idempotent */
  struct qsr_meas m;
  qsr_meas_clear(&m);
  m.kernel = "e2e";
  m.gen_tok_s = 10;
  m.pred_gen_tok_s = 11;
  m.peak_mb = 600;
  m.pred_peak_mb = 590;
  m.config = "results/deploy/x.yaml";
  CU_ASSERT_EQUAL(qsr_measure_put(db, ":memory:", &m, NULL), QSR_OK);
  sqlite3_stmt *q = NULL;
  CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, "SELECT count(*), max(pred_gen_tok_s), max(pred_peak_mb), max(config),"
                                               " sum(pred_prompt_tok_s IS NULL), max(gen_tok_s) FROM measurements",
                                           -1, &q, NULL), SQLITE_OK);
  CU_ASSERT_EQUAL_FATAL(sqlite3_step(q), SQLITE_ROW);
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 0), 2);
  CU_ASSERT_DOUBLE_EQUAL(sqlite3_column_double(q, 1), 11, 0);
  CU_ASSERT_DOUBLE_EQUAL(sqlite3_column_double(q, 2), 590, 0);
  CU_ASSERT_STRING_EQUAL((const char *)sqlite3_column_text(q, 3), "results/deploy/x.yaml");
  CU_ASSERT_EQUAL(sqlite3_column_int(q, 4), 2);
  CU_ASSERT_DOUBLE_EQUAL(sqlite3_column_double(q, 5), 10, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

void tst_register_run(void) {
  CU_pSuite s = CU_add_suite("run", NULL, NULL);
  CU_add_test(s, "logits vs naive double forward, fp16", test_reference_fp16);
  CU_add_test(s, "logits vs naive double forward, int4 g128", test_reference_int4);
  CU_add_test(s, "prefill vs decode at one position", test_prefill_vs_decode);
  CU_add_test(s, "memory = buffer bytes; layer cap and scale", test_memory_and_cap);
  CU_add_test(s, "kernels named by the design", test_kernels_named);
  CU_add_test(s, "moefy experts", test_moe);
  CU_add_test(s, "cuda, DiT and bad shapes refused", test_refusals);
  CU_add_test(s, "measurements: prediction columns on an old table", test_measure_columns);
}
