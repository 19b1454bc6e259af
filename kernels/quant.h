/*
** quant.h -- host-side quantisers, dequantisers and buffers for the formats
** of qformat.h / qmatrix.h. Used by tests, benchmarks and the runner to make
** weights for either backend (the CUDA side uploads what these produce).
**
** Quantisers (per group of group_codes weights of a row):
**   int      min = group min, scale = (max - min) / (2^b - 1), both rounded to
**            fp16 first; code = clamp(round((w - min) / scale), 0, 2^b - 1)
**   int_sym  scale = absmax / (2^(b-1) - 1); code = round(w / scale) + 2^(b-1),
**            clamped to [1, 2^b - 1] (the grid is symmetric; code 0 is unused)
**   log      scale = absmax; code = sign | m with 2^-m the level nearest
**            to |w| / scale in value (or the zero code when that is nearer)
**   lut      codebook = 1-D k-means (Lloyd, up to 32 iterations, started
**            from the uniform grid over [min, max], so never worse than int)
**            of the group's values; code = nearest entry
**   fp8      row scale = absmax / 448; code = e4m3(w / scale)
**   fp16/bf16 round to nearest even
*/
#ifndef QSR_QUANT_H
#define QSR_QUANT_H

#include "kernels/qmatrix.h"

#include <stdint.h>

/* Allocates m's host buffers, zeroed. QSR_ERR_CONFIG for a format qformat.h
** does not define, QSR_ERR_NOMEM; *err set (caller frees). */
int qsr_qmatrix_alloc(qsr_qmatrix *m, int fmt, int bits, int group, uint32_t rows,
                      uint32_t cols, char **err);
void qsr_qmatrix_free(qsr_qmatrix *m);       /* NULL-safe; host buffers only */

/* Quantises w (rows x cols, row-major fp32) into an allocated m. */
void qsr_quantize(qsr_qmatrix *m, const float *w);

/* Dequantises row r of m into out[cols]. */
void qsr_dequantize_row(const qsr_qmatrix *m, uint32_t r, float *out);

/* Relative RMS error sqrt(sum (deq - w)^2 / sum w^2) of m against the fp32
** weights w it was quantised from. */
double qsr_quant_error(const qsr_qmatrix *m, const float *w);

/* One KV vector of d values (d a multiple of 32) to and from kvfmt bytes. */
void qsr_kv_encode(int kvfmt, int d, const float *x, uint8_t *dst);
void qsr_kv_decode(int kvfmt, int d, const uint8_t *src, float *out);

/* Host KV cache for one layer (qmatrix.h layout), zeroed, len 0. */
int qsr_kvcache_alloc(qsr_kvcache *c, int kvfmt, int kv_heads, int head_dim, int max_ctx,
                      int page, char **err);
void qsr_kvcache_free(qsr_kvcache *c);       /* NULL-safe; host buffers only */

/* Appends n tokens' K and V ([n][kv_heads][head_dim] fp32), encoding them and
** updating the page summaries from the stored (decoded) keys. Returns -1 and
** stores nothing if the cache would overflow. */
int qsr_kvcache_append(qsr_kvcache *c, int n, const float *k, const float *v);

/* Decoded vector of token t, KV head h (K if which == 0, else V). */
void qsr_kvcache_get(const qsr_kvcache *c, int which, int h, int t, float *out);

#endif
