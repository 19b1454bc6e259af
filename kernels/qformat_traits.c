/*
** qformat_traits.c -- names and dequantisation work of each packed format.
** The op counts are per weight element: unpack (shift+mask) 1, apply scale
** (and min) 1; log adds sign and exp2 (2); lut adds a shared-memory lookup (1).
*/
#include "kernels/qformat_traits.h"

#include <stdio.h>
#include <string.h>

const struct qsr_wfmt_traits qsr_wfmt_tab[QSR_WFMT_COUNT] = {
  [QSR_WFMT_FP16]    = { .name = "fp16",    .dequant_ops = 0 },
  [QSR_WFMT_BF16]    = { .name = "bf16",    .dequant_ops = 0 },
  [QSR_WFMT_FP8]     = { .name = "fp8",     .dequant_ops = 1 },
  [QSR_WFMT_INT]     = { .name = "int",     .dequant_ops = 2 },
  [QSR_WFMT_INT_SYM] = { .name = "int_sym", .dequant_ops = 2 },
  [QSR_WFMT_LOG]     = { .name = "log",     .dequant_ops = 4 },
  [QSR_WFMT_LUT]     = { .name = "lut",     .dequant_ops = 3 },
};
QSR_STATIC_ASSERT(QSR_WFMT_COUNT == 7, update_wfmt_tab);

const char *const qsr_kvfmt_names[QSR_KVFMT_COUNT] = {
  [QSR_KVFMT_FP16] = "fp16",
  [QSR_KVFMT_INT8] = "int8",
  [QSR_KVFMT_INT4] = "int4",
};

int qsr_wfmt_from_name(const char *name) {
  for (int i = 0; i < QSR_WFMT_COUNT; i++)
    if (!strcmp(qsr_wfmt_tab[i].name, name)) return i;
  return -1;
}

int qsr_kvfmt_from_name(const char *name) {
  for (int i = 0; i < QSR_KVFMT_COUNT; i++)
    if (!strcmp(qsr_kvfmt_names[i], name)) return i;
  return -1;
}

const char *qsr_wfmt_bits_name(int wfmt, int bits, char *buf, size_t cap) {
  if (wfmt == QSR_WFMT_FP16 || wfmt == QSR_WFMT_BF16 || wfmt == QSR_WFMT_FP8) snprintf(buf, cap, "%s", qsr_wfmt_tab[wfmt].name);
  else snprintf(buf, cap, "%s%d", qsr_wfmt_tab[wfmt].name, bits);
  return buf;
}
