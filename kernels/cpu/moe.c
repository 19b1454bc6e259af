/*
** moe.c -- moe_router and moe_experts_{gemv,gemm} on the CPU.
**
** The router is a linear layer (any weight format), a softmax over experts,
** a top-k per token and a capacity check in token order; its plan lists each
** expert's kept tokens. The expert FFN gathers an expert's tokens, runs its
** gate/up linear layers (gemv or gemm by the expert's token count, the same
** rule as any linear layer), the activation, the down layer, and adds the
** weighted rows into y. Experts run one after another; each linear layer is
** split over the pool.
*/
#include "kernels/cpu/cpu.h"

#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int qsr_moe_plan_alloc(qsr_moe_plan *pl, int tokens, int experts, int k, char **err) {
  memset(pl, 0, sizeof *pl);
  if (tokens <= 0 || experts <= 0 || k <= 0 || k > experts)
    return qsr_errf(err, QSR_ERR_CONFIG, "moe plan: %d tokens, %d experts, top-%d: not valid", tokens,
                    experts, k);
  size_t n = (size_t)tokens * (size_t)k;
  pl->max_tokens = pl->tokens = tokens;
  pl->experts = experts;
  pl->k = k;
  pl->offset = calloc((size_t)experts + 1, sizeof *pl->offset);
  pl->token = calloc(n, sizeof *pl->token);
  pl->weight = calloc(n, sizeof *pl->weight);
  pl->choice = calloc(n, sizeof *pl->choice);
  if (!pl->offset || !pl->token || !pl->weight || !pl->choice) {
    qsr_moe_plan_free(pl);
    return qsr_errf(err, QSR_ERR_NOMEM, "out of memory for a moe plan of %d tokens", tokens);
  }
  return QSR_OK;
}

void qsr_moe_plan_free(qsr_moe_plan *pl) {
  if (!pl) return;
  free(pl->offset);
  free(pl->token);
  free(pl->weight);
  free(pl->choice);
  pl->offset = pl->token = pl->choice = NULL;
  pl->weight = NULL;
}

void qsr_cpu_moe_router(qsr_pool *p, const qsr_qmatrix *wg, const float *x, int T, int k,
                        int capacity, qsr_moe_plan *pl, float *logits) {
  int E = (int)wg->rows;
  QSR_ASSERT(T <= pl->max_tokens && E == pl->experts && k == pl->k);
  qsr_cpu_linear(p, wg, x, T, logits);
  float *wt = malloc((size_t)T * (size_t)k * sizeof *wt);
  int *fill = calloc((size_t)E, sizeof *fill);
  QSR_ASSERT(wt && fill);
  for (int t = 0; t < T; t++) {
    float *l = logits + (size_t)t * E, mx = -INFINITY, sum = 0, ksum = 0;
    for (int e = 0; e < E; e++) mx = fmaxf(mx, l[e]);
    for (int e = 0; e < E; e++) sum += (l[e] = expf(l[e] - mx));
    for (int e = 0; e < E; e++) l[e] /= sum;
    for (int r = 0; r < k; r++) {           /* k passes: k is small (1..8) */
      int best = -1;
      for (int e = 0; e < E; e++) {
        int taken = 0;
        for (int q = 0; q < r; q++) taken |= pl->choice[t * k + q] == e;
        if (!taken && (best < 0 || l[e] > l[best])) best = e;
      }
      pl->choice[t * k + r] = best;
      ksum += l[best];
    }
    for (int r = 0; r < k; r++) wt[t * k + r] = l[pl->choice[t * k + r]] / ksum;
  }
  /* capacity in token order, then a counting sort by expert */
  pl->tokens = T;
  pl->capacity = capacity;
  pl->dropped = 0;
  for (int i = 0; i < T * k; i++) {
    int e = pl->choice[i];
    if (capacity > 0 && fill[e] >= capacity) { pl->dropped++; continue; }
    fill[e]++;
  }
  pl->offset[0] = 0;
  for (int e = 0; e < E; e++) pl->offset[e + 1] = pl->offset[e] + fill[e];
  memset(fill, 0, (size_t)E * sizeof *fill);
  for (int i = 0; i < T * k; i++) {
    int e = pl->choice[i];
    if (pl->offset[e] + fill[e] >= pl->offset[e + 1]) continue;  /* dropped */
    int at = pl->offset[e] + fill[e]++;
    pl->token[at] = i / k;
    pl->weight[at] = wt[i];
  }
  free(wt);
  free(fill);
}

uint64_t qsr_cpu_moe_scratch(const qsr_moe_plan *pl, int ffn, int hidden) {
  return (uint64_t)pl->max_tokens * (2ull * (uint64_t)hidden + 2ull * (uint64_t)ffn);
}

void qsr_cpu_moe_experts(qsr_pool *p, const qsr_qmatrix *gate, const qsr_qmatrix *up,
                         const qsr_qmatrix *down, const qsr_moe_plan *pl, const float *x,
                         float *y, float *scratch) {
  int H = (int)up[0].cols, F = (int)up[0].rows;
  for (int e = 0; e < pl->experts; e++) {
    int n = pl->offset[e + 1] - pl->offset[e];
    if (!n) continue;
    QSR_ASSERT((int)up[e].cols == H && (int)up[e].rows == F && (int)down[e].rows == H &&
               (int)down[e].cols == F && (!gate || (int)gate[e].rows == F));
    float *xe = scratch, *g = xe + (size_t)n * H, *u = g + (size_t)n * F, *o = u + (size_t)n * F;
    for (int i = 0; i < n; i++)
      memcpy(xe + (size_t)i * H, x + (size_t)pl->token[pl->offset[e] + i] * H, (size_t)H * sizeof *xe);
    qsr_cpu_linear(p, &up[e], xe, n, u);
    if (gate) {
      qsr_cpu_linear(p, &gate[e], xe, n, g);
      qsr_cpu_silu_gate(g, u, (int64_t)n * F, u);
    } else {
      qsr_cpu_gelu(u, (int64_t)n * F, u);
    }
    qsr_cpu_linear(p, &down[e], u, n, o);
    for (int i = 0; i < n; i++) {
      float w = pl->weight[pl->offset[e] + i], *yt = y + (size_t)pl->token[pl->offset[e] + i] * H;
      for (int c = 0; c < H; c++) yt[c] += w * o[(size_t)i * H + c];
    }
  }
}
