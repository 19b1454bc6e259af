/*
** test_import.c -- qsr import: llama-bench CSV/JSON/JSONL and plain CSV from
** the sample files in tests/data/import/ (written in llama-bench's own field
** order: a mid-2025 CSV, an early-2024 JSON with per-backend booleans, a
** late-2025 JSONL), the weight-type table against qsr_qweight_bytes(), the
** model mapping, bad input with its line numbers, and a database round trip
** (the library, then the real ./qsr binary: duplicates, nothing half-written).
*/
#include "kernels/qformat.h"
#include "spec/import.h"
#include "store/measure.h"
#include "store/store.h"
#include "tests/test.h"
#include "util/err.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define DATA "tests/data/import/"
#define NUM_TOL 1e-9   /* relative: numbers are copied from the file, not computed */
#define SAMPLE_TOL 1e-6 /* p10/p90 interpolated from samples_ns, in microseconds */

static struct qsr_import_opts opts(const char *device) {
  struct qsr_import_opts o = { QSR_IMPORT_AUTO, device, NULL, NULL };
  return o;
}

static int load(const char *path, const struct qsr_import_opts *o, struct qsr_import *im) {
  char *err = NULL;
  int rc = qsr_import_file(path, o, im, &err);
  if (rc) fprintf(stderr, "\n  %s\n", err);
  free(err);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  return rc;
}

static int rel_eq(double got, double want, double tol) {
  return fabs(got - want) <= tol * fabs(want);
}
#define CU_ASSERT_STR(got, want) CU_ASSERT((got) && !strcmp((got), (want)))

static int has_note(const struct qsr_import *im, const char *part) {
  for (size_t i = 0; i < im->n_notes; i++)
    if (strstr(im->notes[i], part)) return 1;
  return 0;
}

/* ---- llama-bench ---------------------------------------------------------- */

static void test_lb_csv(void) {
  struct qsr_import im;
  struct qsr_import_opts o = opts(NULL);
  if (load(DATA "llama-bench-7b-q4_0.csv", &o, &im)) return;
  CU_ASSERT_EQUAL(im.format, QSR_IMPORT_LB_CSV);
  CU_ASSERT_EQUAL_FATAL(im.n, 3);
  CU_ASSERT(im.n_pp == 1 && im.n_tg == 1 && im.n_pg == 1);
  const struct qsr_meas *pp = &im.rows[0], *tg = &im.rows[1], *pg = &im.rows[2];
  for (int i = 0; i < 3; i++) {
    const struct qsr_meas *m = &im.rows[i];
    CU_ASSERT_STR(m->kernel, "e2e");
    CU_ASSERT_STR(m->op_class, "e2e");
    CU_ASSERT_STR(m->backend, "external");
    CU_ASSERT_STR(m->source, "llama-bench");
    CU_ASSERT_PTR_NULL(m->device);                     /* no --device */
    /* a quoted field with a comma (two GPUs), as get_gpu_info() joins them */
    CU_ASSERT_STR(m->device_desc, "NVIDIA GeForce RTX 3090, NVIDIA GeForce RTX 3090");
    CU_ASSERT_STR(m->driver, "CUDA");
    CU_ASSERT_STR(m->rev, "5c0eb5ef");
    CU_ASSERT_STR(m->model, "llama-7b");               /* 6,738,415,616 params */
    CU_ASSERT_STR(m->quant, "Q4_0");
    CU_ASSERT_STR(m->wfmt, "int_sym");
    CU_ASSERT(m->bits == 4 && m->grp == 32);
    CU_ASSERT_STR(m->kvfmt, "fp16");
    CU_ASSERT_EQUAL(m->threads, 16);
    CU_ASSERT_EQUAL(m->batch, 1);
    CU_ASSERT_EQUAL(m->ctx, 0);
    CU_ASSERT_STR(m->split, "holdout");
    CU_ASSERT(m->reps < 0 && isnan(m->p10_us));        /* CSV has no samples */
  }
  CU_ASSERT(pp->prompt == 512 && pp->gen == 0 && pp->tokens == 512);
  CU_ASSERT(rel_eq(pp->prompt_tok_s, 4809.910274, NUM_TOL));
  CU_ASSERT(isnan(pp->gen_tok_s));
  CU_ASSERT(rel_eq(pp->median_us, 106447.083, NUM_TOL));              /* avg_ns / 1000 */
  CU_ASSERT(rel_eq(pp->spread_pct, 100.0 * 159389 / 106447083, NUM_TOL));
  CU_ASSERT(tg->prompt == 0 && tg->gen == 128 && tg->tokens == 1);
  CU_ASSERT(rel_eq(tg->gen_tok_s, 149.285815, NUM_TOL));
  CU_ASSERT(isnan(tg->prompt_tok_s));
  CU_ASSERT(pg->prompt == 512 && pg->gen == 128);
  CU_ASSERT(isnan(pg->prompt_tok_s) && isnan(pg->gen_tok_s));        /* avg_ts mixes both */
  CU_ASSERT(rel_eq(pg->median_us, 964946.679, NUM_TOL));
  CU_ASSERT(has_note(&im, "-> llama-7b"));
  CU_ASSERT(has_note(&im, "Q4_0 -> int_sym4 g32"));
  qsr_import_free(&im);

  /* --device, --model and --split are applied */
  struct qsr_import_opts o2 = { QSR_IMPORT_LB_CSV, "a100-80g", "llama2-13b", "fit" };
  if (load(DATA "llama-bench-7b-q4_0.csv", &o2, &im)) return;
  CU_ASSERT_STR(im.rows[0].device, "a100-80g");
  CU_ASSERT_STR(im.rows[0].model, "llama2-13b");
  CU_ASSERT_STR(im.rows[0].split, "fit");
  qsr_import_free(&im);
}

