/*
** qformat_traits.h -- per-format facts in one enum-indexed table (host side).
**   name:        the spelling in YAML, SQLite and deploy files
**   dequant_ops: vector ALU operations per weight to turn a code into an
**                fp16 operand (unpack + scale, + table or exp2); 0 = native
*/
#ifndef QSR_QFORMAT_TRAITS_H
#define QSR_QFORMAT_TRAITS_H

#include "kernels/qformat.h"

struct qsr_wfmt_traits {
  const char *name;
  double dequant_ops;
};

extern const struct qsr_wfmt_traits qsr_wfmt_tab[QSR_WFMT_COUNT];
extern const char *const qsr_kvfmt_names[QSR_KVFMT_COUNT];

int qsr_wfmt_from_name(const char *name);  /* -1 if unknown */
int qsr_kvfmt_from_name(const char *name); /* -1 if unknown */

#endif
