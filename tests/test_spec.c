/*
** test_spec.c -- loading every bundled spec, and each bad-input path.
*/
#include "kernels/qformat.h"
#include "tests/test.h"
#include "util/err.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every bundled file of a kind loads. */
static int load_all(const char *kind) {
  char dir[PATH_MAX], path[2 * PATH_MAX];
  snprintf(dir, sizeof dir, "configs/%s", kind);
  DIR *dp = opendir(dir);
  CU_ASSERT_PTR_NOT_NULL_FATAL(dp);
  struct dirent *e;
  int n = 0;
  struct qsr_model llama;
  tst_model("llama-7b", &llama);
  while ((e = readdir(dp))) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    char *err = NULL;
    int rc;
    if (!strcmp(kind, "devices")) { struct qsr_device d; rc = qsr_device_load(path, &d, &err); }
    else if (!strcmp(kind, "models")) { struct qsr_model m; rc = qsr_model_load(path, &m, &err); }
    else if (!strcmp(kind, "quality")) { struct qsr_quality q; rc = qsr_quality_load(path, &q, &err); }
    else {
      static struct qsr_design_builder b;
      qsr_design_begin(&b, &llama);
      rc = qsr_design_load(&b, path, &err);
      if (!rc) rc = qsr_design_finish(&b, &llama, &err);
    }
    if (rc) fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL(rc, QSR_OK);
    free(err);
    n++;
  }
  closedir(dp);
  return n;
}

static void test_bundled(void) {
  CU_ASSERT(load_all("devices") >= 9);
  CU_ASSERT(load_all("models") >= 7);
  CU_ASSERT(load_all("designs") >= 8);
  CU_ASSERT(load_all("quality") >= 1);
}

/* Loads text as a device file; returns rc and the message in msg. */
static int device_text(const char *text, char *msg, size_t cap) {
  const char *path = tst_write_tmp("dev.yaml", text);
  struct qsr_device d;
  char *err = NULL;
  int rc = qsr_device_load(path, &d, &err);
  snprintf(msg, cap, "%s", err ? err : "");
  CU_ASSERT(rc == QSR_OK ? err == NULL : err != NULL);
  free(err);
  remove(path);
  return rc;
}

#define DEV_HEAD "device:\n  name: qsr-test-%d-dev\n  kind: gpu\n"
static const char *dev_ok =
  "  memory_gb: 16\n  usable_gb: 15\n  bw_gbps: 500\n  peak_tflops: { fp32: 10, fp16_tensor: 100 }\n"
  "  launch_us: 4\n  tdp_w: 200\n  idle_w: 20\n";

