/*
** attention.cu -- attn_decode_* and attn_prefill_*: fp16 queries against a
** device KV cache (kv.cuh), fp32 scores and softmax, GQA (query head h reads
** KV head h / (heads / kv_heads)).
**
** Key spans (len' = the query's position + 1; decode: position len - 1):
**   dense     j in [lo, len'), lo = len' - sliding_window (if > 0) else 0
**   local     the dense span and j > len' - 1 - window
**   top-k     the dense span, only the topk best scores (ties: lower j)
**   paged     the pages of `page` tokens from the dense span's first to the
**             one before the query's own, ranked by sum_c max(q_c kmin_c,
**             q_c kmax_c); the ceil(topk/page) best (ties: lower page) plus
**             the query's own page; all their keys within the dense span
** (kernels/cpu/attention.c is the reference.)
**
** Decode pipeline (also prefill top-k heads, QSR_CUDA_ATTN_QCHUNK queries at
** a time), kernels in stream order; grid.y = heads, grid.z = queries:
**   1 attn_score   top-k heads: all scores of the span into scratch.
**                  grid.x = span/256, 128 threads in lane groups (below)
**   1 attn_bound   paged heads: a warp per page. grid.x = pages/4, 128 threads
**   2 attn_select  top-k and paged heads: radix select of the k-th largest
**                  score (page bound) and the tie cut; paged: the ascending
**                  list of kept pages. grid.x = heads, 512 threads
**   3 attn_split   every active head: split context. CTA s takes `chunk`
**                  units (keys, or keys of kept pages; chunk sized for 4
**                  CTAs per multiprocessor, >= 32, <= 1024 splits) in
**                  sub-chunks of 256: scores to shared memory, one max, exp,
**                  V. Partial (max, sum, o[d]) per CTA. grid.x = nsplit,
**                  128 threads
**   4 attn_reduce  combines the partials of each (query, head), fp16 out.
**                  grid.x = heads, 128 threads
** Lane groups: G = head_dim/32 lanes (rounded up to a power of two P) share a
** key; lane i of a group owns dims 32i..32i+31 (16-byte loads for fp16).
**
** Prefill, dense and local heads (attn_flash): grid (T / BQ, heads), 128
** threads, P threads per query (BQ = 128/P queries per CTA); key tiles of 32
** decoded into shared memory (fp32), online softmax; only the tiles between
** the CTA's first query's span start and its last query's position are read,
** so a local head costs window/context of a dense one.
*/
#include "kernels/cuda/kv.cuh"

#include <math.h>
#include <string.h>

#define ATTN_THREADS 128
#define ATTN_SUB 256          /* units per sub-chunk of a split CTA */
#define ATTN_MAX_SPLIT 1024
#define ATTN_SEL_THREADS 512
#define ATTN_FLASH_BK 32

enum { HT_DENSE = QSR_HEAD_DENSE, HT_TOPK = QSR_HEAD_TOPK, HT_LOCAL = QSR_HEAD_LOCAL };

struct attn_p {
  int heads, kv_heads, d, grp;    /* grp = heads / kv_heads */
  int window, topk, paged, sw;
  float scale;
  int kvfmt;
  uint32_t vec_bytes;
  int max_ctx, page, len, npages; /* npages = qsr_kvcache_pages */
  const uint8_t *k, *v;
  const float *kmin, *kmax;
  const __half *q;
  __half *out;
  int T;                          /* queries of the call (decode 1) */
  int t0;                         /* first query of this pass */
  int prefill;                    /* pipeline runs top-k heads only */
  float *scores;                  /* [pass q][heads][max_ctx] */
  float *bounds;                  /* [pass q][heads][npages] */
  int *plist;                     /* [pass q][heads][npages] */
  int *sel;                       /* [pass q][heads][4]: thr key, cut, kept pages */
  float *part;                    /* [pass q][heads][nsplit][d + 2] */
  int nsplit, chunk;
  uint8_t type[QSR_CUDA_MAX_HEADS];
};

/* ---- spans --------------------------------------------------------------------- */

__device__ __forceinline__ int attn_lenq(const attn_p &p, int tq) { return p.len - p.T + p.t0 + tq + 1; }
__device__ __forceinline__ int dense_lo(const attn_p &p, int lenq) {
  return p.sw > 0 ? max(0, lenq - p.sw) : 0;
}
__device__ __forceinline__ int local_lo(const attn_p &p, int lenq) {
  return max(dense_lo(p, lenq), lenq - p.window);
}
__device__ __forceinline__ bool pipe_active(const attn_p &p, int h) {
  return !p.prefill || p.type[h] == HT_TOPK;
}
__device__ __forceinline__ size_t qh_index(const attn_p &p, int tq, int h) {
  return (size_t)tq * p.heads + h;
}
__device__ __forceinline__ const uint8_t *kv_vec(const attn_p &p, const uint8_t *base, int kvh, int j) {
  return base + ((size_t)kvh * p.max_ctx + j) * p.vec_bytes;
}

