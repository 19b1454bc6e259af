/*
** qsr_cuda.h -- the CUDA kernels: C-callable, plain C types only (no CUDA
** headers here), so that C11 code links them when the Makefile finds nvcc
** (it then defines QSR_HAVE_CUDA=1 for every C file).
**
** Conventions
**   - Every fallible call returns an enum qsr_err code (util/err.h): QSR_OK,
**     QSR_ERR_CUDA (a CUDA call failed: *err names the call, the function,
**     file and line), QSR_ERR_CONFIG (bad shape or format), QSR_ERR_NOMEM.
**     *err is a heap string the caller frees with free(), left untouched on
**     success; err may be NULL. Nothing aborts, nothing exits.
**   - Device buffers are described by the host structs of qmatrix.h and cpu.h
**     (qsr_qmatrix, qsr_kvcache, qsr_moe_plan) holding DEVICE pointers; the
**     scalar fields (shapes, len) live on the host.
**   - Activations on the device are fp16, passed as uint16_t * (IEEE binary16
**     bit patterns, i.e. __half), row-major, token-major ([T][n]). Arithmetic
**     is fp32 (accumulation, softmax, norms); outputs are rounded to fp16
**     once, round to nearest even.
**   - Norm weights and biases are fp32 on the device (they are tiny; the C
**     kernels use fp32 too).
**   - stream: a cudaStream_t as void *, NULL = the legacy default stream.
**     Kernels are asynchronous; qsr_cuda_sync() or a d2h copy waits.
**   - Scratch: the hot kernels (attention, MoE) take caller-owned device
**     scratch sized by the matching *_scratch_bytes() query; nothing on the
**     kernel path allocates. Only the upload/alloc calls allocate.
**   - Not thread-safe on one stream; qsr_cuda_gemm_cublas_f16 keeps one
**     cuBLAS handle per host thread and device (qsr_cuda_release frees them).
**
** Which variant of kernels/variants.def each entry runs is in
** kernels/cuda/README.md, with its launch shape.
*/
#ifndef QSR_CUDA_H
#define QSR_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/cpu/cpu.h"
#include "kernels/qmatrix.h"

/* Limits of this kernel set (QSR_ERR_CONFIG beyond them). */
#define QSR_CUDA_MAX_HEADS 256       /* attention query heads */
#define QSR_CUDA_MAX_HEAD_DIM 512    /* head_dim, a multiple of 32 */
#define QSR_CUDA_MAX_EXPERTS 256     /* MoE experts */
#define QSR_CUDA_ATTN_QCHUNK 16      /* prefill top-k queries per pass (scratch) */

/* ---- runtime -------------------------------------------------------------- */
/* Number of CUDA devices; 0 when there is no driver or no device (never fails). */
int qsr_cuda_device_count(void);
/* Device name into buf[n] ("" on failure). QSR_OK or QSR_ERR_CUDA. */
int qsr_cuda_device_name(int dev, char *buf, int n);
int qsr_cuda_set_device(int dev, char **err);
/* Destroys the calling thread's cuBLAS handles (NULL-safe to call anytime). */
void qsr_cuda_release(void);

/* ---- memory --------------------------------------------------------------- */
/* *p = NULL when n == 0. */
int qsr_cuda_malloc(void **p, size_t n, char **err);
void qsr_cuda_free(void *p);                  /* NULL-safe */
int qsr_cuda_h2d(void *dst, const void *src, size_t n, char **err);
int qsr_cuda_d2h(void *dst, const void *src, size_t n, char **err);
int qsr_cuda_memset(void *p, int byte, size_t n, char **err);
int qsr_cuda_sync(char **err);                /* waits for the whole device */

/* Copies host (quant.h buffers) to fresh device buffers; *dev gets the same
** layout with device pointers. On failure *dev holds no allocation. */
int qsr_cuda_qmatrix_upload(const qsr_qmatrix *host, qsr_qmatrix *dev, char **err);
void qsr_cuda_qmatrix_free(qsr_qmatrix *dev); /* NULL-safe; device buffers only */

