/*
** cpu_int.h -- helpers shared by the C kernels (not part of the public API).
*/
#ifndef QSR_CPU_INT_H
#define QSR_CPU_INT_H

#include "kernels/qmatrix.h"

#include <stdint.h>

/* The 32 codes of one packed block, one byte each. */
void qsr_cpu_unpack_block(const uint8_t *blk, int bits, uint8_t *codes);
/* Row r of w to fp32 (cols values), fast path of qsr_dequantize_row. */
void qsr_cpu_dequant_row(const qsr_qmatrix *w, uint32_t r, float *out);

#endif