static void test_lb_json(void) {
  struct qsr_import im;
  struct qsr_import_opts o = opts("a100-80g");
  if (load(DATA "llama-bench-mistral-q4_k_m.json", &o, &im)) return;
  CU_ASSERT_EQUAL(im.format, QSR_IMPORT_LB_JSON);
  CU_ASSERT_EQUAL_FATAL(im.n, 2);
  CU_ASSERT(im.n_pp == 1 && im.n_tg == 1 && im.n_pg == 0);
  const struct qsr_meas *pp = &im.rows[0], *tg = &im.rows[1];
  CU_ASSERT_STR(pp->device, "a100-80g");
  CU_ASSERT_STR(pp->model, "mistral-7b");              /* "llama 7B", 7,241,732,096 params */
  CU_ASSERT_STR(pp->quant, "Q4_K_M");                  /* from "llama 7B Q4_K - Medium" */
  CU_ASSERT_STR(pp->wfmt, "int");
  CU_ASSERT(pp->bits == 4 && pp->grp == 64);
  CU_ASSERT_STR(pp->device_desc, "NVIDIA A100-SXM4-80GB");
  CU_ASSERT_STR(pp->driver, "CUDA");                   /* 2024: the "cuda": true boolean */
  CU_ASSERT_STR(pp->rev, "b8109bc0");
  CU_ASSERT_EQUAL(pp->threads, 64);
  CU_ASSERT_EQUAL(pp->ctx, 0);                         /* no n_depth before mid-2025 */
  CU_ASSERT(rel_eq(pp->prompt_tok_s, 3916.792539, NUM_TOL));
  CU_ASSERT(rel_eq(pp->median_us, 130719.460, NUM_TOL));
  /* samples 130455210, 130612907, 130725623, 130801442, 131002118 (sorted) */
  CU_ASSERT_EQUAL(pp->reps, 5);
  CU_ASSERT(fabs(pp->p10_us - (130455210 + 0.4 * (130612907 - 130455210)) / 1e3) < SAMPLE_TOL);
  CU_ASSERT(fabs(pp->p90_us - (130801442 + 0.6 * (131002118 - 130801442)) / 1e3) < SAMPLE_TOL);
  CU_ASSERT(rel_eq(tg->gen_tok_s, 132.049708, NUM_TOL));
  CU_ASSERT(tg->gen == 128 && tg->prompt == 0);
  CU_ASSERT(has_note(&im, "4.83 bits per weight in the file"));
  qsr_import_free(&im);
}

static void test_lb_jsonl(void) {
  struct qsr_import im;
  struct qsr_import_opts o = opts(NULL);
  if (load(DATA "llama-bench-tinyllama-f16.jsonl", &o, &im)) return;
  CU_ASSERT_EQUAL(im.format, QSR_IMPORT_LB_JSONL);
  CU_ASSERT_EQUAL_FATAL(im.n, 4);
  CU_ASSERT(im.n_pp == 2 && im.n_tg == 2);
  CU_ASSERT_STR(im.rows[0].model, "tinyllama-1.1b");
  CU_ASSERT_STR(im.rows[0].quant, "F16");
  CU_ASSERT_STR(im.rows[0].wfmt, "fp16");
  CU_ASSERT(im.rows[0].bits == 16 && im.rows[0].grp == 0);
  CU_ASSERT_STR(im.rows[0].device_desc, "AMD EPYC 7763 64-Core Processor");  /* gpu_info "" */
  CU_ASSERT_STR(im.rows[0].driver, "CPU");
  CU_ASSERT_EQUAL(im.rows[0].tokens, 64);
  CU_ASSERT_EQUAL(im.rows[0].ctx, 0);
  CU_ASSERT_EQUAL(im.rows[2].ctx, 512);                /* n_depth */
  CU_ASSERT_EQUAL(im.rows[3].ctx, 512);
  CU_ASSERT(rel_eq(im.rows[3].gen_tok_s, 18.927931, NUM_TOL));
  CU_ASSERT_EQUAL(im.rows[3].reps, 3);
  qsr_import_free(&im);
}

