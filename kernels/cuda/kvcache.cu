/*
** kvcache.cu -- qsr_kvcache_append on the device: encode n tokens' K and V
** into the cache format and update the page summaries, bit for bit as
** quant.c does (same rounding: roundf, fp16 round-trips of scale and min,
** IEEE division via __fdiv_rn; summaries from the decoded stored keys).
**
**   kv_encode    a warp per (token, KV head, K or V) vector; 4 warps per CTA.
**                int8: warp max |x| -> scale; int4: a warp per 32-value
**                block -> min, scale; lanes own values lane + 32i.
**   kv_summary   a thread per (KV head, touched page, channel): folds the new
**                tokens of the page into kmin/kmax. grid (pages, kv_heads).
*/
#include "kernels/cuda/kv.cuh"

#include <math.h>

#define KV_WARPS 4

__device__ __forceinline__ float f16r(float x) { return qsr_f16_to_f32(qsr_f32_to_f16(x)); }

__device__ __forceinline__ float warp_min_f(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(QSR_FULL_MASK, v, o));
  return v;
}

struct kv_app {
  int kvfmt, kv_heads, d, max_ctx, page, npages;
  uint32_t vec_bytes;
  int len0, n;                 /* tokens before, tokens appended */
  const __half *k, *v;         /* [n][kv_heads][d] */
  uint8_t *ck, *cv;
  float *kmin, *kmax;
};

static __global__ void __launch_bounds__(KV_WARPS * 32) kv_encode(const kv_app a) {
  const int lane = threadIdx.x & 31;
  const int vecid = blockIdx.x * KV_WARPS + (threadIdx.x >> 5); /* (i, h, which) */
  if (vecid >= a.n * a.kv_heads * 2) return;
  const int which = vecid & 1, ih = vecid >> 1, i = ih / a.kv_heads, h = ih % a.kv_heads;
  const __half *x = (which ? a.v : a.k) + (size_t)ih * a.d;
  uint8_t *dst = (which ? a.cv : a.ck) + ((size_t)h * a.max_ctx + a.len0 + i) * a.vec_bytes;
  const int d = a.d;
  if (a.kvfmt == QSR_KVFMT_FP16) {
    uint16_t *o = (uint16_t *)dst;
    for (int c = lane; c < d; c += 32) o[c] = qsr_f32_to_f16(__half2float(x[c]));
  } else if (a.kvfmt == QSR_KVFMT_INT8) {
    float amax = 0.0f;
    for (int c = lane; c < d; c += 32) amax = fmaxf(amax, fabsf(__half2float(x[c])));
    amax = warp_max(amax);
    const float s = f16r(__fdiv_rn(amax, 127.0f));
    for (int c = lane; c < d; c += 32) {
      const float q = s > 0.0f ? roundf(__fdiv_rn(__half2float(x[c]), s)) : 0.0f;
      dst[c] = (uint8_t)(int8_t)fminf(fmaxf(q, -127.0f), 127.0f);
    }
    if (lane == 0) *(uint16_t *)(dst + d) = qsr_f32_to_f16(s);
  } else {
    uint8_t *meta = dst + d / 2;
    for (int b0 = 0; b0 < d; b0 += QSR_QBLOCK) {
      const float xv = __half2float(x[b0 + lane]);
      const float lo = warp_min_f(xv), hi = warp_max(xv);
      const float mn = f16r(lo), s = f16r(__fdiv_rn(hi - mn, 15.0f));
      const uint32_t q =
          s > 0.0f ? (uint32_t)fminf(fmaxf(roundf(__fdiv_rn(xv - mn, s)), 0.0f), 15.0f) : 0u;
      /* code i sits in byte i/2, low nibble for even i (qsr_code_put, 4 bits) */
      const uint32_t hi_code = __shfl_down_sync(QSR_FULL_MASK, q, 1);
      if (!(lane & 1)) dst[b0 / 2 + lane / 2] = (uint8_t)(q | hi_code << 4);
      if (lane == 0) {
        uint16_t *m = (uint16_t *)(meta + (b0 / QSR_QBLOCK) * 4);
        m[0] = qsr_f32_to_f16(s);
        m[1] = qsr_f32_to_f16(mn);
      }
    }
  }
}

static __global__ void __launch_bounds__(128) kv_summary(const kv_app a) {
  const int pg = a.len0 / a.page + blockIdx.x, h = blockIdx.y;
  const int t0 = max(pg * a.page, a.len0), t1 = min((pg + 1) * a.page, a.len0 + a.n);
  if (t0 >= t1) return;
  const bool fresh = pg * a.page >= a.len0; /* the page starts with the new tokens */
  const size_t so = ((size_t)h * a.npages + pg) * a.d;
  for (int c = threadIdx.x; c < a.d; c += blockDim.x) {
    float mn = fresh ? INFINITY : a.kmin[so + c], mx = fresh ? -INFINITY : a.kmax[so + c];
    for (int t = t0; t < t1; t++) {
      const float v = kv_elem(a.kvfmt, a.ck + ((size_t)h * a.max_ctx + t) * a.vec_bytes, a.d, c);
      mn = fminf(mn, v);
      mx = fmaxf(mx, v);
    }
    a.kmin[so + c] = mn;
    a.kmax[so + c] = mx;
  }
}

int qsr_cuda_kvcache_append(qsr_kvcache *dev, int n, const uint16_t *k, const uint16_t *v,
                            void *stream, char **err) {
  if (!dev || n < 0 || (n && (!k || !v)))
    return CFG_FAIL("%s: bad arguments (n = %d)", __func__, n);
  if (dev->len + n > dev->max_ctx)
    return CFG_FAIL("%s: %d + %d tokens overflow a cache of %d", __func__, dev->len, n,
                    dev->max_ctx);
  if (dev->head_dim % 32 || dev->kvfmt < 0 || dev->kvfmt >= QSR_KVFMT_COUNT || !dev->k || !dev->v ||
      dev->vec_bytes != qsr_kv_vec_bytes(dev->kvfmt, (uint32_t)dev->head_dim))
    return CFG_FAIL("%s: not a qsr_kvcache_layout cache", __func__);
  if (dev->page && (!dev->kmin || !dev->kmax))
    return CFG_FAIL("%s: paged cache without summaries", __func__);
  if (n == 0) return QSR_OK;
  cudaStream_t s = QSR_CUDA_STREAM(stream);
  kv_app a;
  a.kvfmt = dev->kvfmt;
  a.kv_heads = dev->kv_heads;
  a.d = dev->head_dim;
  a.max_ctx = dev->max_ctx;
  a.page = dev->page;
  a.npages = qsr_kvcache_pages(dev);
  a.vec_bytes = dev->vec_bytes;
  a.len0 = dev->len;
  a.n = n;
  a.k = (const __half *)k;
  a.v = (const __half *)v;
  a.ck = dev->k;
  a.cv = dev->v;
  a.kmin = dev->kmin;
  a.kmax = dev->kmax;
  const int vecs = n * dev->kv_heads * 2;
  kv_encode<<<(vecs + KV_WARPS - 1) / KV_WARPS, KV_WARPS * 32, 0, s>>>(a);
  CUDA_LAUNCHED();
  if (dev->page) {
    const int pages = (dev->len + n - 1) / dev->page - dev->len / dev->page + 1;
    kv_summary<<<dim3(pages, dev->kv_heads), 128, 0, s>>>(a);
    CUDA_LAUNCHED();
  }
  dev->len += n;
  return QSR_OK;
}