/* Order-preserving key of a float (larger float, larger key; -0 as +0). */
__device__ __forceinline__ uint32_t fkey(float f) {
  uint32_t u = __float_as_uint(f == 0.0f ? 0.0f : f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* ---- 1: scores of top-k heads ------------------------------------------------------ */

template <int KVF, int P>
static __global__ void __launch_bounds__(ATTN_THREADS) attn_score(const attn_p p) {
  const int h = blockIdx.y, tq = blockIdx.z;
  if (!(p.type[h] == HT_TOPK && !p.paged)) return;
  const int lenq = attn_lenq(p, tq), lo = dense_lo(p, lenq), n = lenq - lo;
  const int u0 = blockIdx.x * ATTN_SUB;
  if (u0 >= n) return;
  const int G = p.d / 32, NG = ATTN_THREADS / P;
  const int g = threadIdx.x / P, sub = threadIdx.x % P, kvh = h / p.grp;
  float qf[32];
  const __half *q = p.q + qh_index(p, p.t0 + tq, h) * p.d;
#pragma unroll
  for (int x = 0; x < 32; x++) qf[x] = sub < G ? __half2float(q[32 * sub + x]) : 0.0f;
  float *out = p.scores + qh_index(p, tq, h) * p.max_ctx;
  const int end = min(n, u0 + ATTN_SUB);
  for (int base = u0; base < end; base += NG) {
    const int u = base + g;
    float part = 0.0f;
    if (u < end && sub < G) {
      float kf[32];
      kv_load32<KVF>(kv_vec(p, p.k, kvh, lo + u), p.d, sub, kf);
#pragma unroll
      for (int x = 0; x < 32; x++) part = fmaf(qf[x], kf[x], part);
    }
    const float s = group_sum<P>(part) * p.scale;
    if (u < end && sub == 0) out[lo + u] = s;
  }
}

/* ---- 1: page bounds of paged heads ------------------------------------------------- */

static __global__ void __launch_bounds__(ATTN_THREADS) attn_bound(const attn_p p) {
  const int h = blockIdx.y, tq = blockIdx.z;
  if (!(p.type[h] == HT_TOPK && p.paged)) return;
  const int lenq = attn_lenq(p, tq), lo = dense_lo(p, lenq);
  const int plo = lo / p.page, phi = (lenq - 1) / p.page;
  const int pg = plo + blockIdx.x * (ATTN_THREADS / 32) + (threadIdx.x >> 5);
  if (pg > phi) return;
  const int lane = threadIdx.x & 31, kvh = h / p.grp;
  const __half *q = p.q + qh_index(p, p.t0 + tq, h) * p.d;
  const size_t so = ((size_t)kvh * p.npages + pg) * p.d;
  float b = 0.0f;
  for (int c = lane; c < p.d; c += 32) {
    const float qc = __half2float(q[c]);
    b += fmaxf(qc * p.kmin[so + c], qc * p.kmax[so + c]);
  }
  b = warp_sum(b);
  if (lane == 0) p.bounds[qh_index(p, tq, h) * p.npages + pg] = b;
}

/* ---- 2: selection ------------------------------------------------------------------ */

/* Exclusive rank of a flag among the block's flags in thread order, and the
** block's count. Uses wsum[ATTN_SEL_THREADS/32]; all threads must call. */
__device__ __forceinline__ int block_rank(bool flag, int *wsum, int *total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const unsigned bal = __ballot_sync(QSR_FULL_MASK, flag);
  if (lane == 0) wsum[warp] = __popc(bal);
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < nw; w++) {
    if (w < warp) before += wsum[w];
    all += wsum[w];
  }
  __syncthreads(); /* wsum is reused by the next call */
  *total = all;
  return before + __popc(bal & ((1u << lane) - 1u));
}

static __global__ void __launch_bounds__(ATTN_SEL_THREADS) attn_select(const attn_p p) {
  const int h = blockIdx.x, tq = blockIdx.y;
  if (p.type[h] != HT_TOPK) return;
  __shared__ unsigned hist[ATTN_SEL_THREADS / 32][256];
  __shared__ unsigned tot[256];
  __shared__ int wsum[ATTN_SEL_THREADS / 32];
  __shared__ uint32_t s_prefix, s_mask, s_k;
  __shared__ int s_cut;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int lenq = attn_lenq(p, tq), lo = dense_lo(p, lenq);
  const float *vals;
  int first, n, k;
  if (p.paged) {
    first = lo / p.page;
    n = (lenq - 1) / p.page - first; /* ranked: before the query's own page */
    k = (p.topk + p.page - 1) / p.page;
    vals = p.bounds + qh_index(p, tq, h) * p.npages;
  } else {
    first = lo;
    n = lenq - lo;
    k = p.topk;
    vals = p.scores + qh_index(p, tq, h) * p.max_ctx;
  }
  uint32_t thr = 0;
  int cut = INT32_MAX;
  if (k < n) {
    /* MSB-first radix select of the k-th largest key, 8 bits per pass */
    if (tid == 0) {
      s_prefix = 0;
      s_mask = 0;
      s_k = (uint32_t)k;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = tid; i < (ATTN_SEL_THREADS / 32) * 256; i += ATTN_SEL_THREADS) (&hist[0][0])[i] = 0;
      __syncthreads();
      const uint32_t prefix = s_prefix, mask = s_mask;
      for (int base = 0; base < n; base += ATTN_SEL_THREADS) {
        const int i = base + tid;
        uint32_t key = i < n ? fkey(vals[first + i]) : 0;
        bool in = i < n && (key & mask) == prefix;
        uint32_t dig = in ? (key >> shift) & 255u : 256u + lane; /* lanes out: unique tags */
        unsigned peers = __match_any_sync(QSR_FULL_MASK, dig);
        if (in && lane == __ffs(peers) - 1) atomicAdd(&hist[warp][dig], (unsigned)__popc(peers));
      }
      __syncthreads();
      for (int b = tid; b < 256; b += ATTN_SEL_THREADS) {
        unsigned s = 0;
        for (int w = 0; w < ATTN_SEL_THREADS / 32; w++) s += hist[w][b];
        tot[b] = s;
      }
      __syncthreads();
      if (tid == 0) {
        uint32_t kk = s_k, cum = 0;
        int d = 255;
        for (; d > 0; d--) {
          if (cum + tot[d] >= kk) break;
          cum += tot[d];
        }
        s_k = kk - cum;
        s_prefix = prefix | ((uint32_t)d << shift);
        s_mask = mask | (255u << shift);
      }
      __syncthreads();
    }
    thr = s_prefix;
    const int need = (int)s_k; /* keys equal to thr to keep, >= 1 */
    /* the cut: index of the need-th key equal to thr, in index order */
    if (tid == 0) s_cut = INT32_MAX;
    int seen = 0;
    for (int base = 0; base < n; base += ATTN_SEL_THREADS) {
      const int i = base + tid;
      const bool eq = i < n && fkey(vals[first + i]) == thr;
      int all;
      const int r = block_rank(eq, wsum, &all);
      if (eq && seen + r + 1 == need) s_cut = first + i;
      seen += all;
      if (seen >= need) break; /* uniform: every thread has the same seen */
    }
    __syncthreads();
    cut = s_cut;
  }
  int *sel = p.sel + qh_index(p, tq, h) * 4;
  if (p.paged) {
    /* kept pages, ascending: the selected ones and the query's own page */
    int *list = p.plist + qh_index(p, tq, h) * p.npages;
    int kept = 0;
    for (int base = 0; base <= n; base += ATTN_SEL_THREADS) {
      const int i = base + tid;
      bool keep = i == n; /* the query's own page */
      if (i < n) {
        const uint32_t key = fkey(vals[first + i]);
        keep = key > thr || (key == thr && first + i <= cut);
      }
      int all;
      const int r = block_rank(keep, wsum, &all);
      if (keep) list[kept + r] = first + i;
      kept += all;
    }
    if (tid == 0) sel[2] = kept;
  }
  if (tid == 0) {
    sel[0] = (int)thr;
    sel[1] = cut;
  }
}