/* ---- plain CSV ------------------------------------------------------------ */

static void test_plain_csv(void) {
  struct qsr_import im;
  struct qsr_import_opts o = opts(NULL);
  if (load(DATA "plain.csv", &o, &im)) return;
  CU_ASSERT_EQUAL(im.format, QSR_IMPORT_CSV);
  CU_ASSERT_EQUAL_FATAL(im.n, 4);
  CU_ASSERT(im.n_pp == 0 && im.n_tg == 1 && im.n_pg == 3);
  const struct qsr_meas *m = im.rows;
  CU_ASSERT_STR(m[0].source, "csv");
  CU_ASSERT_STR(m[0].device, "a100-80g");
  CU_ASSERT_STR(m[0].model, "llama-7b");
  CU_ASSERT_STR(m[0].quant, "int4g128");
  CU_ASSERT(!strcmp(m[0].wfmt, "int") && m[0].bits == 4 && m[0].grp == 128);
  CU_ASSERT(m[0].batch == 1 && m[0].prompt == 512 && m[0].gen == 128);
  CU_ASSERT(rel_eq(m[0].prompt_tok_s, 6120.5, NUM_TOL) && rel_eq(m[0].gen_tok_s, 131.2, NUM_TOL));
  CU_ASSERT(isnan(m[0].median_us));
  CU_ASSERT_STR(m[1].quant, "Q4_K_M");                 /* a llama.cpp name in a plain CSV */
  CU_ASSERT(!strcmp(m[1].wfmt, "int") && m[1].bits == 4 && m[1].grp == 64);
  CU_ASSERT(!strcmp(m[2].wfmt, "fp16") && m[2].bits == 16 && m[2].grp == 0 && m[2].batch == 8);
  /* the last row's unknown column is quoted across two lines */
  CU_ASSERT_STR(m[3].device, "orin-nx-16g");
  CU_ASSERT_STR(m[3].model, "mistral-7b");
  CU_ASSERT(!strcmp(m[3].wfmt, "int_sym") && m[3].grp == 32);
  CU_ASSERT(isnan(m[3].prompt_tok_s) && rel_eq(m[3].gen_tok_s, 18.9, NUM_TOL));
  CU_ASSERT(!has_note(&im, "not in configs"));         /* bundled names */
  qsr_import_free(&im);

  /* the RFC 4180 reader on its own: doubled quotes, CRLF, commas in quotes */
  const char *text = "device,model,quantisation,prompt,generation,gen_tok_s,notes\r\n"
                     "my gpu,\"llama \"\"7b\"\", v2\",int8,128,64,12.5,\"a,b\"\r\n";
  char *err = NULL;
  int rc = qsr_import_text("t.csv", text, &o, &im, &err);
  CU_ASSERT_EQUAL(rc, QSR_OK);
  if (!rc) {
    CU_ASSERT_STR(im.rows[0].model, "llama \"7b\", v2");
    CU_ASSERT_STR(im.rows[0].device, "my gpu");
    CU_ASSERT(im.rows[0].bits == 8 && im.rows[0].grp == 128 && im.rows[0].batch == 1);
    CU_ASSERT(has_note(&im, "device 'my gpu' is not in configs/devices"));
  }
  free(err);
  qsr_import_free(&im);
}

/* ---- weight types --------------------------------------------------------- */

