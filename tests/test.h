/*
** test.h -- shared helpers of the CUnit suites (run from the repo root).
*/
#ifndef QSR_TEST_H
#define QSR_TEST_H

#include <CUnit/CUnit.h>

#include "costmodel/costmodel.h"
#include "spec/spec.h"

void tst_register_formats(void);
void tst_register_spec(void);
void tst_register_cost(void);
void tst_register_sweep(void);
void tst_register_kernels(void);
void tst_register_cuda(void);
void tst_register_import(void);
void tst_register_calibrate(void);
void tst_register_run(void);
void tst_register_trace(void);
void tst_register_simstore(void);
void tst_register_serve(void);
void tst_register_routes(void);

/* Loads configs/<kind>/<name>.yaml or fails the test (returns 0 then). */
int tst_device(const char *name, struct qsr_device *d);
int tst_model(const char *name, struct qsr_model *m);
int tst_quality(struct qsr_quality *q);
/* Builds a design: optional design name, then NULL-terminated --set list. */
int tst_design(const struct qsr_model *m, const char *design, struct qsr_design *d, ...);
/* Evaluates or fails. */
int tst_eval(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
             struct qsr_result *r);
/* A fresh directory for one suite ($TMPDIR/qsr-TAG-test-PID): make it in
** the suite's init, remove it with tst_tmpdir_end as the suite's clean;
** tst_tmp(name) is a path in it (one of 32 rotating static buffers). */
int tst_tmpdir_begin(const char *tag);
int tst_tmpdir_end(void);
const char *tst_tmp(const char *name);
/* Writes text to a fresh temp file; returns its path (static buffer). */
const char *tst_write_tmp(const char *name, const char *text);

#define REL_TOL 0.01 /* 1%: counts we derive by hand from published configs */

#endif
