/*
** test_cost.c -- the cost model against numbers derivable by hand.
*/
#include "tests/test.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double decode_bytes(const struct qsr_result *r, int kind) {
  for (int i = 0; i < r->n_ops; i++)
    if (r->ops[i].kind == kind && r->ops[i].phase == QSR_PHASE_DECODE) return r->ops[i].gbytes * 1e9;
  return 0;
}

/* LLaMA-7B: 32 x (4 x 4096^2 + 3 x 4096 x 11008) + 2 x 32000 x 4096 + norms
** = 6,738,415,616 parameters; FP16 = 13.477 GB. */
static void test_llama_params_and_bytes(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result r;
  tst_model("llama-7b", &m);
  tst_device("a100-80g", &dev);
  CU_ASSERT_DOUBLE_EQUAL(qsr_model_params(&m, NULL), 6738415616.0, 1);
  tst_design(&m, NULL, &d, NULL);
  tst_eval(&dev, &m, &d, &r);
  CU_ASSERT_DOUBLE_EQUAL(r.mem_weights_mb / 1e3, 13.48, 13.48 * REL_TOL);
  CU_ASSERT_DOUBLE_EQUAL(r.avg_weight_bits, 16, 1e-9);
  CU_ASSERT_EQUAL(r.quality_loss, 0);
  /* KV: 2 x 32 layers x 4096 x 2 B x 640 tokens = 335.5 MB */
  CU_ASSERT_DOUBLE_EQUAL(r.mem_kv_mb, 2.0 * 32 * 4096 * 2 * 640 / 1e6, 0.01);
}

static void test_mixtral_params(void) {
  struct qsr_model m;
  tst_model("mixtral-8x7b", &m);
  double active, total = qsr_model_params(&m, &active);
  CU_ASSERT_DOUBLE_EQUAL(total / 1e9, 46.7, 46.7 * REL_TOL);
  CU_ASSERT_DOUBLE_EQUAL(active / 1e9, 12.9, 12.9 * REL_TOL);
}

/* Batch-1 decode must read every weight once: it cannot beat bytes / bandwidth. */
static void test_decode_floor(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result r;
  tst_model("llama-7b", &m);
  tst_device("a100-80g", &dev);
  tst_design(&m, NULL, &d, NULL);
  tst_eval(&dev, &m, &d, &r);
  double floor_ms = r.mem_weights_mb * 1e6 / (dev.bw_gbps * 1e9) * 1e3;
  CU_ASSERT(r.tpot_ms >= 1.0 * floor_ms);
  CU_ASSERT(r.tpot_ms <= 1.6 * floor_ms);
  /* and on every bundled device the floor holds */
  const char *devs[] = { "h100-sxm", "h200", "l4", "rtx4090", "orin-agx-64g", "rpi5" };
  for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
    tst_device(devs[i], &dev);
    tst_design(&m, NULL, &d, "quant.weights.bits=4", NULL);
    tst_eval(&dev, &m, &d, &r);
    CU_ASSERT(r.tpot_ms >= r.mem_weights_mb * 1e6 / (dev.bw_gbps * 1e9) * 1e3);
  }
}

static void test_int4(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d16, d4;
  struct qsr_result r16, r4;
  tst_model("llama-7b", &m);
  tst_device("a100-80g", &dev);
  tst_design(&m, NULL, &d16, NULL);
  tst_design(&m, NULL, &d4, "quant.weights.bits=4", "quant.weights.group=128", NULL);
  tst_eval(&dev, &m, &d16, &r16);
  tst_eval(&dev, &m, &d4, &r4);
  CU_ASSERT(r4.mem_weights_mb >= 3400 && r4.mem_weights_mb <= 4200);
  CU_ASSERT(r16.tpot_ms >= 2.5 * r4.tpot_ms);
  CU_ASSERT(r4.quality_loss > 0);
  struct qsr_design d3;
  struct qsr_result r3;
  tst_design(&m, NULL, &d3, "quant.weights.bits=3", NULL);
  tst_eval(&dev, &m, &d3, &r3);
  CU_ASSERT(r3.quality_loss > r4.quality_loss);
  CU_ASSERT(r3.mem_weights_mb < r4.mem_weights_mb);
}