static void test_quant_table(void) {
  const uint64_t cols = 1024;  /* a multiple of every block (256) and group (128) */
  for (int t = 0; t < QSR_GGML_COUNT; t++) {
    const struct qsr_ggml_traits *g = &qsr_ggml_tab[t];
    CU_ASSERT_PTR_NOT_NULL_FATAL(g->name);
    CU_ASSERT(cols % (uint64_t)g->blck == 0);
    if (g->wfmt < 0) continue;
    uint64_t ggml = cols / (uint64_t)g->blck * (uint64_t)g->block_bytes;
    uint64_t qsr = qsr_qweight_bytes(g->wfmt, g->bits, g->group, 1, cols);
    CU_ASSERT(qsr_qformat_valid(g->wfmt, g->bits, g->group));
    /* bytes per 256 weights, as docs/import.md states them */
    long d256 = (long)qsr * 256 / (long)cols - (long)ggml * 256 / (long)cols;
    long want = t == QSR_GGML_Q2_K ? -4 : t == QSR_GGML_Q3_K ? 2 : t == QSR_GGML_Q6_K ? -2 : 0;
    if (d256 != want) fprintf(stderr, "\n  %s: qsr - ggml = %ld B per 256, want %ld\n", g->name, d256, want);
    CU_ASSERT_EQUAL(d256, want);
    /* sub-byte types: the group is the one whose bytes are nearest */
    if (g->wfmt == QSR_WFMT_INT || g->wfmt == QSR_WFMT_INT_SYM) {
      static const int groups[] = { 32, 64, 128 };
      long best = -1;
      int bestg = 0;
      for (int k = 0; k < 3; k++) {
        long d = labs((long)qsr_qweight_bytes(g->wfmt, g->bits, groups[k], 1, cols) - (long)ggml);
        if (best < 0 || d < best) { best = d; bestg = groups[k]; }
      }
      CU_ASSERT_EQUAL(g->group, bestg);
    }
  }
  /* ggml's block sizes, from their structs and the names' bits per weight */
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q4_0].block_bytes, 2 + 16);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q4_1].block_bytes, 2 + 2 + 16);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q5_0].block_bytes, 2 + 4 + 16);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q5_1].block_bytes, 2 + 2 + 4 + 16);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q8_0].block_bytes, 2 + 32);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q2_K].block_bytes, 16 + 64 + 2 + 2);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q3_K].block_bytes, 32 + 64 + 12 + 2);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q4_K].block_bytes, 2 + 2 + 12 + 128);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q5_K].block_bytes, 2 + 2 + 12 + 32 + 128);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_Q6_K].block_bytes, 128 + 64 + 16 + 2);
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_IQ2_XXS].block_bytes * 8 * 10000 / 256, 20625);  /* 2.0625 bpw */
  CU_ASSERT_EQUAL(qsr_ggml_tab[QSR_GGML_IQ4_XS].block_bytes * 8 * 100 / 256, 425);       /* 4.25 bpw */
  /* exact legacy types: the same bytes for a LLaMA-7B q_proj, 4096 x 4096 */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_INT_SYM, 4, 32, 4096, 4096), 4096ull * 4096 / 32 * 18);
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_INT, 4, 64, 4096, 4096), 4096ull * 4096 / 256 * 144);
}