/* ---- 3: split-context attention ------------------------------------------------------ */

/* Units of (query tq, head h): count, and the key of unit u (-1: none). */
struct attn_units {
  int type, lo, lenq, n;
  const int *list;          /* paged: kept pages */
  uint32_t thr;             /* top-k: threshold key and cut */
  int cut;
  const float *scores;
};

__device__ __forceinline__ attn_units attn_units_of(const attn_p &p, int tq, int h) {
  attn_units a;
  a.type = p.type[h];
  a.lenq = attn_lenq(p, tq);
  a.list = nullptr;
  a.scores = nullptr;
  a.thr = 0;
  a.cut = 0;
  if (a.type == HT_LOCAL) {
    a.lo = local_lo(p, a.lenq);
    a.n = max(0, a.lenq - a.lo);
    return a;
  }
  a.lo = dense_lo(p, a.lenq);
  a.n = a.lenq - a.lo;
  if (a.type == HT_TOPK) {
    const int *sel = p.sel + qh_index(p, tq, h) * 4;
    if (p.paged) {
      a.list = p.plist + qh_index(p, tq, h) * p.npages;
      a.n = sel[2] * p.page;
    } else {
      a.thr = (uint32_t)sel[0];
      a.cut = sel[1];
      a.scores = p.scores + qh_index(p, tq, h) * p.max_ctx;
    }
  }
  return a;
}

__device__ __forceinline__ int attn_unit_key(const attn_p &p, const attn_units &a, int u) {
  if (a.list) {
    const int j = a.list[u / p.page] * p.page + u % p.page;
    return j >= a.lo && j < a.lenq ? j : -1;
  }
  return a.lo + u;
}

