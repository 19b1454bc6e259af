/*
** test_calibrate.c -- the calibration fit, the measured lookup, calibrated
** device files and the gemv op class.
*/
#include "costmodel/calibrate.h"
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "spec/spec.h"
#include "tests/test.h"
#include "util/err.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIT_REL_TOL 0.02     /* parameters recovered from exact synthetic times */

/* A decode-like kop of the gemv class: T tokens through a rows x cols int4 matrix. */
static struct qsr_kop gemv_op(const struct qsr_device *d, double rows, double cols, double T) {
  struct qsr_kop k;
  memset(&k, 0, sizeof k);
  k.cls = QSR_OPCLASS_GEMV;
  k.mm_peak = qsr_fp16_peak(d);
  k.flops = 2 * T * rows * cols;
  k.bytes = (double)qsr_qweight_bytes(QSR_WFMT_INT, 4, 128, (uint64_t)rows, (uint64_t)cols) + 4 * T * (rows + cols);
  k.parts = 1;
  k.launches = 1;
  k.wfmt = QSR_WFMT_INT;
  k.wbits = 4;
  k.w_decodes = rows * cols;
  return k;
}

/* Times made by a known device are fitted back from a different start. */
static void test_fit_recovers(void) {
  struct qsr_device truth, start;
  if (!tst_device("rpi5", &truth)) return;
  truth.eff[QSR_OPCLASS_GEMV] = (struct qsr_eff){ 0.30, 0.55, 0.001, 0.2, 0 };
  truth.decode_ops[QSR_WFMT_INT][4] = 5.0;
  truth.launch_us = 3.0;
  start = truth;
  start.eff[QSR_OPCLASS_GEMV] = (struct qsr_eff){ 0.6, 0.8, 0.0005, 0.5, 0 };
  start.decode_ops[QSR_WFMT_INT][4] = 0;   /* format default: 2 */
  start.launch_us = 1.0;
  struct qsr_kop ops[64];
  double us[64];
  int n = 0;
  static const double sizes[][2] = { { 256, 256 }, { 1024, 1024 }, { 4096, 4096 }, { 11008, 4096 }, { 64, 64 } };
  static const double toks[] = { 1, 2, 4, 8, 16 };
  for (int s = 0; s < 5; s++)
    for (int t = 0; t < 5; t++) {
      ops[n] = gemv_op(&truth, sizes[s][0], sizes[s][1], toks[t]);
      us[n] = qsr_kop_ms(&truth, &ops[n], NULL) * 1e3;
      n++;
    }
  /* memory-bound calls: large traffic, no decoding */
  for (int s = 0; s < 6; s++) {
    struct qsr_kop k = gemv_op(&truth, 4096, 4096, 1);
    k.w_decodes = 0;
    k.flops = 1e3;
    k.bytes = 1e5 * pow(4, s);
    ops[n] = k;
    us[n] = qsr_kop_ms(&truth, &k, NULL) * 1e3;
    n++;
  }
  struct qsr_fit_report rep;
  char *err = NULL;
  int rc = qsr_calibrate_fit(&start, ops, us, n, &rep, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  CU_ASSERT(rep.converged);
  CU_ASSERT(rep.rms_log_pct < 0.5);
  CU_ASSERT_DOUBLE_EQUAL(start.eff[QSR_OPCLASS_GEMV].compute, 0.30, 0.30 * FIT_REL_TOL);
  CU_ASSERT_DOUBLE_EQUAL(start.eff[QSR_OPCLASS_GEMV].memory, 0.55, 0.55 * FIT_REL_TOL);
  CU_ASSERT_DOUBLE_EQUAL(start.decode_ops[QSR_WFMT_INT][4], 5.0, 5.0 * FIT_REL_TOL);
  /* launch_us and memory_half_mb both add a constant to small calls, so the
  ** data fix only their sum; check what they predict, not each one */
  struct qsr_kop fresh = gemv_op(&truth, 3000, 1000, 3);
  CU_ASSERT_DOUBLE_EQUAL(qsr_kop_ms(&start, &fresh, NULL), qsr_kop_ms(&truth, &fresh, NULL),
                         0.01 * qsr_kop_ms(&truth, &fresh, NULL));
  fresh = gemv_op(&truth, 128, 128, 1);
  CU_ASSERT_DOUBLE_EQUAL(qsr_kop_ms(&start, &fresh, NULL), qsr_kop_ms(&truth, &fresh, NULL),
                         0.01 * qsr_kop_ms(&truth, &fresh, NULL));
  CU_ASSERT_EQUAL(start.eff_fitted, 1);
  CU_ASSERT(start.eff[QSR_OPCLASS_GEMV].fit_rms_pct >= 0);
  CU_ASSERT_EQUAL(rep.cls[QSR_OPCLASS_GEMV].n, n);
  /* a class absent from the data keeps its values */
  CU_ASSERT_DOUBLE_EQUAL(start.eff[QSR_OPCLASS_ATTENTION].compute, truth.eff[QSR_OPCLASS_ATTENTION].compute, 1e-12);
  /* too few calls is an error, not a wild fit */
  rc = qsr_calibrate_fit(&start, ops, us, 3, &rep, &err);
  CU_ASSERT_EQUAL(rc, QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err);
  free(err);
}

static struct qsr_kshape gemv_shape(int64_t id, int64_t T, double us) {
  struct qsr_kshape s;
  memset(&s, 0, sizeof s);
  s.id = id;
  s.kernel = "gemv_int";
  s.op_class = "gemm";
  s.wfmt = "int";
  s.bits = 4;
  s.grp = 128;
  s.kvfmt = s.head_type = NULL;
  s.tokens = T;
  s.rows = 2048;
  s.cols = 2048;
  s.ctx = s.heads = s.kv_heads = s.head_dim = s.win = s.topk = s.experts = s.top_k = -1;
  s.flops = 2.0 * T * 2048 * 2048;
  s.vec_ops = 2.0 * 2048 * 2048;
  s.bytes = (double)qsr_qweight_bytes(QSR_WFMT_INT, 4, 128, 2048, 2048) + 4.0 * T * 4096;
  s.median_us = us;
  s.p10_us = 0.9 * us;
  s.p90_us = 1.2 * us;
  return s;
}

static void test_lookup(void) {
  struct qsr_device dev;
  if (!tst_device("rpi5", &dev)) return;
  struct qsr_kshape rows[4] = { gemv_shape(1, 1, 100), gemv_shape(2, 4, 160), gemv_shape(3, 16, 400),
                                gemv_shape(4, 4, 170) };   /* a newer row of T = 4 */
  qsr_lookup *lk = NULL;
  char *err = NULL;
  CU_ASSERT_EQUAL_FATAL(qsr_lookup_new(rows, 4, &lk, &err), QSR_OK);
  struct qsr_prediction p;
  struct qsr_kshape q = gemv_shape(9, 4, 0);
  qsr_lookup_predict(lk, &dev, &q, &p);
  CU_ASSERT_EQUAL(p.source, QSR_PSOURCE_EXACT);
  CU_ASSERT_DOUBLE_EQUAL(p.us, 170, 1e-9);                       /* the newest row wins */
  CU_ASSERT_DOUBLE_EQUAL(p.lo_us, 153, 1e-9);
  q = gemv_shape(9, 10, 0);                                        /* 4 -> 16: 170 + 6/12 x 230 */
  qsr_lookup_predict(lk, &dev, &q, &p);
  CU_ASSERT_EQUAL(p.source, QSR_PSOURCE_INTERP);
  CU_ASSERT_DOUBLE_EQUAL(p.us, 285, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(p.hi_us, 1.2 * 285, 1e-9);
  q = gemv_shape(9, 32, 0);                                        /* outside: never extrapolated */
  qsr_lookup_predict(lk, &dev, &q, &p);
  CU_ASSERT_EQUAL(p.source, QSR_PSOURCE_ROOFLINE);
  struct qsr_kop op;
  CU_ASSERT_EQUAL_FATAL(qsr_kop_from_shape(&dev, &q, &op, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(p.us, qsr_kop_ms(&dev, &op, NULL) * 1e3, 1e-9);
  q = gemv_shape(9, 4, 0);
  q.bits = 8;                                                      /* another line */
  qsr_lookup_predict(lk, &dev, &q, &p);
  CU_ASSERT_EQUAL(p.source, QSR_PSOURCE_ROOFLINE);
  qsr_lookup_free(lk);
  qsr_lookup_predict(NULL, &dev, &q, &p);
  CU_ASSERT_EQUAL(p.source, QSR_PSOURCE_ROOFLINE);
}

/* How measured rows become calls: class, decodes, KV elements. */
static void test_kop_from_shape(void) {
  struct qsr_device dev;
  if (!tst_device("rpi5", &dev)) return;
  struct qsr_kshape s = gemv_shape(1, 4, 100);
  struct qsr_kop op;
  const char *why = NULL;
  CU_ASSERT_EQUAL(qsr_kop_from_shape(&dev, &s, &op, &why), 0);
  CU_ASSERT_EQUAL(op.cls, QSR_OPCLASS_GEMV);
  CU_ASSERT_DOUBLE_EQUAL(op.w_decodes, 2048.0 * 2048, 0);
  CU_ASSERT_DOUBLE_EQUAL(op.vec_ops, 0, 0);                        /* all of it was decoding */
  s.kernel = "gemm_int";
  s.tokens = 300;                                                  /* 3 tiles of 128 */
  CU_ASSERT_EQUAL(qsr_kop_from_shape(&dev, &s, &op, &why), 0);
  CU_ASSERT_EQUAL(op.cls, QSR_OPCLASS_GEMM);
  CU_ASSERT_DOUBLE_EQUAL(op.w_decodes, 3.0 * 2048 * 2048, 0);
  s.kernel = "memcpy";
  CU_ASSERT_EQUAL(qsr_kop_from_shape(&dev, &s, &op, &why), -1);
  /* decode attention: 32 heads x 128, 8 KV heads, 1000 keys, int8 KV (130 B a vector) */
  struct qsr_kshape a = s;
  a.kernel = "attn_decode_dense";
  a.op_class = "attention";
  a.wfmt = NULL;
  a.kvfmt = "int8";
  a.heads = 32;
  a.head_dim = 128;
  a.bytes = 130.0 * 8 * 2000 + 8.0 * 32 * 128;
  CU_ASSERT_EQUAL(qsr_kop_from_shape(&dev, &a, &op, &why), 0);
  CU_ASSERT_EQUAL(op.cls, QSR_OPCLASS_ATTENTION);
  CU_ASSERT_DOUBLE_EQUAL(op.kv_decodes, 8.0 * 2000 * 128, 1e-6);
  a.kvfmt = "int3";
  CU_ASSERT_EQUAL(qsr_kop_from_shape(&dev, &a, &op, &why), -1);
}

/* A calibrated file keeps the source's lines and loads back to the fit. */
static void test_fitted_file(void) {
  struct qsr_device dev, back;
  if (!tst_device("rpi5", &dev)) return;
  dev.eff[QSR_OPCLASS_GEMV] = (struct qsr_eff){ 0.123, 0.456, 0.0007, 0.3, 12.5 };
  dev.decode_ops[QSR_WFMT_INT][4] = 6.5;
  dev.decode_ops[QSR_WFMT_FP16][16] = 30;
  dev.kv_decode_ops[QSR_KVFMT_INT8] = 0.75;
  dev.launch_us = 4.25;
  dev.eff_fitted = 1;
  char dir[256], out[1024], *err = NULL;
  const char *t = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/qsr-test-XXXXXX", t && *t ? t : "/tmp");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  snprintf(out, sizeof out, "%s/rpi5.calibrated.yaml", dir);   /* the stem must be the device name */
  int rc = qsr_device_write_fitted("configs/devices/rpi5.yaml", out, &dev, "# qsr calibrate: test\n", &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  err = NULL;
  rc = qsr_device_load(out, &back, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  CU_ASSERT_STRING_EQUAL(back.name, "rpi5");
  CU_ASSERT_EQUAL(back.eff_fitted, 1);
  CU_ASSERT_DOUBLE_EQUAL(back.eff[QSR_OPCLASS_GEMV].compute, 0.123, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(back.eff[QSR_OPCLASS_GEMV].fit_rms_pct, 12.5, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(back.decode_ops[QSR_WFMT_INT][4], 6.5, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(back.decode_ops[QSR_WFMT_FP16][16], 30, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(back.kv_decode_ops[QSR_KVFMT_INT8], 0.75, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(back.launch_us, 4.25, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(back.bw_gbps, dev.bw_gbps, 0);            /* untouched figures */
  CU_ASSERT_DOUBLE_EQUAL(back.eff[QSR_OPCLASS_GEMM].compute, dev.eff[QSR_OPCLASS_GEMM].compute, 1e-9);
  FILE *f = fopen(out, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char line[512];
  int sourced = 0, effs = 0;
  while (fgets(line, sizeof line, f)) {
    sourced += strstr(line, "bw_gbps: 17.07") != NULL && strstr(line, "LPDDR4X") != NULL;
    effs += strstr(line, "efficiency:") != NULL && line[strspn(line, " ")] != '#';
  }
  fclose(f);
  CU_ASSERT_EQUAL(sourced, 1);   /* the source comment of each figure stays */
  CU_ASSERT_EQUAL(effs, 1);      /* one efficiency section, the fitted one */
  remove(out);
  rmdir(dir);
  /* decode_ops keys are checked */
  const char *bad = tst_write_tmp("badd.yaml",
                                  "device:\n  name: qsr-test-badd\n  kind: cpu\n  memory_gb: 8\n  usable_gb: 7\n"
                                  "  bw_gbps: 10\n  peak_tflops: { fp32: 0.1 }\n  launch_us: 1\n  tdp_w: 10\n  idle_w: 1\n"
                                  "  decode_ops: { foo4: 1 }\n");
  struct qsr_device x;
  err = NULL;
  CU_ASSERT_EQUAL(qsr_device_load(bad, &x, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL_FATAL(err);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "foo"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, ":11:"));                     /* the line of the key */
  free(err);
  remove(bad);
}

/* Linear ops of <= 16 tokens are costed with the gemv class. */
static void test_gemv_class(void) {
  struct qsr_device dev;
  struct qsr_model m;
  struct qsr_design d;
  struct qsr_result a, b;
  if (!tst_device("a100-80g", &dev) || !tst_model("llama-7b", &m)) return;
  if (!tst_design(&m, NULL, &d, "quant.weights.bits=4", "quant.weights.format=int", NULL)) return;
  if (!tst_eval(&dev, &m, &d, &a)) return;
  dev.eff[QSR_OPCLASS_GEMV].memory /= 2;
  if (!tst_eval(&dev, &m, &d, &b)) return;
  /* prefill: the 512-token GEMMs are unchanged, only its one-token lm_head is a gemv */
  double lm[2] = { 0, 0 }, qkv[2] = { 0, 0 };
  const struct qsr_result *r2[2] = { &a, &b };
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < r2[k]->n_ops; i++) {
      const struct qsr_opcost *o = &r2[k]->ops[i];
      if (o->phase != QSR_PHASE_PREFILL) continue;
      if (o->kind == QSR_OP_LM_HEAD) lm[k] = o->ms;
      if (o->kind == QSR_OP_QKV) qkv[k] = o->ms;
    }
  CU_ASSERT_DOUBLE_EQUAL(qkv[1], qkv[0], 1e-12);
  CU_ASSERT(lm[1] > lm[0]);
  CU_ASSERT_DOUBLE_EQUAL(b.prefill_ms - a.prefill_ms, lm[1] - lm[0], 1e-9);
  CU_ASSERT(b.tpot_ms > 1.6 * a.tpot_ms);                           /* memory-bound decode slows */
  /* weight bytes / bandwidth bound still holds with the halved efficiency */
  CU_ASSERT(b.tpot_ms >= a.mem_weights_mb * 1e6 / (dev.bw_gbps * 1e9) * 1e3);
}

void tst_register_calibrate(void) {
  CU_pSuite s = CU_add_suite("calibrate", NULL, NULL);
  CU_add_test(s, "fit recovers known efficiencies, decode cost, launch", test_fit_recovers);
  CU_add_test(s, "lookup: measured, interpolated, roofline", test_lookup);
  CU_add_test(s, "measured rows -> cost-model calls", test_kop_from_shape);
  CU_add_test(s, "calibrated device file round trip", test_fitted_file);
  CU_add_test(s, "gemv op class for <= 16 tokens", test_gemv_class);
}