static void test_quant_parse(void) {
  struct qsr_quant q;
  char why[384];
  CU_ASSERT(!qsr_import_parse_quant("int4g128", &q, why, sizeof why) && q.wfmt == QSR_WFMT_INT && q.bits == 4 &&
            q.group == 128 && q.ggml < 0);
  CU_ASSERT(!qsr_import_parse_quant("int4", &q, why, sizeof why) && q.group == 128);
  CU_ASSERT(!qsr_import_parse_quant("int4 g64", &q, why, sizeof why) && q.group == 64);
  CU_ASSERT(!qsr_import_parse_quant("int4g0", &q, why, sizeof why) && q.group == 0);
  CU_ASSERT(!qsr_import_parse_quant("int_sym4g32", &q, why, sizeof why) && q.wfmt == QSR_WFMT_INT_SYM &&
            q.bits == 4 && q.group == 32);
  CU_ASSERT(!qsr_import_parse_quant("lut3g64", &q, why, sizeof why) && q.wfmt == QSR_WFMT_LUT && q.bits == 3);
  CU_ASSERT(!qsr_import_parse_quant("fp16", &q, why, sizeof why) && q.wfmt == QSR_WFMT_FP16 && q.bits == 16 &&
            q.group == 0);
  CU_ASSERT(!qsr_import_parse_quant("fp8", &q, why, sizeof why) && q.wfmt == QSR_WFMT_FP8 && q.bits == 8);
  CU_ASSERT(!qsr_import_parse_quant("bf16", &q, why, sizeof why) && q.wfmt == QSR_WFMT_BF16);
  CU_ASSERT(!qsr_import_parse_quant("Q4_K_M", &q, why, sizeof why) && q.ggml == QSR_GGML_Q4_K &&
            q.wfmt == QSR_WFMT_INT && q.group == 64 && !strcmp(q.name, "Q4_K_M"));
  CU_ASSERT(!qsr_import_parse_quant("q4_k_m", &q, why, sizeof why) && !strcmp(q.name, "Q4_K_M"));
  CU_ASSERT(!qsr_import_parse_quant("Q4_K - Medium", &q, why, sizeof why) && !strcmp(q.name, "Q4_K_M"));
  CU_ASSERT(!qsr_import_parse_quant("q4_K", &q, why, sizeof why) && q.ggml == QSR_GGML_Q4_K);  /* ggml_type_name */
  CU_ASSERT(!qsr_import_parse_quant("F16", &q, why, sizeof why) && q.wfmt == QSR_WFMT_FP16);
  CU_ASSERT(!qsr_import_parse_quant("Q8_0", &q, why, sizeof why) && q.wfmt == QSR_WFMT_INT_SYM && q.bits == 8);
  CU_ASSERT(!qsr_import_parse_quant("Q4_0_4_8", &q, why, sizeof why) && q.ggml == QSR_GGML_Q4_0);
  CU_ASSERT(qsr_import_parse_quant("IQ2_XXS", &q, why, sizeof why) == -1 && strstr(why, "IQ2_XXS"));
  CU_ASSERT(qsr_import_parse_quant("IQ3_M", &q, why, sizeof why) == -1 && strstr(why, "IQ3_S"));
  CU_ASSERT(qsr_import_parse_quant("F32", &q, why, sizeof why) == -1 && strstr(why, "fp32"));
  CU_ASSERT(qsr_import_parse_quant("int9g32", &q, why, sizeof why) == -1);
  CU_ASSERT(qsr_import_parse_quant("int4g48", &q, why, sizeof why) == -1);
  CU_ASSERT(qsr_import_parse_quant("int", &q, why, sizeof why) == -1 && strstr(why, "bits"));
  CU_ASSERT(qsr_import_parse_quant("fp16g128", &q, why, sizeof why) == -1);
  CU_ASSERT(qsr_import_parse_quant("awq", &q, why, sizeof why) == -1 && strstr(why, "neither"));

  size_t pre = 0;
  CU_ASSERT(!qsr_import_quant_from_desc("llama 7B Q4_K - Medium", &q, &pre, why, sizeof why) &&
            !strcmp(q.name, "Q4_K_M") && pre == 8);
  CU_ASSERT(!qsr_import_quant_from_desc("llama 7B mostly Q4_0", &q, &pre, why, sizeof why) &&
            !strcmp(q.name, "Q4_0") && pre == 8);
  CU_ASSERT(!qsr_import_quant_from_desc("llama 7B Q4_0 (guessed)", &q, &pre, why, sizeof why) &&
            !strcmp(q.name, "Q4_0") && pre == 8);
  CU_ASSERT(!qsr_import_quant_from_desc("llama 8x7B BF16", &q, &pre, why, sizeof why) &&
            !strcmp(q.name, "BF16") && pre == 10);
  CU_ASSERT(!qsr_import_quant_from_desc("qwen2 7B Q2_K - Small", &q, &pre, why, sizeof why) &&
            !strcmp(q.name, "Q2_K_S") && q.group == 64);
  CU_ASSERT(qsr_import_quant_from_desc("llama 7B all F32", &q, &pre, why, sizeof why) == -1);
  CU_ASSERT(qsr_import_quant_from_desc("llama 7B IQ3_S mix - 3.66 bpw", &q, &pre, why, sizeof why) == -1 &&
            strstr(why, "IQ3_M"));
  CU_ASSERT(qsr_import_quant_from_desc("llama 7B NVFP4", &q, &pre, why, sizeof why) == 1);
}

static void test_map_model(void) {
  struct qsr_import im;
  memset(&im, 0, sizeof im);
  double off = 1;
  const char *m = qsr_import_map_model(&im, "llama", 6738415616.0, &off);
  CU_ASSERT(m && !strcmp(m, "llama-7b") && fabs(off) < 1e-6);
  m = qsr_import_map_model(&im, "llama", 7241732096.0, &off);
  CU_ASSERT(m && !strcmp(m, "mistral-7b"));
  m = qsr_import_map_model(&im, "llama", 1100048384.0, &off);
  CU_ASSERT(m && !strcmp(m, "tinyllama-1.1b"));
  m = qsr_import_map_model(&im, "llama", 6738415616.0 * 1.019, &off);   /* within 2% */
  CU_ASSERT(m && !strcmp(m, "llama-7b"));
  CU_ASSERT_PTR_NULL(qsr_import_map_model(&im, "llama", 6738415616.0 * 1.021, &off));
  CU_ASSERT_PTR_NULL(qsr_import_map_model(&im, "llama", 8030261248.0, &off));   /* LLaMA-3-8B */
  CU_ASSERT_PTR_NULL(qsr_import_map_model(&im, "qwen2", 6738415616.0, &off));   /* other architecture */
  CU_ASSERT_PTR_NULL(qsr_import_map_model(&im, "gptneox", 6738415616.0, &off)); /* GELU: not llama-7b */
  m = qsr_import_map_model(&im, "gptneox", 20554567680.0, &off);
  CU_ASSERT(m && !strcmp(m, "gpt-neox-20b"));
  CU_ASSERT_PTR_NULL(qsr_import_map_model(&im, "llama", NAN, &off));
  qsr_import_free(&im);
}