/* KV cache: all of k, v (max_ctx slots), kmin/kmax summaries and len. */
int qsr_cuda_kvcache_upload(const qsr_kvcache *host, qsr_kvcache *dev, char **err);
void qsr_cuda_kvcache_free(qsr_kvcache *dev); /* NULL-safe; device buffers only */
/* Copies a device cache into a host cache of the same layout (tests). */
int qsr_cuda_kvcache_download(const qsr_kvcache *dev, qsr_kvcache *host, char **err);
/* qsr_kvcache_append on the device: n tokens' K and V ([n][kv_heads][head_dim]
** fp16, device) encoded into the cache format with quant.c's rounding rules,
** page summaries updated from the stored (decoded) keys, dev->len += n.
** QSR_ERR_CONFIG (nothing stored) if the cache would overflow. */
int qsr_cuda_kvcache_append(qsr_kvcache *dev, int n, const uint16_t *k, const uint16_t *v,
                            void *stream, char **err);

/* ---- linear: y[T][rows] = x[T][cols] . W^T --------------------------------- */
/* gemv_<fmt> (variants.def): a warp per 1-2 weight rows, 16-byte weight
** loads, the group scale factored out; meant for T <= 16 (any T >= 1 works). */
int qsr_cuda_gemv(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y, void *stream,
                  char **err);
/* gemm_<fmt>: 32-column weight tiles dequantised to fp16 in shared memory,
** WMMA fp16 tensor-core products, fp32 accumulation; any T >= 1. The weights
** are rounded to fp16 before the product (bf16 weights outside fp16's normal
** range lose precision). */
int qsr_cuda_gemm(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y, void *stream,
                  char **err);
/* The variant qsr_kvariant_linear(w->fmt, T) names. */
int qsr_cuda_linear(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y, void *stream,
                    char **err);
/* Reference for benchmarks: cuBLAS fp16 GEMM (fp32 compute) on QSR_WFMT_FP16
** weights. QSR_ERR_CONFIG for any other format. */
int qsr_cuda_gemm_cublas_f16(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y,
                             void *stream, char **err);

/* ---- attention ------------------------------------------------------------ */
/* cfg is a host struct (cfg->head_type a host array); cache describes device
** buffers; cache->len tokens are stored (the new ones already appended).
** q, out: device fp16, decode [heads][head_dim], prefill [T][heads][head_dim].
** Limits: heads <= QSR_CUDA_MAX_HEADS, head_dim <= QSR_CUDA_MAX_HEAD_DIM.
** Scratch: device memory of qsr_cuda_attn_scratch_bytes(cfg, cache, T) bytes
** (T = 1 for decode); it depends on cache->max_ctx and page, not on len. */
uint64_t qsr_cuda_attn_scratch_bytes(const qsr_attn_cfg *cfg, const qsr_kvcache *cache, int T);
/* attn_decode_{dense,local,topk_exact,topk_paged}, per head type: split
** context (flash decoding) -- blocks over context chunks, then a reduction. */
int qsr_cuda_attn_decode(const qsr_attn_cfg *cfg, const qsr_kvcache *cache, const uint16_t *q,
                         uint16_t *out, void *scratch, uint64_t scratch_bytes, void *stream,
                         char **err);
/* attn_prefill_*: T queries at positions len-T .. len-1, causal. Dense and
** local heads: key tiles with online softmax, skipping tiles outside the
** span (a local head costs window, not context). Top-k heads: per query,
** the decode pipeline (score, select, split attention) in chunks of
** QSR_CUDA_ATTN_QCHUNK queries. */
int qsr_cuda_attn_prefill(const qsr_attn_cfg *cfg, const qsr_kvcache *cache, int T,
                          const uint16_t *q, uint16_t *out, void *scratch,
                          uint64_t scratch_bytes, void *stream, char **err);

