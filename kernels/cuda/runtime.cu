/*
** runtime.cu -- devices, memory, error text, and uploads of the qmatrix.h
** layouts (weights, KV caches) to the device.
*/
#include "kernels/cuda/common.cuh"

#include <stdio.h>
#include <string.h>

int qsr_cuda_fail(const char *stmt, const char *fn, const char *file, int line, cudaError_t e,
                  char **err) {
  (void)cudaGetLastError(); /* clear a non-sticky error so later calls can run */
  return qsr_errf(err, QSR_ERR_CUDA, "%s:%d: %s: %s: %s (%s)", file, line, fn, stmt,
                  cudaGetErrorString(e), cudaGetErrorName(e));
}

/* ---- devices ----------------------------------------------------------------- */

int qsr_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError(); /* no driver / no device: not an error here */
    return 0;
  }
  return n;
}

int qsr_cuda_device_name(int dev, char *buf, int n) {
  if (buf && n > 0) buf[0] = 0;
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return QSR_ERR_CUDA;
  }
  if (buf && n > 0) snprintf(buf, (size_t)n, "%s", p.name);
  return QSR_OK;
}

int qsr_cuda_set_device(int dev, char **err) {
  CUDA_RET(cudaSetDevice(dev));
  return QSR_OK;
}

/* ---- memory ------------------------------------------------------------------ */

int qsr_cuda_malloc(void **p, size_t n, char **err) {
  *p = NULL;
  if (n == 0) return QSR_OK;
  CUDA_RET(cudaMalloc(p, n));
  return QSR_OK;
}

void qsr_cuda_free(void *p) {
  if (p) (void)cudaFree(p);
}

