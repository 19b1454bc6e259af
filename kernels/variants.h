/*
** variants.h -- kernel variant names (rows in variants.def) and the rule
** that picks the variant for an op.
*/
#ifndef QSR_VARIANTS_H
#define QSR_VARIANTS_H

enum qsr_kvariant {
#define QSR_KV(ID, NAME, WHAT) QSR_KVAR_##ID,
#include "kernels/variants.def"
#undef QSR_KV
  QSR_KVAR_COUNT
};

const char *qsr_kvariant_name(int v);
const char *qsr_kvariant_what(int v);
int qsr_kvariant_find(const char *name);     /* -1 if unknown */

/* Linear layer variant for a weight format; decode uses GEMV up to 16 rows. */
int qsr_kvariant_linear(int wfmt, int tokens);
/* Attention variant: head type 0 dense, 1 top-k, 2 local; paged selection. */
int qsr_kvariant_attention(int head_type, int paged, int decode);

#endif