/* ---- MoE ------------------------------------------------------------------ */
/* A device plan: the qsr_moe_plan struct with device arrays. offset holds
** experts + 2 ints on the device: offset[experts + 1] is the dropped count
** (the host field `dropped` is only filled by qsr_cuda_moe_plan_download). */
int qsr_cuda_moe_plan_alloc(qsr_moe_plan *pl, int tokens, int experts, int k, char **err);
void qsr_cuda_moe_plan_free(qsr_moe_plan *pl); /* NULL-safe */
/* Into a host plan of the same shape (qsr_moe_plan_alloc): offset, token,
** weight, choice, capacity and dropped. Synchronous. */
int qsr_cuda_moe_plan_download(const qsr_moe_plan *dev, qsr_moe_plan *host, char **err);

/* moe_router: logits = x . Wg^T (fp32, the gemv kernels), softmax, top-k
** (ties to the lower expert), the k weights renormalised, then pairs kept in
** token order up to `capacity` per expert (0 = unlimited) -- the C plan,
** deterministically (no atomics). x: [T][hidden] fp16; wg: experts x hidden;
** pl from qsr_cuda_moe_plan_alloc with pl->tokens >= T (pl->tokens is set
** to T). Scratch: qsr_cuda_moe_router_scratch_bytes(T, experts, k). */
uint64_t qsr_cuda_moe_router_scratch_bytes(int tokens, int experts, int k);
int qsr_cuda_moe_router(const qsr_qmatrix *wg, const uint16_t *x, int T, int k, int capacity,
                        qsr_moe_plan *pl, void *scratch, uint64_t scratch_bytes, void *stream,
                        char **err);

/* moe_experts_gemv / moe_experts_gemm (by mean tokens per expert, as linear):
** y[t] += sum over t's kept pairs of weight * down_e(silu(gate_e x) * up_e x)
** (gelu(up_e x) when gate is NULL). gate, up, down: host arrays of
** pl->experts device matrices (gate, up: ffn x hidden; down: hidden x ffn),
** all experts of one array in one format. x, y: [T][hidden] fp16. The
** intermediate silu(g)*u is rounded to fp16 (as any activation here); the
** per-pair down outputs are fp32 and summed per token in rank order (no
** atomics: deterministic). Scratch: qsr_cuda_moe_scratch_bytes(pl, ffn, hidden). */
uint64_t qsr_cuda_moe_scratch_bytes(const qsr_moe_plan *pl, int ffn, int hidden);
int qsr_cuda_moe_experts(const qsr_qmatrix *gate, const qsr_qmatrix *up,
                         const qsr_qmatrix *down, const qsr_moe_plan *pl, const uint16_t *x,
                         uint16_t *y, void *scratch, uint64_t scratch_bytes, void *stream,
                         char **err);

/* ---- elementwise (fp16 activations, fp32 math) ----------------------------- */
/* rmsnorm_add: if res != NULL, res += x (stored fp16) and out = norm of the
** fp32 sum; else out = x / rms(x) * w. w: fp32 [n]. [T][n]. */
int qsr_cuda_rmsnorm_add(const uint16_t *x, uint16_t *res, const float *w, float eps, int T,
                         int n, uint16_t *out, void *stream, char **err);
/* layernorm_add: as rmsnorm_add with mean removal and bias b (fp32, may be NULL). */
int qsr_cuda_layernorm_add(const uint16_t *x, uint16_t *res, const float *w, const float *b,
                           float eps, int T, int n, uint16_t *out, void *stream, char **err);
/* silu_gate: out = gate * sigmoid(gate) * up. */
int qsr_cuda_silu_gate(const uint16_t *gate, const uint16_t *up, int64_t n, uint16_t *out,
                       void *stream, char **err);
/* gelu: tanh approximation. */
int qsr_cuda_gelu(const uint16_t *x, int64_t n, uint16_t *out, void *stream, char **err);
/* embedding: out[t] = dequantised row ids[t] of table ([vocab][dim]), fp16;
** ids: device int32 [T]; an id outside [0, vocab) gives a zero row. */
int qsr_cuda_embedding(const qsr_qmatrix *table, const int32_t *ids, int T, uint16_t *out,
                       void *stream, char **err);

#ifdef __cplusplus
}
#endif

#endif