int qsr_cuda_h2d(void *dst, const void *src, size_t n, char **err) {
  if (n) CUDA_RET(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
  return QSR_OK;
}

int qsr_cuda_d2h(void *dst, const void *src, size_t n, char **err) {
  if (n) CUDA_RET(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
  return QSR_OK;
}

int qsr_cuda_memset(void *p, int byte, size_t n, char **err) {
  if (n) CUDA_RET(cudaMemset(p, byte, n));
  return QSR_OK;
}

int qsr_cuda_sync(char **err) {
  CUDA_RET(cudaDeviceSynchronize());
  return QSR_OK;
}

/* ---- weight matrices --------------------------------------------------------- */

int qsr_cuda_check_qmatrix(const qsr_qmatrix *m, const char *fn, char **err) {
  qsr_qmatrix ref;
  if (!m) return CFG_FAIL("%s: no matrix", fn);
  if (qsr_qmatrix_layout(&ref, m->fmt, m->bits, m->group, m->rows, m->cols))
    return CFG_FAIL("%s: fmt %d bits %d group %d is not a format qformat.h defines", fn, m->fmt,
                    m->bits, m->group);
  if (ref.blocks_per_row != m->blocks_per_row || ref.groups_per_row != m->groups_per_row ||
      ref.group_codes != m->group_codes || ref.row_data_bytes != m->row_data_bytes ||
      ref.row_meta_bytes != m->row_meta_bytes)
    return CFG_FAIL("%s: matrix sizes disagree with qsr_qmatrix_layout", fn);
  if (!m->data || (m->row_meta_bytes && !m->meta))
    return CFG_FAIL("%s: matrix has no device buffers", fn);
  if ((uintptr_t)m->data % 16 || (uintptr_t)m->meta % 4)
    return CFG_FAIL("%s: matrix buffers must be 16-byte (data) and 4-byte (meta) aligned", fn);
  return QSR_OK;
}

int qsr_cuda_qmatrix_upload(const qsr_qmatrix *host, qsr_qmatrix *dev, char **err) {
  int rc = QSR_OK;
  uint64_t nd = (uint64_t)host->rows * host->row_data_bytes;
  uint64_t nm = (uint64_t)host->rows * host->row_meta_bytes;
  *dev = *host;
  dev->data = NULL;
  dev->meta = NULL;
  CUDA_OUT(cudaMalloc((void **)&dev->data, nd));
  CUDA_OUT(cudaMemcpy(dev->data, host->data, nd, cudaMemcpyHostToDevice));
  if (nm) {
    CUDA_OUT(cudaMalloc((void **)&dev->meta, nm));
    CUDA_OUT(cudaMemcpy(dev->meta, host->meta, nm, cudaMemcpyHostToDevice));
  }
out:
  if (rc) qsr_cuda_qmatrix_free(dev);
  return rc;
}

void qsr_cuda_qmatrix_free(qsr_qmatrix *dev) {
  if (!dev) return;
  qsr_cuda_free(dev->data);
  qsr_cuda_free(dev->meta);
  dev->data = NULL;
  dev->meta = NULL;
}

/* ---- KV caches --------------------------------------------------------------- */

static uint64_t kv_bytes(const qsr_kvcache *c) {
  return (uint64_t)c->kv_heads * (uint64_t)c->max_ctx * c->vec_bytes;
}
static uint64_t kv_summary_bytes(const qsr_kvcache *c) {
  return (uint64_t)c->kv_heads * (uint64_t)qsr_kvcache_pages(c) * (uint64_t)c->head_dim *
         sizeof(float);
}

int qsr_cuda_kvcache_upload(const qsr_kvcache *host, qsr_kvcache *dev, char **err) {
  int rc = QSR_OK;
  uint64_t nkv = kv_bytes(host), ns = kv_summary_bytes(host);
  *dev = *host;
  dev->k = dev->v = NULL;
  dev->kmin = dev->kmax = NULL;
  CUDA_OUT(cudaMalloc((void **)&dev->k, nkv));
  CUDA_OUT(cudaMalloc((void **)&dev->v, nkv));
  CUDA_OUT(cudaMemcpy(dev->k, host->k, nkv, cudaMemcpyHostToDevice));
  CUDA_OUT(cudaMemcpy(dev->v, host->v, nkv, cudaMemcpyHostToDevice));
  if (ns) {
    CUDA_OUT(cudaMalloc((void **)&dev->kmin, ns));
    CUDA_OUT(cudaMalloc((void **)&dev->kmax, ns));
    if (host->kmin && host->kmax) {
      CUDA_OUT(cudaMemcpy(dev->kmin, host->kmin, ns, cudaMemcpyHostToDevice));
      CUDA_OUT(cudaMemcpy(dev->kmax, host->kmax, ns, cudaMemcpyHostToDevice));
    } else {
      CUDA_OUT(cudaMemset(dev->kmin, 0, ns));
      CUDA_OUT(cudaMemset(dev->kmax, 0, ns));
    }
  }
out:
  if (rc) qsr_cuda_kvcache_free(dev);
  return rc;
}

void qsr_cuda_kvcache_free(qsr_kvcache *dev) {
  if (!dev) return;
  qsr_cuda_free(dev->k);
  qsr_cuda_free(dev->v);
  qsr_cuda_free(dev->kmin);
  qsr_cuda_free(dev->kmax);
  dev->k = dev->v = NULL;
  dev->kmin = dev->kmax = NULL;
}

int qsr_cuda_kvcache_download(const qsr_kvcache *dev, qsr_kvcache *host, char **err) {
  if (host->kvfmt != dev->kvfmt || host->kv_heads != dev->kv_heads ||
      host->head_dim != dev->head_dim || host->max_ctx != dev->max_ctx ||
      host->page != dev->page)
    return CFG_FAIL("%s: host and device caches differ in layout", __func__);
  uint64_t nkv = kv_bytes(dev), ns = kv_summary_bytes(dev);
  CUDA_RET(cudaMemcpy(host->k, dev->k, nkv, cudaMemcpyDeviceToHost));
  CUDA_RET(cudaMemcpy(host->v, dev->v, nkv, cudaMemcpyDeviceToHost));
  if (ns && host->kmin && host->kmax && dev->kmin && dev->kmax) {
    CUDA_RET(cudaMemcpy(host->kmin, dev->kmin, ns, cudaMemcpyDeviceToHost));
    CUDA_RET(cudaMemcpy(host->kmax, dev->kmax, ns, cudaMemcpyDeviceToHost));
  }
  host->len = dev->len;
  return QSR_OK;
}