template <int KVF, int P>
static __global__ void __launch_bounds__(ATTN_THREADS) attn_split(const attn_p p) {
  const int s = blockIdx.x, h = blockIdx.y, tq = blockIdx.z;
  if (!pipe_active(p, h)) return;
  constexpr int NG = ATTN_THREADS / P;
  __shared__ float sS[ATTN_SUB];
  __shared__ float sO[NG * 32 * P];
  __shared__ float sL[NG];
  __shared__ float red[ATTN_THREADS / 32];
  const int tid = threadIdx.x, g = tid / P, sub = tid % P, G = p.d / 32;
  const int kvh = h / p.grp;
  const attn_units a = attn_units_of(p, tq, h);
  float *part = p.part + (qh_index(p, tq, h) * p.nsplit + s) * (size_t)(p.d + 2);
  const int ub = s * p.chunk, ue = min(a.n, ub + p.chunk);

  float qf[32], o[32];
  const bool scored = a.type == HT_TOPK && !p.paged; /* scores precomputed */
  const __half *q = p.q + qh_index(p, p.t0 + tq, h) * p.d;
#pragma unroll
  for (int x = 0; x < 32; x++) {
    qf[x] = !scored && sub < G ? __half2float(q[32 * sub + x]) : 0.0f;
    o[x] = 0.0f;
  }
  float M = -INFINITY, l = 0.0f;

  for (int sc = ub; sc < ue; sc += ATTN_SUB) {
    const int cnt = min(ATTN_SUB, ue - sc);
    /* pass 1: scores of the sub-chunk */
    for (int base = 0; base < cnt; base += NG) {
      const int ui = base + g;
      const int j = ui < cnt ? attn_unit_key(p, a, sc + ui) : -1;
      float sv;
      if (scored) {
        sv = -INFINITY;
        if (j >= 0) {
          const float x = a.scores[j];
          const uint32_t key = fkey(x);
          if (key > a.thr || (key == a.thr && j <= a.cut)) sv = x;
        }
      } else {
        float part_dot = 0.0f;
        if (j >= 0 && sub < G) {
          float kf[32];
          kv_load32<KVF>(kv_vec(p, p.k, kvh, j), p.d, sub, kf);
#pragma unroll
          for (int x = 0; x < 32; x++) part_dot = fmaf(qf[x], kf[x], part_dot);
        }
        sv = group_sum<P>(part_dot) * p.scale;
        if (j < 0) sv = -INFINITY;
      }
      if (ui < cnt && sub == 0) sS[ui] = sv;
    }
    __syncthreads();
    /* the sub-chunk's max */
    float mx = -INFINITY;
    for (int i = tid; i < cnt; i += ATTN_THREADS) mx = fmaxf(mx, sS[i]);
    mx = warp_max(mx);
    if ((tid & 31) == 0) red[tid >> 5] = mx;
    __syncthreads();
    mx = red[0];
    for (int w = 1; w < ATTN_THREADS / 32; w++) mx = fmaxf(mx, red[w]);
    const float Mn = fmaxf(M, mx);
    if (Mn != -INFINITY) {
      const float alpha = M == -INFINITY ? 0.0f : expf(M - Mn);
      l *= alpha;
#pragma unroll
      for (int x = 0; x < 32; x++) o[x] *= alpha;
      M = Mn;
      /* pass 2: probabilities and V */
      for (int ui = g; ui < cnt; ui += NG) {
        const float sv = sS[ui];
        if (sv == -INFINITY) continue;
        const float pj = expf(sv - M);
        l += pj;
        if (sub < G) {
          float vf[32];
          kv_load32<KVF>(kv_vec(p, p.v, kvh, attn_unit_key(p, a, sc + ui)), p.d, sub, vf);
#pragma unroll
          for (int x = 0; x < 32; x++) o[x] = fmaf(pj, vf[x], o[x]);
        }
      }
    }
    __syncthreads(); /* sS and red are rewritten next sub-chunk */
  }

  /* the groups share M: their o and l just add */
  if (sub < G) {
#pragma unroll
    for (int x = 0; x < 32; x++) sO[g * p.d + 32 * sub + x] = o[x];
  }
  if (sub == 0) sL[g] = l;
  __syncthreads();
  for (int dim = tid; dim < p.d; dim += ATTN_THREADS) {
    float acc = 0.0f;
    for (int gg = 0; gg < NG; gg++) acc += sO[gg * p.d + dim];
    part[2 + dim] = acc;
  }
  if (tid == 0) {
    float L = 0.0f;
    for (int gg = 0; gg < NG; gg++) L += sL[gg];
    part[0] = M;
    part[1] = L;
  }
}

/* ---- 4: reduction of the splits ------------------------------------------------------ */

static __global__ void __launch_bounds__(ATTN_THREADS) attn_reduce(const attn_p p) {
  const int h = blockIdx.x, tq = blockIdx.y;
  if (!pipe_active(p, h)) return;
  __shared__ float w[ATTN_MAX_SPLIT];
  __shared__ float red[ATTN_THREADS / 32];
  __shared__ float s_L;
  const int tid = threadIdx.x;
  const float *part = p.part + qh_index(p, tq, h) * p.nsplit * (size_t)(p.d + 2);
  const size_t ps = p.d + 2;
  float mx = -INFINITY;
  for (int s = tid; s < p.nsplit; s += ATTN_THREADS) mx = fmaxf(mx, part[s * ps]);
  mx = warp_max(mx);
  if ((tid & 31) == 0) red[tid >> 5] = mx;
  __syncthreads();
  float M = red[0];
  for (int i = 1; i < ATTN_THREADS / 32; i++) M = fmaxf(M, red[i]);
  for (int s = tid; s < p.nsplit; s += ATTN_THREADS) {
    const float ms = part[s * ps];
    w[s] = ms == -INFINITY ? 0.0f : expf(ms - M);
  }
  __syncthreads();
  if (tid == 0) {
    float L = 0.0f;
    for (int s = 0; s < p.nsplit; s++) L += w[s] * part[s * ps + 1];
    s_L = L;
  }
  __syncthreads();
  const float L = s_L;
  __half *out = p.out + qh_index(p, p.t0 + tq, h) * p.d;
  for (int dim = tid; dim < p.d; dim += ATTN_THREADS) {
    float acc = 0.0f;
    for (int s = 0; s < p.nsplit; s++) acc = fmaf(w[s], part[s * ps + 2 + dim], acc);
    out[dim] = __float2half_rn(L > 0.0f ? acc / L : 0.0f);
  }
}

/* ---- prefill: tiled attention for dense and local heads ------------------------------ */