static int dev_case(const char *extra, const char *replace_from, const char *replace_to, char *msg, size_t cap) {
  char body[2048], head[128];
  snprintf(head, sizeof head, DEV_HEAD, (int)getpid());
  snprintf(body, sizeof body, "%s%s%s", head, dev_ok, extra);
  if (replace_from) {
    char *p = strstr(body, replace_from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char tail[2048];
    snprintf(tail, sizeof tail, "%s", p + strlen(replace_from));
    snprintf(p, sizeof body - (size_t)(p - body), "%s%s", replace_to, tail);
  }
  return device_text(body, msg, cap);
}

static void test_device_errors(void) {
  char msg[512];
  CU_ASSERT_EQUAL(dev_case("", NULL, NULL, msg, sizeof msg), QSR_OK);
  /* malformed YAML: file and line */
  CU_ASSERT_EQUAL(dev_case("  offload: [host\n", NULL, NULL, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "dev.yaml:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "malformed YAML"));
  /* unknown key, with line:col and the key named */
  CU_ASSERT_EQUAL(dev_case("  bw_gbpss: 3\n", NULL, NULL, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, ":11:3: bw_gbpss: unknown key"));
  /* wrong type */
  CU_ASSERT_EQUAL(dev_case("", "bw_gbps: 500", "bw_gbps: fast", msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "bw_gbps: expected a number, got 'fast'"));
  /* negative bandwidth */
  CU_ASSERT_EQUAL(dev_case("", "bw_gbps: 500", "bw_gbps: -5", msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "out of range"));
  /* missing required key */
  CU_ASSERT_EQUAL(dev_case("", "  tdp_w: 200\n", "", msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "device.tdp_w: required key missing"));
  /* duplicate key */
  CU_ASSERT_EQUAL(dev_case("  bw_gbps: 600\n", NULL, NULL, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "duplicate key"));
  /* bad enum */
  CU_ASSERT_EQUAL(dev_case("", "kind: gpu", "kind: tpu", msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "expected one of gpu, soc, cpu"));
  /* usable above capacity */
  CU_ASSERT_EQUAL(dev_case("", "usable_gb: 15", "usable_gb: 17", msg, sizeof msg), QSR_ERR_CONFIG);
  /* default power mode that does not exist */
  CU_ASSERT_EQUAL(dev_case("  default_power_mode: turbo\n", NULL, NULL, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "turbo"));
  /* name must equal the file stem */
  CU_ASSERT_EQUAL(dev_case("", "qsr-test", "other", msg, sizeof msg), QSR_ERR_CONFIG);
  /* empty file, and a list at the top */
  CU_ASSERT_EQUAL(device_text("", msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "empty file"));
  CU_ASSERT_EQUAL(device_text("- a\n- b\n", msg, sizeof msg), QSR_ERR_CONFIG);
  /* missing file */
  char *err = NULL;
  struct qsr_device d;
  CU_ASSERT_EQUAL(qsr_device_load("/nonexistent/x.yaml", &d, &err), QSR_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(err);
  free(err);
}

static void test_model_errors(void) {
  char *err = NULL;
  struct qsr_model m;
  /* zero layers */
  const char *p = tst_write_tmp("m.yaml",
    "model:\n  name: x\n  family: decoder\n  layers: 0\n  hidden: 64\n  heads: 4\n  ffn: 128\n"
    "  ffn_act: swiglu\n  vocab: 100\n  max_context: 64\n  published_params_b: 0.001\n");
  CU_ASSERT_EQUAL(qsr_model_load(p, &m, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, ":4:11: layers: 0 out of range"));
  free(err); err = NULL;
  /* a published count that the shape does not give */
  p = tst_write_tmp("m.yaml",
    "model:\n  name: x\n  family: decoder\n  layers: 32\n  hidden: 4096\n  heads: 32\n  ffn: 11008\n"
    "  ffn_act: swiglu\n  vocab: 32000\n  max_context: 2048\n  published_params_b: 7.5\n");
  CU_ASSERT_EQUAL(qsr_model_load(p, &m, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "6.738"));
  free(err); err = NULL;
  /* kv heads that do not divide heads */
  p = tst_write_tmp("m.yaml",
    "model:\n  name: x\n  family: decoder\n  layers: 32\n  hidden: 4096\n  heads: 32\n  kv_heads: 5\n  ffn: 11008\n"
    "  ffn_act: swiglu\n  vocab: 32000\n  max_context: 2048\n  published_params_b: 6.74\n");
  CU_ASSERT_EQUAL(qsr_model_load(p, &m, &err), QSR_ERR_CONFIG);
  free(err);
  remove(p);
}

/* Builds a llama-7b design from --set lines; returns rc and message. */
static int design_sets(const char *model, char *msg, size_t cap, const char *a, const char *b) {
  struct qsr_model m;
  tst_model(model, &m);
  static struct qsr_design_builder bl;
  char *err = NULL;
  qsr_design_begin(&bl, &m);
  int rc = qsr_design_set(&bl, a, &err);
  if (!rc && b) rc = qsr_design_set(&bl, b, &err);
  if (!rc) rc = qsr_design_finish(&bl, &m, &err);
  snprintf(msg, cap, "%s", err ? err : "");
  free(err);
  return rc;
}

static void test_design_errors(void) {
  char msg[512];
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "quant.weights.bits=4", NULL), QSR_OK);
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "quant.weights.bits=7", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "7-bit int is not a supported format"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "quant.weights.bits=1", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "--set: quant.weights.bits: 1 out of range"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "quant.weights.format=fp8", "quant.weights.bits=4"), QSR_ERR_CONFIG);
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "quant.weights.group=48", "quant.weights.bits=4"), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "multiple of 32"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "attention.local=0.5", "attention.dense=0.7"), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "sum to 1"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "attention.window=0", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "attention.dense_layers=[0,40]", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "layer 40 out of range"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "attention.dense_layers=[0,31]", NULL), QSR_OK);
  CU_ASSERT_EQUAL(design_sets("mixtral-8x7b", msg, sizeof msg, "routing.top_k=9", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "exceeds routing.experts 8"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "routing.mode=moe", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "routing.experts=7", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "does not divide"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "quant.weights.bitz=4", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "unknown key (known here: bits, format, group)"));
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "runtime.batch", NULL), QSR_ERR_USAGE);
  CU_ASSERT_EQUAL(design_sets("llama-7b", msg, sizeof msg, "runtime.batch=[1,2", NULL), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "malformed YAML"));
  /* a design file with a bad value names file, line and column */
  struct qsr_model m;
  tst_model("llama-7b", &m);
  static struct qsr_design_builder b;
  char *err = NULL;
  const char *p = tst_write_tmp("d.yaml", "quant:\n  weights:\n    bits: four\n");
  qsr_design_begin(&b, &m);
  CU_ASSERT_EQUAL(qsr_design_load(&b, p, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "d.yaml:3:11: quant.weights.bits: expected a number"));
  free(err);
  remove(p);
}

