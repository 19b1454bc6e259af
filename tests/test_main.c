/*
** test_main.c -- the CUnit runner and helpers shared by the suites.
*/
#include "tests/test.h"
#include "util/err.h"

#include <CUnit/Basic.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tst_device(const char *name, struct qsr_device *d) {
  char path[PATH_MAX], *err = NULL;
  int rc = qsr_spec_resolve("devices", name, path, sizeof path, &err);
  if (!rc) rc = qsr_device_load(path, d, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc == QSR_OK;
}

int tst_model(const char *name, struct qsr_model *m) {
  char path[PATH_MAX], *err = NULL;
  int rc = qsr_spec_resolve("models", name, path, sizeof path, &err);
  if (!rc) rc = qsr_model_load(path, m, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc == QSR_OK;
}

int tst_quality(struct qsr_quality *q) {
  char *err = NULL;
  int rc = qsr_quality_load("configs/quality/default.yaml", q, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc == QSR_OK;
}

int tst_design(const struct qsr_model *m, const char *design, struct qsr_design *d, ...) {
  static struct qsr_design_builder b;
  char path[PATH_MAX], *err = NULL;
  int rc = QSR_OK;
  qsr_design_begin(&b, m);
  if (design) {
    rc = qsr_spec_resolve("designs", design, path, sizeof path, &err);
    if (!rc) rc = qsr_design_load(&b, path, &err);
  }
  va_list ap;
  va_start(ap, d);
  const char *s;
  while (!rc && (s = va_arg(ap, const char *))) rc = qsr_design_set(&b, s, &err);
  va_end(ap);
  if (!rc) rc = qsr_design_finish(&b, m, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  *d = b.d;
  return rc == QSR_OK;
}

int tst_eval(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
             struct qsr_result *r) {
  char *err = NULL;
  struct qsr_quality q;
  tst_quality(&q);
  int rc = qsr_eval(dev, m, d, &q, r, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc == QSR_OK;
}

static char tst_dir[256];

int tst_tmpdir_begin(const char *tag) {
  const char *t = getenv("TMPDIR");
  snprintf(tst_dir, sizeof tst_dir, "%s/qsr-%s-test-%d", t && *t ? t : "/tmp", tag, (int)getpid());
  return mkdir(tst_dir, 0700);
}

int tst_tmpdir_end(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tst_dir);
  return system(cmd) == 0 ? 0 : 1;
}

const char *tst_tmp(const char *name) {
  static char buf[32][512];  /* distinct paths for a whole suite */
  static int k;
  k = (k + 1) % 32;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tst_dir, name);
  return buf[k];
}

const char *tst_write_tmp(const char *name, const char *text) {
  static char path[PATH_MAX];
  const char *dir = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/qsr-test-%d-%s", dir && *dir ? dir : "/tmp", (int)getpid(), name);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
  return path;
}

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 1;
  tst_register_formats();
  tst_register_spec();
  tst_register_cost();
  tst_register_sweep();
  tst_register_kernels();
  tst_register_cuda();
  tst_register_import();
  tst_register_calibrate();
  tst_register_run();
  tst_register_trace();
  tst_register_simstore();
  tst_register_serve();
  tst_register_routes();
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}