/* ---- bad input ------------------------------------------------------------ */

/* Imports text; returns rc, the message in msg. */
static int bad(const char *origin, const char *text, int format, char *msg, size_t cap) {
  struct qsr_import im;
  struct qsr_import_opts o = { format, NULL, NULL, NULL };
  char *err = NULL;
  int rc = qsr_import_text(origin, text, &o, &im, &err);
  CU_ASSERT(rc == QSR_OK ? err == NULL : err != NULL);
  snprintf(msg, cap, "%s", err ? err : "");
  free(err);
  qsr_import_free(&im);
  return rc;
}

#define LB_HEAD "build_commit,model_type,model_n_params,n_prompt,n_gen,avg_ns,avg_ts\n"
#define LB_ROW  "\"abc\",\"llama 7B Q4_0\",\"6738415616\",\"512\",\"0\",\"106447083\",\"4809.91\"\n"
#define JL_ROW  "{\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": 0, \"n_gen\": 128, \"avg_ts\": 149.2}\n"

static void test_bad_input(void) {
  char msg[512];
  /* missing column, named, at the header line */
  CU_ASSERT_EQUAL(bad("a.csv", "build_commit,model_type,n_prompt,n_gen,avg_ns\n\"x\",\"llama 7B Q4_0\",\"1\",\"0\",\"5\"\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "a.csv:1: missing column 'avg_ts'"));
  /* non-numeric avg_ts on line 3, column 58 */
  CU_ASSERT_EQUAL(bad("a.csv", LB_HEAD LB_ROW "\"abc\",\"llama 7B Q4_0\",\"6738415616\",\"0\",\"128\",\"857417282\",\"fast\"\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "a.csv:3:58: avg_ts: expected a number, got 'fast'"));
  /* malformed JSON on line 2 of a JSONL file */
  CU_ASSERT_EQUAL(bad("b.jsonl", JL_ROW "{\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": 0 \"n_gen\": 1}\n" JL_ROW,
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "b.jsonl:2:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "malformed JSON"));
  /* trailing content after a JSONL object */
  CU_ASSERT_EQUAL(bad("b.jsonl", JL_ROW JL_ROW "{\"n_prompt\": 1} x\n", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "b.jsonl:3:"));
  /* a bad value in the second object of a JSON array: the value's own line and column */
  CU_ASSERT_EQUAL(bad("c.json", "[\n  {\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": 512, \"n_gen\": 0, \"avg_ts\": 9},\n"
                      "  {\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": 0,\n   \"n_gen\": 128, \"avg_ts\": \"x1\"}\n]\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "c.json:4:28: avg_ts: expected a number, got 'x1'"));
  /* a missing field in a JSON object: the object's position */
  CU_ASSERT_EQUAL(bad("c.json", "[\n  {\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": 512, \"avg_ts\": 9}\n]\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "c.json:2:3: missing field 'n_gen'"));
  /* a JSON array read as JSONL */
  CU_ASSERT_EQUAL(bad("c.json", "[\n" JL_ROW "]\n", QSR_IMPORT_LB_JSONL, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "--format llama-bench-json"));
  /* refused weight type */
  CU_ASSERT_EQUAL(bad("d.jsonl", "{\"model_type\": \"llama 7B IQ2_XXS - 2.0625 bpw\", \"n_prompt\": 0, \"n_gen\": 1, "
                      "\"avg_ts\": 3}\n", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "d.jsonl:1:16: model_type: IQ2_XXS"));
  /* no type in model_type nor the file name */
  CU_ASSERT_EQUAL(bad("d.jsonl", "{\"model_type\": \"llama 7B\", \"model_filename\": \"m.gguf\", \"n_prompt\": 0, "
                      "\"n_gen\": 1, \"avg_ts\": 3}\n", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no llama.cpp weight type"));
  /* ... but the file name is enough */
  CU_ASSERT_EQUAL(bad("d.jsonl", "{\"model_type\": \"llama 7B\", \"model_filename\": \"x/llama-2-7b.Q5_K_M.gguf\", "
                      "\"n_prompt\": 0, \"n_gen\": 1, \"avg_ts\": 3}\n", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_OK);
  /* zero and negative numbers */
  CU_ASSERT_EQUAL(bad("e.jsonl", "{\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": 0, \"n_gen\": 0, \"avg_ts\": 3}\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "both 0"));
  CU_ASSERT_EQUAL(bad("e.jsonl", "{\"model_type\": \"llama 7B Q4_0\", \"n_prompt\": -4, \"n_gen\": 1, \"avg_ts\": 3}\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "e.jsonl:1:45: n_prompt: expected a whole number"));
  /* plain CSV: missing column, field count, quotes, rates */
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,prompt,generation,gen_tok_s\nx,y,1,1,1\n", QSR_IMPORT_AUTO, msg, sizeof msg),
                  QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "p.csv:1: missing column 'quantisation'"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,quantisation,prompt,generation\nx,y,fp16,1,1\n", QSR_IMPORT_AUTO, msg,
                      sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "'prompt_tok_s' or 'gen_tok_s'"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,quantisation,prompt,generation,gen_tok_s\nx,y,fp16,1,1,2\n\nx,y,fp16,1\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "p.csv:4: 4 fields, the header (line 1) has 6"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,quantisation,prompt,generation,gen_tok_s\nx,\"y,fp16,1,1,2\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "p.csv:2:3: unterminated quoted field"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,quantisation,prompt,generation,gen_tok_s\nx,\"y\"z,fp16,1,1,2\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "p.csv:2:6: 'z' after the closing quote"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,quantisation,prompt,generation,gen_tok_s,prompt_tok_s\nx,y,fp16,1,1,,\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "p.csv:2:1: neither prompt_tok_s nor gen_tok_s"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,quantisation,prompt,generation,gen_tok_s\nx,y,int4g33,1,1,2\n",
                      QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "p.csv:2:5: quantisation: 'int4g33'"));
  CU_ASSERT_EQUAL(bad("p.csv", "device,model,model,quantisation\n", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "column 'model' appears twice"));
  /* empty, header only, other llama-bench outputs */
  CU_ASSERT_EQUAL(bad("f.csv", "", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "empty file"));
  CU_ASSERT_EQUAL(bad("f.csv", LB_HEAD, QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no measurements"));
  CU_ASSERT_EQUAL(bad("f.md", "| model | size |\n", QSR_IMPORT_AUTO, msg, sizeof msg), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "-o md"));
  /* a file that is not there */
  struct qsr_import im;
  struct qsr_import_opts o = opts(NULL);
  char *err = NULL;
  CU_ASSERT_EQUAL(qsr_import_file(DATA "no-such-file.csv", &o, &im, &err), QSR_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(err);
  free(err);
  qsr_import_free(&im);
  /* unknown columns are ignored, a BOM is skipped */
  CU_ASSERT_EQUAL(bad("g.csv", "\xEF\xBB\xBF" LB_HEAD LB_ROW, QSR_IMPORT_AUTO, msg, sizeof msg), QSR_OK);
}

/* ---- database ------------------------------------------------------------- */

static long long db_ll(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  long long v = -1;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
      v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  sqlite3_close(h);
  return v;
}

static double db_real(const char *db, const char *sql) {
  sqlite3 *h = NULL;
  double v = NAN;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW &&
        sqlite3_column_type(q, 0) != SQLITE_NULL)
      v = sqlite3_column_double(q, 0);
    sqlite3_finalize(q);
  }
  sqlite3_close(h);
  return v;
}

static void rm_db(const char *path) {
  char p[600];
  remove(path);
  snprintf(p, sizeof p, "%s-wal", path);
  remove(p);
  snprintf(p, sizeof p, "%s-shm", path);
  remove(p);
}

static const char *const files[] = {
  DATA "llama-bench-7b-q4_0.csv", DATA "llama-bench-mistral-q4_k_m.json", DATA "llama-bench-tinyllama-f16.jsonl",
  DATA "plain.csv",
};

static void test_db_library(void) {
  char path[512];
  snprintf(path, sizeof path, "%s", tst_write_tmp("import.db", ""));
  rm_db(path);
  qsr_store *st = NULL;
  char *err = NULL;
  int rc = qsr_store_open(path, 0, &st, &err);
  sqlite3 *db = st ? qsr_store_db(st) : NULL;
  if (!rc) rc = qsr_measure_schema(db, path, &err);
  if (!rc) rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? QSR_OK : QSR_ERR_DB;
  struct qsr_import_opts o = opts("a100-80g");
  for (size_t f = 0; !rc && f < sizeof files / sizeof *files; f++) {
    struct qsr_import im;
    rc = qsr_import_file(files[f], &o, &im, &err);
    for (size_t i = 0; !rc && i < im.n; i++) rc = qsr_measure_put(db, path, &im.rows[i], &err);
    qsr_import_free(&im);
  }
  if (!rc) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? QSR_OK : QSR_ERR_DB;
  if (rc) fprintf(stderr, "\n  %s\n", err ? err : "?");
  free(err);
  qsr_store_close(st);
  CU_ASSERT_EQUAL_FATAL(rc, QSR_OK);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements"), 13);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements WHERE kernel = 'e2e' AND op_class = 'e2e' "
                              "AND backend = 'external' AND device = 'a100-80g'"), 13);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements WHERE source = 'llama-bench'"), 9);
  CU_ASSERT(rel_eq(db_real(path, "SELECT prompt_tok_s FROM measurements WHERE model = 'llama-7b' AND quant = 'Q4_0' "
                                 "AND gen = 0"), 4809.910274, NUM_TOL));
  CU_ASSERT(rel_eq(db_real(path, "SELECT median_us FROM measurements WHERE model = 'mistral-7b' AND source = "
                                 "'llama-bench' AND prompt = 0"), 969332.339, NUM_TOL));
  CU_ASSERT_EQUAL(db_ll(path, "SELECT grp FROM measurements WHERE quant = 'Q4_K_M' AND source = 'llama-bench' LIMIT 1"),
                  64);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements WHERE prompt_tok_s IS NULL AND gen_tok_s IS NULL"), 1);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements WHERE device_desc LIKE '%3090, NVIDIA%'"), 3);
  rm_db(path);
}

/* Runs ./qsr import with args (stdout and stderr to /dev/null); its exit status. */
static int run_import(const char *const *args) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
    execv("./qsr", (char *const *)args);
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_db_cli(void) {
  const char *help[] = { "./qsr", "import", "--help", NULL };
  if (access("./qsr", X_OK) || run_import(help) != 0) {
    fprintf(stderr, "\n  skipped: ./qsr with `import` not built (make qsr)\n");
    return;
  }
  char path[512], badf[512];
  snprintf(path, sizeof path, "%s", tst_write_tmp("import-cli.db", ""));
  rm_db(path);
  const char *a1[] = { "./qsr", "import", files[0], files[1], files[2], files[3], "-o", path, "--device", "l4", NULL };
  CU_ASSERT_EQUAL(run_import(a1), 0);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements"), 13);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements WHERE device = 'l4' AND split = 'holdout'"), 13);
  /* the same files again: every row is already there */
  CU_ASSERT_EQUAL(run_import(a1), 0);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements"), 13);
  /* another device is another measurement */
  const char *a2[] = { "./qsr", "import", files[0], "-o", path, "--device", "a100-80g", "--split", "fit", NULL };
  CU_ASSERT_EQUAL(run_import(a2), 0);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements WHERE device = 'a100-80g' AND split = 'fit'"), 3);
  /* a good file and a bad one: nothing of either is written */
  snprintf(badf, sizeof badf, "%s", tst_write_tmp("bad.jsonl", JL_ROW "{\"model_type\": \"llama 7B Q4_0\"\n"));
  const char *a3[] = { "./qsr", "import", files[0], badf, "-o", path, "--device", "h100-sxm", NULL };
  CU_ASSERT_EQUAL(run_import(a3), 1);
  CU_ASSERT_EQUAL(db_ll(path, "SELECT count(*) FROM measurements"), 16);
  /* usage errors */
  const char *a4[] = { "./qsr", "import", files[0], NULL };
  CU_ASSERT_EQUAL(run_import(a4), 2);
  const char *a5[] = { "./qsr", "import", files[0], "-o", path, "--split", "train", NULL };
  CU_ASSERT_EQUAL(run_import(a5), 2);
  remove(badf);
  rm_db(path);
}

void tst_register_import(void) {
  CU_pSuite s = CU_add_suite("import", NULL, NULL);
  CU_add_test(s, "llama-bench csv (mid-2025 fields)", test_lb_csv);
  CU_add_test(s, "llama-bench json (early-2024 fields, samples)", test_lb_json);
  CU_add_test(s, "llama-bench jsonl (late-2025 fields, n_depth)", test_lb_jsonl);
  CU_add_test(s, "plain csv and the RFC 4180 reader", test_plain_csv);
  CU_add_test(s, "ggml types vs qsr_qweight_bytes", test_quant_table);
  CU_add_test(s, "quantisation spellings", test_quant_parse);
  CU_add_test(s, "model mapping by architecture and params", test_map_model);
  CU_add_test(s, "bad input: file, line, column, field", test_bad_input);
  CU_add_test(s, "database round trip (library)", test_db_library);
  CU_add_test(s, "qsr import binary: duplicates, nothing half-written", test_db_cli);
}