template <int KVF, int P>
static __global__ void __launch_bounds__(ATTN_THREADS) attn_flash(const attn_p p) {
  const int h = blockIdx.y, type = p.type[h];
  if (type == HT_TOPK) return;
  constexpr int BQ = ATTN_THREADS / P, BK = ATTN_FLASH_BK;
  extern __shared__ float4 flash_sm[];
  const int LD = p.d + 4; /* floats per shared row: 16-byte aligned, conflict-free */
  float *Ks = (float *)flash_sm, *Vs = Ks + BK * LD;
  const int tid = threadIdx.x, g = tid / P, sub = tid % P, G = p.d / 32;
  const int kvh = h / p.grp;
  const int tfirst = blockIdx.x * BQ, tlast = min(p.T, tfirst + BQ) - 1;
  const int t = tfirst + g;
  const bool tok = t < p.T;
  /* query spans: [lo_t, pos_t] */
  const int pos = p.len - p.T + min(t, tlast);
  const int lo_t = type == HT_LOCAL ? local_lo(p, pos + 1) : dense_lo(p, pos + 1);
  const int pos_first = p.len - p.T + tfirst, pos_last = p.len - p.T + tlast;
  const int lo_first = type == HT_LOCAL ? local_lo(p, pos_first + 1) : dense_lo(p, pos_first + 1);

  /* this thread's dims: 4*(sub + P*y) + z, y < 8, z < 4 (valid while < d) */
  float4 qv[8], ov[8];
  const __half *q = p.q + ((size_t)min(t, tlast) * p.heads + h) * p.d;
#pragma unroll
  for (int y = 0; y < 8; y++) {
    const int d0 = 4 * (sub + P * y);
    ov[y] = make_float4(0.f, 0.f, 0.f, 0.f);
    qv[y] = ov[y];
    if (d0 < p.d) {
      qv[y] = make_float4(__half2float(q[d0]), __half2float(q[d0 + 1]), __half2float(q[d0 + 2]),
                          __half2float(q[d0 + 3]));
    }
  }
  float m = -INFINITY, l = 0.0f;

  for (int k0 = lo_first / BK * BK; k0 <= pos_last; k0 += BK) {
    __syncthreads(); /* the previous tile is consumed */
    for (int idx = tid; idx < 2 * BK * G; idx += ATTN_THREADS) {
      const int kv = idx / (BK * G), j = idx % BK, c = (idx / BK) % G, key = k0 + j;
      float f[32];
      if (key <= pos_last) {
        kv_load32<KVF>(kv_vec(p, kv ? p.v : p.k, kvh, key), p.d, c, f);
      } else {
#pragma unroll
        for (int x = 0; x < 32; x++) f[x] = 0.0f;
      }
      float4 *dst = (float4 *)((kv ? Vs : Ks) + j * LD + 32 * c);
#pragma unroll
      for (int z = 0; z < 8; z++) dst[z] = make_float4(f[4 * z], f[4 * z + 1], f[4 * z + 2], f[4 * z + 3]);
    }
    __syncthreads();
    float sc[BK];
    float mt = -INFINITY;
#pragma unroll
    for (int j = 0; j < BK; j++) {
      const float *kr = Ks + j * LD;
      float part = 0.0f;
#pragma unroll
      for (int y = 0; y < 8; y++) {
        const int d0 = 4 * (sub + P * y);
        if (d0 < p.d) {
          const float4 kv = *(const float4 *)(kr + d0);
          part = fmaf(qv[y].x, kv.x, part);
          part = fmaf(qv[y].y, kv.y, part);
          part = fmaf(qv[y].z, kv.z, part);
          part = fmaf(qv[y].w, kv.w, part);
        }
      }
      const int key = k0 + j;
      float sv = group_sum<P>(part) * p.scale;
      if (!tok || key < lo_t || key > pos) sv = -INFINITY;
      sc[j] = sv;
      mt = fmaxf(mt, sv);
    }
    const float mn = fmaxf(m, mt);
    if (mn == -INFINITY) continue;
    const float alpha = m == -INFINITY ? 0.0f : expf(m - mn);
    l *= alpha;
#pragma unroll
    for (int y = 0; y < 8; y++) {
      ov[y].x *= alpha;
      ov[y].y *= alpha;
      ov[y].z *= alpha;
      ov[y].w *= alpha;
    }
    m = mn;
#pragma unroll
    for (int j = 0; j < BK; j++) {
      if (sc[j] == -INFINITY) continue;
      const float pj = expf(sc[j] - m);
      l += pj;
      const float *vr = Vs + j * LD;
#pragma unroll
      for (int y = 0; y < 8; y++) {
        const int d0 = 4 * (sub + P * y);
        if (d0 < p.d) {
          const float4 vv = *(const float4 *)(vr + d0);
          ov[y].x = fmaf(pj, vv.x, ov[y].x);
          ov[y].y = fmaf(pj, vv.y, ov[y].y);
          ov[y].z = fmaf(pj, vv.z, ov[y].z);
          ov[y].w = fmaf(pj, vv.w, ov[y].w);
        }
      }
    }
  }
  if (!tok) return;
  __half *out = p.out + ((size_t)t * p.heads + h) * p.d;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int y = 0; y < 8; y++) {
    const int d0 = 4 * (sub + P * y);
    if (d0 < p.d) {
      out[d0] = __float2half_rn(ov[y].x * inv);
      out[d0 + 1] = __float2half_rn(ov[y].y * inv);
      out[d0 + 2] = __float2half_rn(ov[y].z * inv);
      out[d0 + 3] = __float2half_rn(ov[y].w * inv);
    }
  }
}

