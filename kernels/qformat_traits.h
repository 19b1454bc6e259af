/*
** qformat_traits.h -- per-format facts in one enum-indexed table (host side).
**   name:        the spelling in YAML, SQLite and deploy files
**   dequant_ops: vector ALU operations per weight to turn a code into an
**                fp16 operand (unpack + scale, + table or exp2); 0 = native
*/
#ifndef QSR_QFORMAT_TRAITS_H
#define QSR_QFORMAT_TRAITS_H

#include <stddef.h>

#include "kernels/qformat.h"

struct qsr_wfmt_traits {
  const char *name;
  double dequant_ops;
};

extern const struct qsr_wfmt_traits qsr_wfmt_tab[QSR_WFMT_COUNT];
extern const char *const qsr_kvfmt_names[QSR_KVFMT_COUNT];

int qsr_wfmt_from_name(const char *name);  /* -1 if unknown */
int qsr_kvfmt_from_name(const char *name); /* -1 if unknown */
/* "int4", "lut3", "int_sym8"; the float formats by name alone ("fp16"):
** the spelling of decode_ops keys. Returns buf. */
const char *qsr_wfmt_bits_name(int wfmt, int bits, char *buf, size_t cap);

#endif
