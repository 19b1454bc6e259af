/*
** linear.cu -- the public linear entries (gemv_<fmt>, gemm_<fmt>, the variant
** picker) and the cuBLAS fp16 reference. The kernels are in gemv.cuh and
** gemm.cuh, instantiated per format in lin_<fmt>.cu.
*/
#include "kernels/cuda/lin_inst.cuh"

#include <cublas_v2.h>

/* ---- launch dispatch by format --------------------------------------------- */

static int lin_dispatch(int gemm, const lin_args &a, const lin_tab *tab, int experts,
                        int max_pairs, cudaStream_t s) {
  switch (a.w.fmt) {
  case QSR_WFMT_FP16:
  case QSR_WFMT_BF16:
  case QSR_WFMT_FP8: return qsr_cuda_lin_float(gemm, a, tab, experts, max_pairs, s);
  case QSR_WFMT_INT: return qsr_cuda_lin_int(gemm, a, tab, experts, max_pairs, s);
  case QSR_WFMT_INT_SYM: return qsr_cuda_lin_int_sym(gemm, a, tab, experts, max_pairs, s);
  case QSR_WFMT_LOG: return qsr_cuda_lin_log(gemm, a, tab, experts, max_pairs, s);
  case QSR_WFMT_LUT: return qsr_cuda_lin_lut(gemm, a, tab, experts, max_pairs, s);
  default: return -1;
  }
}

int qsr_cuda_gemv_launch(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                         cudaStream_t s, char **err) {
  if (lin_dispatch(0, a, tab, experts, max_pairs, s))
    return CFG_FAIL("%s: no gemv kernel for fmt %d bits %d", __func__, a.w.fmt, a.w.bits);
  CUDA_LAUNCHED();
  return QSR_OK;
}

int qsr_cuda_gemm_launch(const lin_args &a, const lin_tab *tab, int experts, int max_pairs,
                         cudaStream_t s, char **err) {
  if (lin_dispatch(1, a, tab, experts, max_pairs, s))
    return CFG_FAIL("%s: no gemm kernel for fmt %d bits %d", __func__, a.w.fmt, a.w.bits);
  CUDA_LAUNCHED();
  return QSR_OK;
}

/* ---- public entries ---------------------------------------------------------- */

/* Validates a plain y = x . W^T call and fills its launch arguments. */
static int lin_prepare(const char *fn, const qsr_qmatrix *w, const uint16_t *x, int T,
                       uint16_t *y, lin_args *a, char **err) {
  int rc = qsr_cuda_check_qmatrix(w, fn, err);
  if (rc) return rc;
  if (T < 1 || !x || !y) return CFG_FAIL("%s: need T >= 1 and x, y (got T = %d)", fn, T);
  if (w->rows > INT32_MAX || w->cols > INT32_MAX)
    return CFG_FAIL("%s: matrix too large", fn);
  *a = lin_args{};
  a->w = wdesc_of(w);
  a->x = (const __half *)x;
  a->ldx = (int)w->cols;
  a->xvec = (uintptr_t)x % 16 == 0 && w->cols % 8 == 0;
  a->T = T;
  a->xmode = LIN_X_PLAIN;
  a->epi = LIN_EPI_F16;
  a->out = y;
  a->ldo = (int)w->rows;
  return QSR_OK;
}

int qsr_cuda_gemv(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y, void *stream,
                  char **err) {
  lin_args a;
  int rc = lin_prepare(__func__, w, x, T, y, &a, err);
  if (rc) return rc;
  return qsr_cuda_gemv_launch(a, nullptr, 0, 0, QSR_CUDA_STREAM(stream), err);
}

int qsr_cuda_gemm(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y, void *stream,
                  char **err) {
  lin_args a;
  int rc = lin_prepare(__func__, w, x, T, y, &a, err);
  if (rc) return rc;
  return qsr_cuda_gemm_launch(a, nullptr, 0, 0, QSR_CUDA_STREAM(stream), err);
}

int qsr_cuda_linear(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y, void *stream,
                    char **err) {
  if (!w) return CFG_FAIL("%s: no matrix", __func__);
  int v = qsr_kvariant_linear(w->fmt, T);
  if (v >= QSR_KVAR_GEMM_FP16 && v <= QSR_KVAR_GEMM_LUT) return qsr_cuda_gemm(w, x, T, y, stream, err);
  return qsr_cuda_gemv(w, x, T, y, stream, err);
}

/* ---- cuBLAS reference ---------------------------------------------------------- */

#define QSR_CUDA_MAX_DEVICES 16
static thread_local cublasHandle_t tl_cublas[QSR_CUDA_MAX_DEVICES];

#define CUBLAS_RET(x)                                                                  \
  do {                                                                                 \
    cublasStatus_t s_ = (x);                                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                   \
      return qsr_errf(err, QSR_ERR_CUDA, "%s:%d: %s: %s: %s", __FILE__, __LINE__, __func__, \
                      #x, cublasGetStatusString(s_));                                  \
  } while (0)

void qsr_cuda_release(void) {
  for (int i = 0; i < QSR_CUDA_MAX_DEVICES; i++)
    if (tl_cublas[i]) {
      (void)cublasDestroy(tl_cublas[i]);
      tl_cublas[i] = nullptr;
    }
}

int qsr_cuda_gemm_cublas_f16(const qsr_qmatrix *w, const uint16_t *x, int T, uint16_t *y,
                             void *stream, char **err) {
  lin_args a;
  int rc = lin_prepare(__func__, w, x, T, y, &a, err);
  if (rc) return rc;
  if (w->fmt != QSR_WFMT_FP16) return CFG_FAIL("%s: needs fp16 weights (fmt %d)", __func__, w->fmt);
  int dev = 0;
  CUDA_RET(cudaGetDevice(&dev));
  if (dev < 0 || dev >= QSR_CUDA_MAX_DEVICES) return CFG_FAIL("%s: device %d", __func__, dev);
  if (!tl_cublas[dev]) CUBLAS_RET(cublasCreate(&tl_cublas[dev]));
  cublasHandle_t h = tl_cublas[dev];
  CUBLAS_RET(cublasSetStream(h, QSR_CUDA_STREAM(stream)));
  /* column-major view: Y^T (rows x T, ld rows) = W (cols x rows, ld cols)^T . X^T (cols x T) */
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_RET(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)w->rows, T, (int)w->cols, &alpha,
                          w->data, CUDA_R_16F, (int)w->cols, x, CUDA_R_16F, (int)w->cols, &beta,
                          y, CUDA_R_16F, (int)w->rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return QSR_OK;
}