/* ---- host side ---------------------------------------------------------------------- */

static int pow2_ceil(int g) {
  int p = 1;
  while (p < g) p <<= 1;
  return p;
}

/* Which head types occur among the heads. */
struct attn_kinds {
  int dense, local, topk;
};

static attn_kinds attn_kinds_of(const qsr_attn_cfg *cfg) {
  attn_kinds k = { 0, 0, 0 };
  for (int h = 0; h < cfg->heads; h++) {
    int t = cfg->head_type ? (int)cfg->head_type[h] : (int)QSR_HEAD_DENSE;
    if (t == QSR_HEAD_TOPK) k.topk = 1;
    else if (t == QSR_HEAD_LOCAL) k.local = 1;
    else k.dense = 1;
  }
  return k;
}

/* Most splits per (query, head): chunks of >= 32 units, <= ATTN_MAX_SPLIT. */
static int attn_ns_max(const qsr_kvcache *c) {
  int n = (c->max_ctx + c->page + 31) / 32;
  return n < 1 ? 1 : (n > ATTN_MAX_SPLIT ? ATTN_MAX_SPLIT : n);
}

/* Scratch regions, 256-byte aligned, for passes of qc queries. */
struct attn_scratch {
  uint64_t part, scores, bounds, plist, sel, total;
};

static uint64_t al256(uint64_t n) { return (n + 255) / 256 * 256; }

static attn_scratch attn_scratch_of(const qsr_attn_cfg *cfg, const qsr_kvcache *c, int qc) {
  attn_scratch s;
  attn_kinds k = attn_kinds_of(cfg);
  const uint64_t qh = (uint64_t)qc * (uint64_t)cfg->heads;
  const uint64_t np = (uint64_t)qsr_kvcache_pages(c);
  s.part = 0;
  s.scores = s.part + al256(qh * attn_ns_max(c) * (uint64_t)(cfg->head_dim + 2) * 4);
  s.bounds = s.scores + (k.topk && !cfg->paged ? al256(qh * (uint64_t)c->max_ctx * 4) : 0);
  s.plist = s.bounds + (k.topk && cfg->paged ? al256(qh * np * 4) : 0);
  s.sel = s.plist + (k.topk && cfg->paged ? al256(qh * np * 4) : 0);
  s.total = s.sel + al256(qh * 16);
  return s;
}

/* Queries per pipeline pass: 1 for decode; prefill: top-k heads only. */
static int attn_pass_queries(const qsr_attn_cfg *cfg, int T, int decode) {
  if (decode) return 1;
  if (!attn_kinds_of(cfg).topk) return 0;
  return T < QSR_CUDA_ATTN_QCHUNK ? T : QSR_CUDA_ATTN_QCHUNK;
}

uint64_t qsr_cuda_attn_scratch_bytes(const qsr_attn_cfg *cfg, const qsr_kvcache *cache, int T) {
  if (!cfg || !cache || T < 1) return 0;
  const int qc = T == 1 ? 1 : attn_pass_queries(cfg, T, 0); /* T == 1: decode or prefill */
  if (qc == 0) return 0;
  return attn_scratch_of(cfg, cache, qc).total;
}

static int attn_check(const char *fn, const qsr_attn_cfg *cfg, const qsr_kvcache *c, int T,
                      const uint16_t *q, const uint16_t *out, char **err) {
  if (!cfg || !c || !q || !out) return CFG_FAIL("%s: missing argument", fn);
  if (cfg->heads < 1 || cfg->heads > QSR_CUDA_MAX_HEADS || cfg->kv_heads < 1 ||
      cfg->heads % cfg->kv_heads)
    return CFG_FAIL("%s: heads %d, kv_heads %d (heads <= %d, a multiple of kv_heads)", fn,
                    cfg->heads, cfg->kv_heads, QSR_CUDA_MAX_HEADS);
  if (cfg->head_dim < 32 || cfg->head_dim % 32 || cfg->head_dim > QSR_CUDA_MAX_HEAD_DIM)
    return CFG_FAIL("%s: head_dim %d (a multiple of 32, <= %d)", fn, cfg->head_dim,
                    QSR_CUDA_MAX_HEAD_DIM);
  if (c->kv_heads != cfg->kv_heads || c->head_dim != cfg->head_dim ||
      c->vec_bytes != qsr_kv_vec_bytes(c->kvfmt, (uint32_t)c->head_dim) || c->kvfmt < 0 ||
      c->kvfmt >= QSR_KVFMT_COUNT || !c->k || !c->v)
    return CFG_FAIL("%s: cache layout does not match the attention config", fn);
  if (T < 1 || c->len < T || c->len > c->max_ctx)
    return CFG_FAIL("%s: %d queries, cache len %d of %d", fn, T, c->len, c->max_ctx);
  attn_kinds k = attn_kinds_of(cfg);
  for (int h = 0; cfg->head_type && h < cfg->heads; h++)
    if (cfg->head_type[h] >= QSR_HEAD_COUNT)
      return CFG_FAIL("%s: head %d type %d", fn, h, cfg->head_type[h]);
  if (k.topk && cfg->topk < 1) return CFG_FAIL("%s: top-k heads need topk >= 1", fn);
  if (k.topk && cfg->paged && (c->page < 1 || !c->kmin || !c->kmax))
    return CFG_FAIL("%s: paged top-k needs page summaries in the cache", fn);
  if (cfg->sliding_window < 0) return CFG_FAIL("%s: sliding_window < 0", fn);
  return QSR_OK;
}

