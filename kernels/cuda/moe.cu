/*
** moe.cu -- moe_router and moe_experts_{gemv,gemm} on the device, the plan of
** kernels/cpu/moe.c without atomics (deterministic, and the same plan).
**
** Router, kernels in stream order:
**   gemv_<fmt>     logits[T][E] = x . Wg^T in fp32 (the linear kernels, EPI_F32)
**   router_topk    a thread per token, the C loop verbatim: max, exp, sum,
**                  divide, k passes of argmax (ties: lower expert), the k
**                  weights over their sum. grid T/128, 128 threads
**   router_count   per chunk of 256 tokens, a thread per expert counts its
**                  pairs. grid chunks, 256 threads
**   router_scan    one CTA: per expert an exclusive scan over chunks; kept =
**                  min(total, capacity); offsets over experts; dropped
**   router_scatter per chunk, a thread per expert walks the chunk in token
**                  order and writes its kept pairs. grid chunks, 256 threads
** The pair (t, r) of expert e is kept iff fewer than `capacity` earlier
** tokens chose e: the C rule (token order, rank order within a token; an
** expert occurs once per token).
**
** Experts: gate (fp32 scratch), up with the silu(gate)*up epilogue (fp16
** scratch), down (fp32 per pair) through the linear kernels in MoE mode
** (grid.y = experts, grid.z = pair tiles; gemv tiles of 4 pairs when the mean
** load T*k/E <= 16, else gemm tiles of 64), then moe_combine: a CTA per token
** adds its kept pairs' weight * down row into y in ascending expert order (as
** the C loop over experts does), fp32, rounded to fp16 once.
*/
#include "kernels/cuda/common.cuh"

#include <math.h>

#define MOE_CHUNK 256
#define MOE_THREADS 256

/* ---- plans ------------------------------------------------------------------- */

int qsr_cuda_moe_plan_alloc(qsr_moe_plan *pl, int tokens, int experts, int k, char **err) {
  int rc = QSR_OK;
  memset(pl, 0, sizeof *pl);
  if (tokens <= 0 || experts <= 0 || k <= 0 || k > experts)
    return CFG_FAIL("%s: %d tokens, %d experts, top-%d: not valid", __func__, tokens, experts, k);
  const size_t n = (size_t)tokens * (size_t)k;
  pl->max_tokens = pl->tokens = tokens;
  pl->experts = experts;
  pl->k = k;
  CUDA_OUT(cudaMalloc((void **)&pl->offset, ((size_t)experts + 2) * sizeof(int)));
  CUDA_OUT(cudaMalloc((void **)&pl->token, n * sizeof(int)));
  CUDA_OUT(cudaMalloc((void **)&pl->weight, n * sizeof(float)));
  CUDA_OUT(cudaMalloc((void **)&pl->choice, n * sizeof(int)));
  CUDA_OUT(cudaMemset(pl->offset, 0, ((size_t)experts + 2) * sizeof(int)));
out:
  if (rc) qsr_cuda_moe_plan_free(pl);
  return rc;
}

void qsr_cuda_moe_plan_free(qsr_moe_plan *pl) {
  if (!pl) return;
  qsr_cuda_free(pl->offset);
  qsr_cuda_free(pl->token);
  qsr_cuda_free(pl->weight);
  qsr_cuda_free(pl->choice);
  pl->offset = pl->token = pl->choice = NULL;
  pl->weight = NULL;
}

