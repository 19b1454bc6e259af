/*
** variants.c -- names of the kernel variants and the selection rule.
*/
#include "kernels/variants.h"

#include "kernels/qformat.h"

#include <string.h>

static const struct { const char *name, *what; } tab[QSR_KVAR_COUNT] = {
#define QSR_KV(ID, NAME, WHAT) [QSR_KVAR_##ID] = { NAME, WHAT },
#include "kernels/variants.def"
#undef QSR_KV
};

const char *qsr_kvariant_name(int v) { return v >= 0 && v < QSR_KVAR_COUNT ? tab[v].name : "?"; }
const char *qsr_kvariant_what(int v) { return v >= 0 && v < QSR_KVAR_COUNT ? tab[v].what : "?"; }

int qsr_kvariant_find(const char *name) {
  for (int i = 0; i < QSR_KVAR_COUNT; i++)
    if (!strcmp(tab[i].name, name)) return i;
  return -1;
}

/* the GEMV and GEMM rows follow enum qsr_wfmt's order */
QSR_STATIC_ASSERT(QSR_KVAR_GEMV_LUT - QSR_KVAR_GEMV_FP16 == QSR_WFMT_LUT, gemv_rows_follow_wfmt);
QSR_STATIC_ASSERT(QSR_KVAR_GEMM_LUT - QSR_KVAR_GEMM_FP16 == QSR_WFMT_LUT, gemm_rows_follow_wfmt);

int qsr_kvariant_linear(int wfmt, int tokens) {
  int base = tokens <= 16 ? QSR_KVAR_GEMV_FP16 : QSR_KVAR_GEMM_FP16;
  return base + wfmt;
}

int qsr_kvariant_attention(int head_type, int paged, int decode) {
  int base = decode ? QSR_KVAR_ATTN_DECODE_DENSE : QSR_KVAR_ATTN_PREFILL_DENSE;
  switch (head_type) {
  case 1: return base + (paged ? 3 : 2);
  case 2: return base + 1;
  default: return base;
  }
}