static attn_p attn_params(const qsr_attn_cfg *cfg, const qsr_kvcache *c, int T, const uint16_t *q,
                          uint16_t *out) {
  attn_p p;
  memset(&p, 0, sizeof p);
  p.heads = cfg->heads;
  p.kv_heads = cfg->kv_heads;
  p.d = cfg->head_dim;
  p.grp = cfg->heads / cfg->kv_heads;
  p.window = cfg->window;
  p.topk = cfg->topk;
  p.paged = cfg->paged ? 1 : 0;
  p.sw = cfg->sliding_window;
  p.scale = cfg->scale;
  p.kvfmt = c->kvfmt;
  p.vec_bytes = c->vec_bytes;
  p.max_ctx = c->max_ctx;
  p.page = c->page;
  p.len = c->len;
  p.npages = qsr_kvcache_pages(c);
  p.k = c->k;
  p.v = c->v;
  p.kmin = c->kmin;
  p.kmax = c->kmax;
  p.q = (const __half *)q;
  p.out = (__half *)out;
  p.T = T;
  for (int h = 0; h < cfg->heads; h++)
    p.type[h] = (uint8_t)(cfg->head_type ? (int)cfg->head_type[h] : (int)QSR_HEAD_DENSE);
  return p;
}

/* Most units any active (query, head) of a pass can have: sizes the split. */
static int attn_units_max(const attn_p &p, int lenq_last) {
  int u = 0;
  const int dense_n = p.sw > 0 && p.sw < lenq_last ? p.sw : lenq_last;
  for (int h = 0; h < p.heads; h++) {
    if (p.prefill && p.type[h] != HT_TOPK) continue;
    int n = dense_n;
    if (p.type[h] == HT_LOCAL) n = p.window < n ? (p.window > 0 ? p.window : 0) : n;
    else if (p.type[h] == HT_TOPK && p.paged) {
      const int lo = lenq_last - dense_n;
      const int span_pages = (lenq_last - 1) / p.page - lo / p.page + 1;
      int kp = (p.topk + p.page - 1) / p.page + 1;
      n = (kp < span_pages ? kp : span_pages) * p.page;
    }
    if (n > u) u = n;
  }
  return u;
}

template <int KVF, int P>
static void attn_pipeline_launch(const attn_p &p, int nq, bool any_exact, bool any_paged,
                                 cudaStream_t s) {
  const int lenq_last = p.len - p.T + p.t0 + nq;
  if (any_exact) {
    const int n = p.sw > 0 && p.sw < lenq_last ? p.sw : lenq_last;
    attn_score<KVF, P><<<dim3((n + ATTN_SUB - 1) / ATTN_SUB, p.heads, nq), ATTN_THREADS, 0, s>>>(p);
  }
  if (any_paged) {
    const int n = (p.sw > 0 && p.sw < lenq_last ? p.sw : lenq_last) / p.page + 2;
    attn_bound<<<dim3((n + 3) / 4, p.heads, nq), ATTN_THREADS, 0, s>>>(p);
  }
  if (any_exact || any_paged) attn_select<<<dim3(p.heads, nq), ATTN_SEL_THREADS, 0, s>>>(p);
  attn_split<KVF, P><<<dim3(p.nsplit, p.heads, nq), ATTN_THREADS, 0, s>>>(p);
  attn_reduce<<<dim3(p.heads, nq), ATTN_THREADS, 0, s>>>(p);
}

template <int KVF>
static void attn_pipeline_kvf(const attn_p &p, int nq, bool ex, bool pg, cudaStream_t s) {
  switch (pow2_ceil(p.d / 32)) {
  case 1: attn_pipeline_launch<KVF, 1>(p, nq, ex, pg, s); break;
  case 2: attn_pipeline_launch<KVF, 2>(p, nq, ex, pg, s); break;
  case 4: attn_pipeline_launch<KVF, 4>(p, nq, ex, pg, s); break;
  case 8: attn_pipeline_launch<KVF, 8>(p, nq, ex, pg, s); break;
  default: attn_pipeline_launch<KVF, 16>(p, nq, ex, pg, s); break;
  }
}