/* Mixtral: batch 1 reads ~2 of 8 experts per layer; batch 64 reads ~all. */
static void test_moe_batch(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result r1, r64;
  tst_model("mixtral-8x7b", &m);
  tst_device("h200", &dev);
  tst_design(&m, NULL, &d, NULL);
  tst_eval(&dev, &m, &d, &r1);
  tst_design(&m, NULL, &d, "runtime.batch=64", NULL);
  tst_eval(&dev, &m, &d, &r64);
  double expert_bytes_all = 32.0 * 8 * 3 * 4096 * 14336 * 2;  /* 45.1 GB */
  CU_ASSERT_DOUBLE_EQUAL(r1.experts_touched, 2.0, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(decode_bytes(&r1, QSR_OP_EXPERTS) / expert_bytes_all, 0.25, 0.01);
  CU_ASSERT(r64.experts_touched > 7.99);
  CU_ASSERT_DOUBLE_EQUAL(decode_bytes(&r64, QSR_OP_EXPERTS) / expert_bytes_all, 1.0, 0.02);
  /* weights read per batch-1 decode ~ active parameters in fp16 */
  double total = 0;
  for (int i = 0; i < r1.n_ops; i++)
    if (r1.ops[i].phase == QSR_PHASE_DECODE && r1.ops[i].kind != QSR_OP_ATTN) total += r1.ops[i].gbytes;
  CU_ASSERT_DOUBLE_EQUAL(total, 2 * r1.active_params_b, 2 * r1.active_params_b * 0.03);
}

static void test_moe_math(void) {
  double pk[9] = { 0, 0, 1, 0, 0, 0, 0, 0, 0 };
  CU_ASSERT_DOUBLE_EQUAL(qsr_moe_distinct_experts(8, NULL, 0, pk, 2, 1), 2.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(qsr_moe_distinct_experts(8, NULL, 0, pk, 2, 2), 8 * (1 - 0.75 * 0.75), 1e-12);
  /* skewed popularity touches fewer distinct experts */
  double pop[8] = { 0.3, 0.3, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05 };
  CU_ASSERT(qsr_moe_distinct_experts(8, pop, 8, pk, 2, 4) < qsr_moe_distinct_experts(8, NULL, 0, pk, 2, 4));
  CU_ASSERT_EQUAL(qsr_moe_dropped_frac(8, NULL, 0, pk, 2, 64, 0), 0);
  double d1 = qsr_moe_dropped_frac(8, NULL, 0, pk, 2, 64, 1.0), d2 = qsr_moe_dropped_frac(8, NULL, 0, pk, 2, 64, 2.0);
  CU_ASSERT(d1 > 0.01 && d1 < 0.3);
  CU_ASSERT(d2 < d1);
  /* one token never overflows a capacity of at least one slot */
  CU_ASSERT_DOUBLE_EQUAL(qsr_moe_dropped_frac(8, NULL, 0, pk, 2, 1, 1.0), 0, 1e-12);
  /* dynamic k: complexity uniform (Beta(1,1)) over 1..4 gives mean 2.5 */
  struct qsr_design d;
  memset(&d, 0, sizeof d);
  d.dynamic = 1;
  d.k_min = 1;
  d.k_max = 4;
  d.cx_alpha = d.cx_beta = 1;
  double p[9];
  CU_ASSERT_DOUBLE_EQUAL(qsr_route_kdist(&d, 2, p, 8), 2.5, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(p[1] + p[2] + p[3] + p[4], 1, 1e-12);
}

/* All heads local: the KV cache no longer grows with the context. */
static void test_local_kv(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result a, b;
  tst_model("llama-7b", &m);
  tst_device("a100-80g", &dev);
  tst_design(&m, NULL, &d, "attention.local=1", "attention.window=64", "runtime.prompt=1024", NULL);
  tst_eval(&dev, &m, &d, &a);
  tst_design(&m, NULL, &d, "attention.local=1", "attention.window=64", "runtime.prompt=4096", NULL);
  tst_eval(&dev, &m, &d, &b);
  CU_ASSERT_DOUBLE_EQUAL(a.mem_kv_mb, b.mem_kv_mb, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(a.mem_kv_mb, 2.0 * 32 * 4096 * 2 * 64 / 1e6, 1e-6);
  CU_ASSERT(a.notes & QSR_NOTE_WINDOW_CACHE);
  /* dense attention: decode slows as the context grows; local stays flat */
  struct qsr_result c, e;
  tst_design(&m, NULL, &d, "runtime.prompt=1024", NULL);
  tst_eval(&dev, &m, &d, &c);
  tst_design(&m, NULL, &d, "runtime.prompt=4096", NULL);
  tst_eval(&dev, &m, &d, &e);
  CU_ASSERT(e.tpot_ms > c.tpot_ms * 1.05);
  CU_ASSERT_DOUBLE_EQUAL(a.tpot_ms, b.tpot_ms, a.tpot_ms * 0.01);
  /* GQA (mistral, 8 KV heads): KV is a quarter of the MHA size per layer */
  tst_model("mistral-7b", &m);
  tst_design(&m, NULL, &d, "runtime.prompt=1000", "runtime.gen=24", NULL);
  tst_eval(&dev, &m, &d, &a);
  CU_ASSERT_DOUBLE_EQUAL(a.mem_kv_mb, 2.0 * 32 * 8 * 128 * 2 * 1024 / 1e6, 1e-6);
}

static void test_fits_and_offload(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result r;
  tst_model("llama-7b", &m);
  tst_device("orin-nx-16g", &dev);
  tst_design(&m, NULL, &d, NULL);
  tst_eval(&dev, &m, &d, &r);
  CU_ASSERT_FALSE(r.fits);
  tst_design(&m, NULL, &d, "quant.weights.bits=4", NULL);
  tst_eval(&dev, &m, &d, &r);
  CU_ASSERT_TRUE(r.fits);
  CU_ASSERT_TRUE(r.feasible);
  /* FP16 on the 8 GB Nano: streams the rest from NVMe, at least overflow / tier bw per token */
  tst_device("orin-nano-8g", &dev);
  tst_design(&m, NULL, &d, NULL);
  tst_eval(&dev, &m, &d, &r);
  CU_ASSERT_TRUE(r.feasible);
  CU_ASSERT_FALSE(r.fits);
  CU_ASSERT(r.offload_tier >= 0);
  CU_ASSERT(r.tpot_ms >= r.offload_mb * 1e6 / (dev.offload[r.offload_tier].bw_gbps * 1e9) * 1e3 * 0.99);
  /* with no lower tier it is infeasible, with a reason */
  memset(dev.offload, 0, sizeof dev.offload);
  tst_eval(&dev, &m, &d, &r);
  CU_ASSERT_FALSE(r.feasible);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.why, "no offload tier"));
}

static void test_power_mode_and_dit(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result a, b;
  tst_model("llama-7b", &m);
  tst_device("orin-nx-16g", &dev);
  tst_design(&m, NULL, &d, "quant.weights.bits=4", NULL);
  tst_eval(&dev, &m, &d, &a);
  tst_design(&m, NULL, &d, "quant.weights.bits=4", "runtime.power_mode=15w", NULL);
  tst_eval(&dev, &m, &d, &b);
  CU_ASSERT(b.prefill_ms > a.prefill_ms * 1.5);  /* compute-bound prefill follows the GPU clock */
  char *err = NULL;
  tst_design(&m, NULL, &d, "runtime.power_mode=turbo", NULL);
  CU_ASSERT_EQUAL(qsr_eval(&dev, &m, &d, NULL, &a, &err), QSR_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "turbo"));
  free(err);
  /* DiT: steps multiply one step */
  tst_model("dit-xl-2", &m);
  tst_device("a100-80g", &dev);
  tst_design(&m, NULL, &d, "runtime.steps=10", NULL);
  tst_eval(&dev, &m, &d, &a);
  CU_ASSERT_DOUBLE_EQUAL(a.e2e_ms, 10 * a.prefill_ms, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(a.params_b, 0.675, 0.675 * REL_TOL);
  /* a step needs at least its flops at peak: ~2 x 675M x 256 tokens ~ 0.35 TFLOP... */
  CU_ASSERT(a.prefill_ms >= 2 * 0.675e9 * 256 / (dev.peak_tflops[QSR_PEAK_FP16_TENSOR] * 1e12) * 1e3);
}

static void test_ablation_order(void) {
  struct qsr_model m;
  struct qsr_device dev;
  struct qsr_design d;
  struct qsr_result base, q, qsr;
  tst_model("llama-7b", &m);
  tst_device("a100-80g", &dev);
  tst_design(&m, "ablation-baseline", &d, NULL);
  tst_eval(&dev, &m, &d, &base);
  tst_design(&m, "ablation-q", &d, NULL);
  tst_eval(&dev, &m, &d, &q);
  tst_design(&m, "ablation-qsr", &d, NULL);
  tst_eval(&dev, &m, &d, &qsr);
  CU_ASSERT(q.tpot_ms < base.tpot_ms && qsr.tpot_ms < q.tpot_ms);
  CU_ASSERT(q.mem_peak_mb < base.mem_peak_mb);
  CU_ASSERT(q.avg_weight_bits > 3 && q.avg_weight_bits < 4.5);
  CU_ASSERT(qsr.experts_per_token > 1 && qsr.experts_per_token < 4);
}

void tst_register_cost(void) {
  CU_pSuite s = CU_add_suite("cost", NULL, NULL);
  CU_add_test(s, "llama-7b parameters and fp16 bytes", test_llama_params_and_bytes);
  CU_add_test(s, "mixtral total and active parameters", test_mixtral_params);
  CU_add_test(s, "batch-1 decode vs weight-bytes floor", test_decode_floor);
  CU_add_test(s, "int4 g128 size and speed", test_int4);
  CU_add_test(s, "mixtral batch 1 vs batch 64", test_moe_batch);
  CU_add_test(s, "distinct experts, drops, dynamic k", test_moe_math);
  CU_add_test(s, "local heads bound the KV cache", test_local_kv);
  CU_add_test(s, "fits, offload, infeasible", test_fits_and_offload);
  CU_add_test(s, "power modes and DiT steps", test_power_mode_and_dit);
  CU_add_test(s, "seed ablation designs order", test_ablation_order);
}