int qsr_cuda_moe_plan_download(const qsr_moe_plan *dev, qsr_moe_plan *host, char **err) {
  if (host->experts != dev->experts || host->k != dev->k || host->max_tokens < dev->tokens)
    return CFG_FAIL("%s: host plan of %d tokens, %d experts, top-%d; device %d, %d, %d",
                    __func__, host->max_tokens, host->experts, host->k, dev->tokens, dev->experts,
                    dev->k);
  const size_t n = (size_t)dev->tokens * (size_t)dev->k;
  int dropped = 0;
  CUDA_RET(cudaMemcpy(host->offset, dev->offset, ((size_t)dev->experts + 1) * sizeof(int),
                      cudaMemcpyDeviceToHost));
  CUDA_RET(cudaMemcpy(&dropped, dev->offset + dev->experts + 1, sizeof(int),
                      cudaMemcpyDeviceToHost));
  CUDA_RET(cudaMemcpy(host->token, dev->token, n * sizeof(int), cudaMemcpyDeviceToHost));
  CUDA_RET(cudaMemcpy(host->weight, dev->weight, n * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_RET(cudaMemcpy(host->choice, dev->choice, n * sizeof(int), cudaMemcpyDeviceToHost));
  host->tokens = dev->tokens;
  host->capacity = dev->capacity;
  host->dropped = dropped;
  return QSR_OK;
}

/* ---- router ------------------------------------------------------------------ */

struct router_p {
  int T, E, k, capacity, nch;
  float *logits;             /* [T][E], probabilities after router_topk */
  float *wsel;               /* [T][k] renormalised weights, rank order */
  int *cnt, *start;          /* [nch][E] */
  int *kept;                 /* [E] */
  int *offset, *token, *choice;
  float *weight;
};

static __global__ void __launch_bounds__(128) router_topk(const router_p p) {
  const int t = blockIdx.x * 128 + threadIdx.x;
  if (t >= p.T) return;
  float *l = p.logits + (size_t)t * p.E;
  int *ch = p.choice + (size_t)t * p.k;
  float mx = -INFINITY, sum = 0.0f, ksum = 0.0f;
  for (int e = 0; e < p.E; e++) mx = fmaxf(mx, l[e]);
  for (int e = 0; e < p.E; e++) sum += (l[e] = expf(l[e] - mx));
  for (int e = 0; e < p.E; e++) l[e] /= sum;
  for (int r = 0; r < p.k; r++) {
    int best = -1;
    for (int e = 0; e < p.E; e++) {
      bool taken = false;
      for (int q = 0; q < r; q++) taken |= ch[q] == e;
      if (!taken && (best < 0 || l[e] > l[best])) best = e;
    }
    ch[r] = best;
    ksum += l[best];
  }
  for (int r = 0; r < p.k; r++) p.wsel[(size_t)t * p.k + r] = l[ch[r]] / ksum;
}

static __global__ void __launch_bounds__(MOE_THREADS) router_count(const router_p p) {
  const int c = blockIdx.x, t0 = c * MOE_CHUNK, t1 = min(p.T, t0 + MOE_CHUNK);
  for (int e = threadIdx.x; e < p.E; e += MOE_THREADS) {
    int n = 0;
    for (int i = t0 * p.k; i < t1 * p.k; i++) n += p.choice[i] == e;
    p.cnt[(size_t)c * p.E + e] = n;
  }
}

static __global__ void __launch_bounds__(MOE_THREADS) router_scan(const router_p p) {
  __shared__ int s_drop[MOE_THREADS];
  int drop = 0;
  for (int e = threadIdx.x; e < p.E; e += MOE_THREADS) {
    int run = 0;
    for (int c = 0; c < p.nch; c++) {
      p.start[(size_t)c * p.E + e] = run;
      run += p.cnt[(size_t)c * p.E + e];
    }
    const int kept = p.capacity > 0 && run > p.capacity ? p.capacity : run;
    p.kept[e] = kept;
    drop += run - kept;
  }
  s_drop[threadIdx.x] = drop;
  __syncthreads();
  if (threadIdx.x == 0) {
    int off = 0, dropped = 0;
    for (int e = 0; e < p.E; e++) {
      p.offset[e] = off;
      off += p.kept[e];
    }
    p.offset[p.E] = off;
    for (int i = 0; i < MOE_THREADS; i++) dropped += s_drop[i];
    p.offset[p.E + 1] = dropped;
  }
}

static __global__ void __launch_bounds__(MOE_THREADS) router_scatter(const router_p p) {
  const int c = blockIdx.x, t0 = c * MOE_CHUNK, t1 = min(p.T, t0 + MOE_CHUNK);
  for (int e = threadIdx.x; e < p.E; e += MOE_THREADS) {
    int pos = p.start[(size_t)c * p.E + e];
    const int lim = p.kept[e], base = p.offset[e];
    for (int i = t0 * p.k; i < t1 * p.k && pos < lim; i++) {
      if (p.choice[i] != e) continue;
      p.token[base + pos] = i / p.k;
      p.weight[base + pos] = p.wsel[i];
      pos++;
    }
  }
}

struct router_scratch {
  uint64_t logits, wsel, cnt, start, kept, total;
};

static uint64_t al256(uint64_t n) { return (n + 255) / 256 * 256; }

static router_scratch router_scratch_of(int T, int E, int k) {
  router_scratch s;
  const uint64_t nch = ((uint64_t)T + MOE_CHUNK - 1) / MOE_CHUNK;
  s.logits = 0;
  s.wsel = al256((uint64_t)T * E * 4);
  s.cnt = s.wsel + al256((uint64_t)T * k * 4);
  s.start = s.cnt + al256(nch * E * 4);
  s.kept = s.start + al256(nch * E * 4);
  s.total = s.kept + al256((uint64_t)E * 4);
  return s;
}

uint64_t qsr_cuda_moe_router_scratch_bytes(int tokens, int experts, int k) {
  if (tokens < 1 || experts < 1 || k < 1) return 0;
  return router_scratch_of(tokens, experts, k).total;
}

int qsr_cuda_moe_router(const qsr_qmatrix *wg, const uint16_t *x, int T, int k, int capacity,
                        qsr_moe_plan *pl, void *scratch, uint64_t scratch_bytes, void *stream,
                        char **err) {
  int rc = qsr_cuda_check_qmatrix(wg, __func__, err);
  if (rc) return rc;
  if (!pl || !x || T < 1 || T > pl->max_tokens || (int)wg->rows != pl->experts ||
      k != pl->k || k < 1 || k > pl->experts || capacity < 0)
    return CFG_FAIL("%s: %d tokens, top-%d, capacity %d for a plan of %d tokens, %d experts, "
                    "top-%d and a %u-row gate",
                    __func__, T, k, capacity, pl ? pl->max_tokens : 0, pl ? pl->experts : 0,
                    pl ? pl->k : 0, wg->rows);
  const int E = pl->experts;
  const router_scratch sc = router_scratch_of(T, E, k);
  if (!scratch || scratch_bytes < sc.total)
    return CFG_FAIL("%s: scratch of %llu bytes, need %llu", __func__,
                    (unsigned long long)scratch_bytes, (unsigned long long)sc.total);
  cudaStream_t s = QSR_CUDA_STREAM(stream);
  uint8_t *b = (uint8_t *)scratch;
  router_p p;
  p.T = T;
  p.E = E;
  p.k = k;
  p.capacity = capacity;
  p.nch = (T + MOE_CHUNK - 1) / MOE_CHUNK;
  p.logits = (float *)(b + sc.logits);
  p.wsel = (float *)(b + sc.wsel);
  p.cnt = (int *)(b + sc.cnt);
  p.start = (int *)(b + sc.start);
  p.kept = (int *)(b + sc.kept);
  p.offset = pl->offset;
  p.token = pl->token;
  p.choice = pl->choice;
  p.weight = pl->weight;

  lin_args a = lin_args{};
  a.w = wdesc_of(wg);
  a.x = (const __half *)x;
  a.ldx = (int)wg->cols;
  a.xvec = (uintptr_t)x % 16 == 0 && wg->cols % 8 == 0;
  a.T = T;
  a.xmode = LIN_X_PLAIN;
  a.epi = LIN_EPI_F32;
  a.out = p.logits;
  a.ldo = E;
  rc = qsr_cuda_gemv_launch(a, nullptr, 0, 0, s, err); /* fp32 math, exact decode: any T */
  if (rc) return rc;
  router_topk<<<(T + 127) / 128, 128, 0, s>>>(p);
  CUDA_LAUNCHED();
  router_count<<<p.nch, MOE_THREADS, 0, s>>>(p);
  CUDA_LAUNCHED();
  router_scan<<<1, MOE_THREADS, 0, s>>>(p);
  CUDA_LAUNCHED();
  router_scatter<<<p.nch, MOE_THREADS, 0, s>>>(p);
  CUDA_LAUNCHED();
  pl->tokens = T;
  pl->capacity = capacity;
  return QSR_OK;
}

/* ---- experts ------------------------------------------------------------------- */

static __global__ void __launch_bounds__(MOE_THREADS)
    moe_combine(const int *offset, const int *token, const float *weight, const int *choice,
                int k, int hidden, const float *D, __half *y) {
  __shared__ int s_pair[QSR_CUDA_MAX_EXPERTS];
  __shared__ int s_n;
  const int t = blockIdx.x;
  if (threadIdx.x == 0) {
    int n = 0;
    for (int r = 0; r < k; r++) {
      const int e = choice[(size_t)t * k + r];
      int lo = offset[e], hi = offset[e + 1] - 1, at = -1;
      while (lo <= hi) { /* token lists are ascending */
        const int mid = (lo + hi) >> 1, v = token[mid];
        if (v == t) {
          at = mid;
          break;
        }
        if (v < t) lo = mid + 1;
        else hi = mid - 1;
      }
      if (at < 0) continue; /* dropped */
      int j = n++;          /* insertion by expert: pair indices grow with the expert */
      while (j > 0 && s_pair[j - 1] > at) {
        s_pair[j] = s_pair[j - 1];
        j--;
      }
      s_pair[j] = at;
    }
    s_n = n;
  }
  __syncthreads();
  const int n = s_n;
  if (!n) return;
  __half *yt = y + (size_t)t * hidden;
  for (int c = threadIdx.x; c < hidden; c += MOE_THREADS) {
    float v = __half2float(yt[c]);
    for (int i = 0; i < n; i++) v += weight[s_pair[i]] * D[(size_t)s_pair[i] * hidden + c];
    yt[c] = __float2half_rn(v);
  }
}

struct moe_scratch {
  uint64_t g, h, d, total;
};

static moe_scratch moe_scratch_of(int pairs, int ffn, int hidden, int gate) {
  moe_scratch s;
  s.g = 0;
  s.h = gate ? al256((uint64_t)pairs * ffn * 4) : 0;
  s.d = s.h + al256((uint64_t)pairs * ffn * 2);
  s.total = s.d + al256((uint64_t)pairs * hidden * 4);
  return s;
}

uint64_t qsr_cuda_moe_scratch_bytes(const qsr_moe_plan *pl, int ffn, int hidden) {
  if (!pl || ffn < 1 || hidden < 1) return 0;
  return moe_scratch_of(pl->max_tokens * pl->k, ffn, hidden, 1).total;
}

/* All experts' matrices agree in format and shape (rows x cols); fills tab. */
static int moe_check(const char *what, const qsr_qmatrix *m, int E, uint32_t rows, uint32_t cols,
                     lin_tab *tab, char **err) {
  for (int e = 0; e < E; e++) {
    int rc = qsr_cuda_check_qmatrix(&m[e], what, err);
    if (rc) return rc;
    if (m[e].fmt != m[0].fmt || m[e].bits != m[0].bits || m[e].group != m[0].group ||
        m[e].rows != rows || m[e].cols != cols)
      return CFG_FAIL("%s: expert %d is %ux%u fmt %d/%d, expert 0 %ux%u fmt %d/%d (want %ux%u)",
                      what, e, m[e].rows, m[e].cols, m[e].fmt, m[e].bits, m[0].rows, m[0].cols,
                      m[0].fmt, m[0].bits, rows, cols);
    tab->data[e] = m[e].data;
    tab->meta[e] = m[e].meta;
  }
  return QSR_OK;
}

int qsr_cuda_moe_experts(const qsr_qmatrix *gate, const qsr_qmatrix *up,
                         const qsr_qmatrix *down, const qsr_moe_plan *pl, const uint16_t *x,
                         uint16_t *y, void *scratch, uint64_t scratch_bytes, void *stream,
                         char **err) {
  if (!up || !down || !pl || !x || !y || !pl->offset || pl->tokens < 1 || pl->k < 1)
    return CFG_FAIL("%s: missing argument", __func__);
  const int E = pl->experts;
  if (E < 1 || E > QSR_CUDA_MAX_EXPERTS)
    return CFG_FAIL("%s: %d experts (at most %d)", __func__, E, QSR_CUDA_MAX_EXPERTS);
  const uint32_t F = up[0].rows, H = up[0].cols;
  lin_tab tg, tu, td; /* copied into each launch's parameters */
  lin_tab *tabg = gate ? &tg : nullptr;
  int rc;
  if ((rc = moe_check("qsr_cuda_moe_experts: up", up, E, F, H, &tu, err))) return rc;
  if ((rc = moe_check("qsr_cuda_moe_experts: down", down, E, H, F, &td, err))) return rc;
  if (gate && (rc = moe_check("qsr_cuda_moe_experts: gate", gate, E, F, H, &tg, err))) return rc;
  const int pairs = pl->tokens * pl->k;
  const moe_scratch sc = moe_scratch_of(pairs, (int)F, (int)H, gate != nullptr);
  if (!scratch || scratch_bytes < sc.total)
    return CFG_FAIL("%s: scratch of %llu bytes, need %llu", __func__,
                    (unsigned long long)scratch_bytes, (unsigned long long)sc.total);
  uint8_t *b = (uint8_t *)scratch;
  float *G = (float *)(b + sc.g), *D = (float *)(b + sc.d);
  __half *Hh = (__half *)(b + sc.h);
  const int max_pairs = pl->capacity > 0 && pl->capacity < pl->tokens ? pl->capacity : pl->tokens;
  const bool gemm = (int64_t)pl->tokens * pl->k > 16ll * E; /* mean tokens per expert > 16 */
  cudaStream_t s = QSR_CUDA_STREAM(stream);
  int (*launch)(const lin_args &, const lin_tab *, int, int, cudaStream_t, char **) =
      gemm ? qsr_cuda_gemm_launch : qsr_cuda_gemv_launch;

  lin_args a = lin_args{};
  a.offset = pl->offset;
  a.token = pl->token;
  /* gate and up: pairs gather their token's x */
  a.x = (const __half *)x;
  a.ldx = (int)H;
  a.xvec = (uintptr_t)x % 16 == 0 && H % 8 == 0;
  a.xmode = LIN_X_GATHER;
  a.ldo = (int)F;
  if (gate) {
    a.w = wdesc_of(&gate[0]);
    a.epi = LIN_EPI_F32;
    a.out = G;
    if ((rc = launch(a, tabg, E, max_pairs, s, err))) return rc;
  }
  a.w = wdesc_of(&up[0]);
  a.epi = gate ? LIN_EPI_SILU : LIN_EPI_GELU;
  a.g32 = G;
  a.out = Hh;
  if ((rc = launch(a, &tu, E, max_pairs, s, err))) return rc;
  /* down: pair i reads its own intermediate row */
  a.w = wdesc_of(&down[0]);
  a.x = Hh;
  a.ldx = (int)F;
  a.xvec = F % 8 == 0;
  a.xmode = LIN_X_PAIR;
  a.epi = LIN_EPI_F32;
  a.g32 = nullptr;
  a.out = D;
  a.ldo = (int)H;
  if ((rc = launch(a, &td, E, max_pairs, s, err))) return rc;
  moe_combine<<<pl->tokens, MOE_THREADS, 0, s>>>(pl->offset, pl->token, pl->weight, pl->choice,
                                                 pl->k, (int)H, D, (__half *)y);
  CUDA_LAUNCHED();
  return QSR_OK;
}