/* One pass of the pipeline over queries t0 .. t0+nq-1 of p.T. Splits: enough
** CTAs for 4 per multiprocessor, chunks of at least 32 keys, at most ns_max. */
static int attn_pipeline(attn_p p, int t0, int nq, int ns_max, cudaStream_t s, char **err) {
  p.t0 = t0;
  const int lenq_last = p.len - p.T + t0 + nq;
  const int units = attn_units_max(p, lenq_last);
  int dev = 0, sms = 0;
  CUDA_RET(cudaGetDevice(&dev));
  CUDA_RET(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int want = (4 * sms + p.heads * nq - 1) / (p.heads * nq); /* splits per (query, head) */
  int chunk = (units + (want < 1 ? 1 : want) - 1) / (want < 1 ? 1 : want);
  const int lo = (units + ns_max - 1) / ns_max;                  /* keeps nsplit <= ns_max */
  if (chunk < lo) chunk = lo;
  chunk = (chunk < 32 ? 32 : (chunk + 31) / 32 * 32);
  p.chunk = chunk;
  p.nsplit = units > 0 ? (units + chunk - 1) / chunk : 1;
  bool ex = false, pg = false;
  for (int h = 0; h < p.heads; h++)
    if (p.type[h] == HT_TOPK) (p.paged ? pg : ex) = true;
  switch (p.kvfmt) {
  case QSR_KVFMT_FP16: attn_pipeline_kvf<QSR_KVFMT_FP16>(p, nq, ex, pg, s); break;
  case QSR_KVFMT_INT8: attn_pipeline_kvf<QSR_KVFMT_INT8>(p, nq, ex, pg, s); break;
  default: attn_pipeline_kvf<QSR_KVFMT_INT4>(p, nq, ex, pg, s); break;
  }
  CUDA_LAUNCHED();
  return QSR_OK;
}

static void attn_bind_scratch(attn_p &p, void *scratch, const attn_scratch &sc) {
  uint8_t *b = (uint8_t *)scratch;
  p.part = (float *)(b + sc.part);
  p.scores = (float *)(b + sc.scores);
  p.bounds = (float *)(b + sc.bounds);
  p.plist = (int *)(b + sc.plist);
  p.sel = (int *)(b + sc.sel);
}

int qsr_cuda_attn_decode(const qsr_attn_cfg *cfg, const qsr_kvcache *cache, const uint16_t *q,
                         uint16_t *out, void *scratch, uint64_t scratch_bytes, void *stream,
                         char **err) {
  int rc = attn_check(__func__, cfg, cache, 1, q, out, err);
  if (rc) return rc;
  const attn_scratch sc = attn_scratch_of(cfg, cache, 1);
  if (!scratch || scratch_bytes < sc.total)
    return CFG_FAIL("%s: scratch of %llu bytes, need %llu", __func__,
                    (unsigned long long)scratch_bytes, (unsigned long long)sc.total);
  attn_p p = attn_params(cfg, cache, 1, q, out);
  attn_bind_scratch(p, scratch, sc);
  return attn_pipeline(p, 0, 1, attn_ns_max(cache), QSR_CUDA_STREAM(stream), err);
}

template <int KVF, int P>
static int attn_flash_launch(const attn_p &p, cudaStream_t s, char **err) {
  const size_t smem = 2u * ATTN_FLASH_BK * (size_t)(p.d + 4) * sizeof(float);
  if (smem > 48 * 1024) {
    int dev = 0, optin = 0;
    CUDA_RET(cudaGetDevice(&dev));
    CUDA_RET(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if ((size_t)optin < smem)
      return CFG_FAIL("%s: head_dim %d needs %zu bytes of shared memory, the device has %d",
                      __func__, p.d, smem, optin);
    CUDA_RET(cudaFuncSetAttribute(attn_flash<KVF, P>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem));
  }
  constexpr int BQ = ATTN_THREADS / P;
  attn_flash<KVF, P><<<dim3((p.T + BQ - 1) / BQ, p.heads), ATTN_THREADS, smem, s>>>(p);
  CUDA_LAUNCHED();
  return QSR_OK;
}

template <int KVF>
static int attn_flash_kvf(const attn_p &p, cudaStream_t s, char **err) {
  switch (pow2_ceil(p.d / 32)) {
  case 1: return attn_flash_launch<KVF, 1>(p, s, err);
  case 2: return attn_flash_launch<KVF, 2>(p, s, err);
  case 4: return attn_flash_launch<KVF, 4>(p, s, err);
  case 8: return attn_flash_launch<KVF, 8>(p, s, err);
  default: return attn_flash_launch<KVF, 16>(p, s, err);
  }
}

int qsr_cuda_attn_prefill(const qsr_attn_cfg *cfg, const qsr_kvcache *cache, int T,
                          const uint16_t *q, uint16_t *out, void *scratch,
                          uint64_t scratch_bytes, void *stream, char **err) {
  int rc = attn_check(__func__, cfg, cache, T, q, out, err);
  if (rc) return rc;
  cudaStream_t s = QSR_CUDA_STREAM(stream);
  attn_p p = attn_params(cfg, cache, T, q, out);
  const attn_kinds k = attn_kinds_of(cfg);
  if (k.dense || k.local) {
    switch (p.kvfmt) {
    case QSR_KVFMT_FP16: rc = attn_flash_kvf<QSR_KVFMT_FP16>(p, s, err); break;
    case QSR_KVFMT_INT8: rc = attn_flash_kvf<QSR_KVFMT_INT8>(p, s, err); break;
    default: rc = attn_flash_kvf<QSR_KVFMT_INT4>(p, s, err); break;
    }
    if (rc) return rc;
  }
  const int qc = attn_pass_queries(cfg, T, 0);
  if (!qc) return QSR_OK;
  const attn_scratch sc = attn_scratch_of(cfg, cache, qc);
  if (!scratch || scratch_bytes < sc.total)
    return CFG_FAIL("%s: scratch of %llu bytes, need %llu", __func__,
                    (unsigned long long)scratch_bytes, (unsigned long long)sc.total);
  attn_bind_scratch(p, scratch, sc);
  p.prefill = 1;
  for (int t0 = 0; t0 < T; t0 += qc) {
    rc = attn_pipeline(p, t0, T - t0 < qc ? T - t0 : qc, attn_ns_max(cache), s, err);
    if (rc) return rc;
  }
  return QSR_OK;
}