static void test_design_completion(void) {
  struct qsr_model m;
  struct qsr_design d;
  tst_model("llama-7b", &m);
  tst_design(&m, NULL, &d, "quant.weights.bits=4", NULL);
  CU_ASSERT_EQUAL(d.weights.fmt, QSR_WFMT_INT);
  CU_ASSERT_EQUAL(d.weights.group, 128);
  tst_design(&m, NULL, &d, "quant.weights.format=fp8", NULL);
  CU_ASSERT_EQUAL(d.weights.bits, 8);
  tst_design(&m, NULL, &d, "attention.local=0.75", NULL);
  CU_ASSERT_DOUBLE_EQUAL(d.att_dense, 0.25, 1e-12);
  tst_design(&m, "ablation-qsr", &d, NULL);
  CU_ASSERT_EQUAL(d.layer[QSR_LCLASS_FFN_UP].fmt, QSR_WFMT_LOG);
  CU_ASSERT_EQUAL(d.layer[QSR_LCLASS_FFN_UP].bits, 3);
  CU_ASSERT_EQUAL(d.layer[QSR_LCLASS_ATTN_QKV].bits, 0);  /* not overridden: default 4-bit */
  CU_ASSERT_TRUE(d.dense_layer[31] && !d.dense_layer[30]);
}

static void test_resolve(void) {
  char path[PATH_MAX], *err = NULL;
  CU_ASSERT_EQUAL(qsr_spec_resolve("devices", "a100-80g", path, sizeof path, &err), QSR_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(path, "devices/a100-80g.yaml"));
  CU_ASSERT_EQUAL(qsr_spec_resolve("devices", "tpu-v9", path, sizeof path, &err), QSR_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "unknown device 'tpu-v9'"));
  free(err);
}

void tst_register_spec(void) {
  CU_pSuite s = CU_add_suite("spec", NULL, NULL);
  CU_add_test(s, "bundled configs load", test_bundled);
  CU_add_test(s, "device file errors", test_device_errors);
  CU_add_test(s, "model file errors", test_model_errors);
  CU_add_test(s, "design errors", test_design_errors);
  CU_add_test(s, "design completion", test_design_completion);
  CU_add_test(s, "name resolution", test_resolve);
}
