/*
** cpu.h -- the C kernels: the correctness reference for the CUDA kernels and a
** real backend for CPU hosts and edge boards. Activations are fp32, row-major,
** token-major ([T][n]); weights and the KV cache are the packed host formats
** of qmatrix.h. Work is split over a qsr_pool (NULL = the calling thread).
** Every kernel is one of the variants in kernels/variants.def; its name is in
** the comment. Kernels do not allocate unless they say so; shapes are checked
** by the callers (quant.h builds the operands), invariants by QSR_ASSERT.
*/
#ifndef QSR_CPU_H
#define QSR_CPU_H

#include "kernels/qmatrix.h"

#include <stdint.h>

/* ---- threads -------------------------------------------------------------- */
typedef struct qsr_pool qsr_pool;

/* n_threads <= 0: one per online CPU. NULL on failure. */
qsr_pool *qsr_pool_new(int n_threads);
void qsr_pool_free(qsr_pool *p);             /* NULL-safe */
int qsr_pool_threads(const qsr_pool *p);     /* 1 for NULL */
/* Runs fn(arg, i, worker) for i in [0, n) across the pool, worker in
** [0, qsr_pool_threads(p)) naming the thread (for per-thread scratch); returns
** when all are done. Not reentrant: one run at a time per pool. */
void qsr_pool_run(qsr_pool *p, int n, void (*fn)(void *arg, int i, int worker), void *arg);

/* ---- linear: y[T][rows] = x[T][cols] . W^T -------------------------------- */
/* gemv_<fmt>: per weight row, dot with each of T (<= 16 sensible) tokens;
** affine/symmetric formats factor the scale out of each group. */
void qsr_cpu_gemv(qsr_pool *p, const qsr_qmatrix *w, const float *x, int T, float *y);
/* gemm_<fmt>: dequantise a tile of rows once, multiply with all T tokens.
** Allocates one tile buffer per task (aborts only if that fails). */
void qsr_cpu_gemm(qsr_pool *p, const qsr_qmatrix *w, const float *x, int T, float *y);
/* The variant qsr_kvariant_linear(fmt, T) names. */
void qsr_cpu_linear(qsr_pool *p, const qsr_qmatrix *w, const float *x, int T, float *y);

/* ---- attention ------------------------------------------------------------ */
/* attn_decode_{dense,local,topk_exact,topk_paged}: one query per head at
** position c->len - 1 (its own K/V already appended); q, out [heads][head_dim].
** scratch: at least qsr_cpu_attn_scratch(cfg, c->max_ctx) floats. */
void qsr_cpu_attn_decode(qsr_pool *p, const qsr_attn_cfg *cfg, const qsr_kvcache *c,
                         const float *q, float *out, float *scratch);
/* attn_prefill_*: T queries at positions c->len - T .. c->len - 1 (their K/V
** appended), causal; q, out [T][heads][head_dim]. */
void qsr_cpu_attn_prefill(qsr_pool *p, const qsr_attn_cfg *cfg, const qsr_kvcache *c,
                          int T, const float *q, float *out, float *scratch);
/* Floats of scratch the attention kernels need for a pool of p's size. */
uint64_t qsr_cpu_attn_scratch(const qsr_pool *p, const qsr_attn_cfg *cfg, int max_ctx);

/* ---- MoE ------------------------------------------------------------------ */
/* Routing of T tokens to experts, grouped by expert (token order kept). */
typedef struct qsr_moe_plan {
  int max_tokens;            /* allocated for this many tokens */
  int tokens, experts, k;    /* shape of the last routing (tokens <= max_tokens) */
  int capacity;              /* max tokens per expert, 0 = unlimited */
  int dropped;               /* (token, expert) pairs over capacity */
  int *offset;               /* [experts + 1]: expert e's rows are offset[e]..offset[e+1] */
  int *token;                /* [tokens * k] token of each kept pair */
  float *weight;             /* [tokens * k] its gate weight */
  int *choice;               /* [tokens * k] expert chosen, in rank order (kept or not) */
} qsr_moe_plan;

int qsr_moe_plan_alloc(qsr_moe_plan *pl, int tokens, int experts, int k, char **err);
void qsr_moe_plan_free(qsr_moe_plan *pl);    /* NULL-safe */

/* moe_router: logits = x . Wg^T ([T][experts]); softmax; top-k (ties to the
** lower index); the k weights renormalised to sum 1; pairs assigned to their
** expert in token order, those beyond `capacity` dropped (weight lost).
** logits: scratch of T * experts floats. */
void qsr_cpu_moe_router(qsr_pool *p, const qsr_qmatrix *wg, const float *x, int T, int k,
                        int capacity, qsr_moe_plan *pl, float *logits);

/* moe_experts_gemv / moe_experts_gemm (by tokens per expert, as linear):
** y[t] += sum over t's kept pairs of weight * down_e(silu(gate_e x) * up_e x),
** or down_e(gelu(up_e x)) when gate is NULL. gate/up/down: [experts] matrices
** (gate, up: ffn x hidden; down: hidden x ffn). scratch: at least
** qsr_cpu_moe_scratch(pl, ffn, hidden) floats. */
void qsr_cpu_moe_experts(qsr_pool *p, const qsr_qmatrix *gate, const qsr_qmatrix *up,
                         const qsr_qmatrix *down, const qsr_moe_plan *pl, const float *x,
                         float *y, float *scratch);
uint64_t qsr_cpu_moe_scratch(const qsr_moe_plan *pl, int ffn, int hidden);

/* ---- elementwise ---------------------------------------------------------- */
/* rmsnorm_add: if res != NULL, res += x, then out = res / rms(res) * w;
** else out = x / rms(x) * w. rms = sqrt(mean(v^2) + eps). [T][n]. */
void qsr_cpu_rmsnorm_add(const float *x, float *res, const float *w, float eps, int T, int n,
                         float *out);
/* layernorm_add: as rmsnorm_add with mean removal and bias b (may be NULL). */
void qsr_cpu_layernorm_add(const float *x, float *res, const float *w, const float *b,
                           float eps, int T, int n, float *out);
/* silu_gate: out = gate * sigmoid(gate) * up. */
void qsr_cpu_silu_gate(const float *gate, const float *up, int64_t n, float *out);
/* gelu: tanh approximation. */
void qsr_cpu_gelu(const float *x, int64_t n, float *out);
/* embedding: out[t] = dequantised row ids[t] of table ([vocab][dim]). */
void qsr_cpu_embedding(const qsr_qmatrix *table, const int32_t *ids, int T, float *out);

#endif
