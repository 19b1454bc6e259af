/*
** elementwise.cu -- rmsnorm_add, layernorm_add, silu_gate, gelu, embedding.
** fp16 in and out, fp32 math (the C kernels sum the norms in double; the
** fp32 block sums here differ by rounding only).
**
**   rmsnorm_add, layernorm_add  a CTA of 256 threads per row; the row is
**                               re-read per pass (L1/L2), never staged
**   silu_gate, gelu             grid-stride, 256 threads, one value per step
**   embedding                   a CTA of 256 threads per token, the generic
**                               decode of common.cuh (any weight format)
*/
#include "kernels/cuda/common.cuh"

#include <math.h>

#define EW_THREADS 256

/* Sum over the block (all threads must call); red: EW_THREADS/32 floats. */
__device__ __forceinline__ float block_sum(float v, float *red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads(); /* red may still be read from the previous call */
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.0f;
  for (int w = 0; w < EW_THREADS / 32; w++) s += red[w];
  return s;
}

/* res (if any) + x at i, in fp32. */
__device__ __forceinline__ float sum_at(const __half *x, const __half *res, int i) {
  return res ? __half2float(res[i]) + __half2float(x[i]) : __half2float(x[i]);
}

static __global__ void __launch_bounds__(EW_THREADS)
    rmsnorm_k(const __half *x, __half *res, const float *w, float eps, int n, __half *out) {
  __shared__ float red[EW_THREADS / 32];
  const size_t row = (size_t)blockIdx.x * n;
  const __half *xr = x + row;
  __half *rr = res ? res + row : nullptr;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += EW_THREADS) {
    const float v = sum_at(xr, rr, i);
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, red);
  const float r = 1.0f / sqrtf(ss / (float)n + eps);
  /* each thread rewrites res only at the indices it read above */
  for (int i = threadIdx.x; i < n; i += EW_THREADS) {
    const float v = sum_at(xr, rr, i);
    if (rr) rr[i] = __float2half_rn(v);
    out[row + i] = __float2half_rn(v * r * w[i]);
  }
}

static __global__ void __launch_bounds__(EW_THREADS)
    layernorm_k(const __half *x, __half *res, const float *w, const float *b, float eps, int n,
                __half *out) {
  __shared__ float red[EW_THREADS / 32];
  const size_t row = (size_t)blockIdx.x * n;
  const __half *xr = x + row;
  __half *rr = res ? res + row : nullptr;
  float s = 0.0f;
  for (int i = threadIdx.x; i < n; i += EW_THREADS) s += sum_at(xr, rr, i);
  const float mean = block_sum(s, red) / (float)n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += EW_THREADS) {
    const float dv = sum_at(xr, rr, i) - mean;
    ss = fmaf(dv, dv, ss);
  }
  const float r = 1.0f / sqrtf(block_sum(ss, red) / (float)n + eps);
  for (int i = threadIdx.x; i < n; i += EW_THREADS) {
    const float v = sum_at(xr, rr, i);
    if (rr) rr[i] = __float2half_rn(v);
    out[row + i] = __float2half_rn((v - mean) * r * w[i] + (b ? b[i] : 0.0f));
  }
}

static __global__ void __launch_bounds__(EW_THREADS)
    silu_gate_k(const __half *g, const __half *u, int64_t n, __half *out) {
  for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * EW_THREADS)
    out[i] = __float2half_rn(silu_f(__half2float(g[i])) * __half2float(u[i]));
}

static __global__ void __launch_bounds__(EW_THREADS) gelu_k(const __half *x, int64_t n, __half *out) {
  for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * EW_THREADS)
    out[i] = __float2half_rn(gelu_f(__half2float(x[i])));
}

static __global__ void __launch_bounds__(EW_THREADS)
    embedding_k(const wdesc w, const int32_t *ids, __half *out) {
  const int t = blockIdx.x;
  const int32_t id = ids[t];
  __half *o = out + (size_t)t * w.cols;
  const bool ok = id >= 0 && (uint32_t)id < w.rows;
  for (uint32_t c = threadIdx.x; c < w.cols; c += EW_THREADS)
    o[c] = __float2half_rn(ok ? wdecode(w, (uint32_t)id, c) : 0.0f);
}

/* ---- launchers and entries ----------------------------------------------------- */

static unsigned ew_grid(int64_t n) {
  int64_t b = (n + EW_THREADS - 1) / EW_THREADS;
  return (unsigned)(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

int qsr_cuda_rmsnorm_add(const uint16_t *x, uint16_t *res, const float *w, float eps, int T,
                         int n, uint16_t *out, void *stream, char **err) {
  if (!x || !w || !out || T < 1 || n < 1) return CFG_FAIL("%s: bad arguments", __func__);
  rmsnorm_k<<<T, EW_THREADS, 0, QSR_CUDA_STREAM(stream)>>>(
      (const __half *)x, (__half *)res, w, eps, n, (__half *)out);
  CUDA_LAUNCHED();
  return QSR_OK;
}

int qsr_cuda_layernorm_add(const uint16_t *x, uint16_t *res, const float *w, const float *b,
                           float eps, int T, int n, uint16_t *out, void *stream, char **err) {
  if (!x || !w || !out || T < 1 || n < 1) return CFG_FAIL("%s: bad arguments", __func__);
  layernorm_k<<<T, EW_THREADS, 0, QSR_CUDA_STREAM(stream)>>>(
      (const __half *)x, (__half *)res, w, b, eps, n, (__half *)out);
  CUDA_LAUNCHED();
  return QSR_OK;
}

int qsr_cuda_silu_gate(const uint16_t *gate, const uint16_t *up, int64_t n, uint16_t *out,
                       void *stream, char **err) {
  if (!gate || !up || !out || n < 0) return CFG_FAIL("%s: bad arguments", __func__);
  if (n == 0) return QSR_OK;
  silu_gate_k<<<ew_grid(n), EW_THREADS, 0, QSR_CUDA_STREAM(stream)>>>(
      (const __half *)gate, (const __half *)up, n, (__half *)out);
  CUDA_LAUNCHED();
  return QSR_OK;
}

int qsr_cuda_gelu(const uint16_t *x, int64_t n, uint16_t *out, void *stream, char **err) {
  if (!x || !out || n < 0) return CFG_FAIL("%s: bad arguments", __func__);
  if (n == 0) return QSR_OK;
  gelu_k<<<ew_grid(n), EW_THREADS, 0, QSR_CUDA_STREAM(stream)>>>((const __half *)x, n,
                                                                 (__half *)out);
  CUDA_LAUNCHED();
  return QSR_OK;
}

int qsr_cuda_embedding(const qsr_qmatrix *table, const int32_t *ids, int T, uint16_t *out,
                       void *stream, char **err) {
  int rc = qsr_cuda_check_qmatrix(table, __func__, err);
  if (rc) return rc;
  if (!ids || !out || T < 1) return CFG_FAIL("%s: bad arguments", __func__);
  embedding_k<<<T, EW_THREADS, 0, QSR_CUDA_STREAM(stream)>>>(wdesc_of(table), ids,
                                                            (__half *)out);
  CUDA_LAUNCHED();
  return QSR_OK;
}
