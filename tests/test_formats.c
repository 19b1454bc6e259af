/*
** test_formats.c -- packed format sizes from kernels/qformat.h, by hand.
*/
#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"
#include "tests/test.h"

static void test_block_bytes(void) {
  for (int b = 2; b <= 8; b++) {
    if (b == 7) { CU_ASSERT_EQUAL(qsr_qblock_bytes(b), 0); continue; }
    CU_ASSERT_EQUAL(qsr_qblock_bytes(b), 4u * b);  /* 32 codes x b bits / 8 */
  }
  CU_ASSERT_EQUAL(qsr_qblock_bytes(16), 0);
}

static void test_weight_bytes(void) {
  /* 4096 x 4096 int4 g128: 4096 rows x 128 blocks x 16 B + 4096 x 32 groups x 4 B */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_INT, 4, 128, 4096, 4096), 8388608u + 524288u);
  /* symmetric: 2 B per group */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_INT_SYM, 4, 128, 4096, 4096), 8388608u + 262144u);
  /* per channel (group 0): one group per row */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_INT, 3, 0, 10, 64), 10u * 2 * 12 + 10u * 4);
  /* lut 3-bit g64: codebook 8 x fp16 = 16 B per group */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_LUT, 3, 64, 2, 128), 2u * 4 * 12 + 2u * 2 * 16);
  /* fp16 and fp8 */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_FP16, 16, 0, 3, 5), 30u);
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_FP8, 8, 0, 3, 5), 15u + 12u);
  /* columns pad to a block: 40 columns -> 2 blocks of 2-bit */
  CU_ASSERT_EQUAL(qsr_qweight_bytes(QSR_WFMT_INT_SYM, 2, 0, 1, 40), 16u + 2u);
}

static void test_valid(void) {
  CU_ASSERT_TRUE(qsr_qformat_valid(QSR_WFMT_LOG, 3, 128));
  CU_ASSERT_FALSE(qsr_qformat_valid(QSR_WFMT_FP8, 4, 0));
  CU_ASSERT_FALSE(qsr_qformat_valid(QSR_WFMT_INT, 7, 128));
  CU_ASSERT_FALSE(qsr_qformat_valid(QSR_WFMT_INT, 4, 48));
  CU_ASSERT_FALSE(qsr_qformat_valid(QSR_WFMT_FP16, 8, 0));
}

static void test_kv_bytes(void) {
  CU_ASSERT_EQUAL(qsr_kv_vec_bytes(QSR_KVFMT_FP16, 128), 256u);
  CU_ASSERT_EQUAL(qsr_kv_vec_bytes(QSR_KVFMT_INT8, 128), 130u);
  CU_ASSERT_EQUAL(qsr_kv_vec_bytes(QSR_KVFMT_INT4, 128), 64u + 16u);
}

static void test_names(void) {
  for (int f = 0; f < QSR_WFMT_COUNT; f++) CU_ASSERT_EQUAL(qsr_wfmt_from_name(qsr_wfmt_tab[f].name), f);
  CU_ASSERT_EQUAL(qsr_wfmt_from_name("int3"), -1);
  CU_ASSERT_EQUAL(qsr_kvfmt_from_name("int4"), QSR_KVFMT_INT4);
}

void tst_register_formats(void) {
  CU_pSuite s = CU_add_suite("formats", NULL, NULL);
  CU_add_test(s, "block bytes per bit width", test_block_bytes);
  CU_add_test(s, "weight matrix bytes", test_weight_bytes);
  CU_add_test(s, "valid formats", test_valid);
  CU_add_test(s, "kv vector bytes", test_kv_bytes);
  CU_add_test(s, "format names", test_names);
}
