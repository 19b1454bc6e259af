/* lin_float.cu -- gemv/gemm instances for fp16, bf16 and fp8 weights (lin_inst.cuh). */
#include "kernels/cuda/lin_inst.cuh"

LIN_LAUNCH_FN(qsr_cuda_lin_float) {
  switch (a.w.fmt) {
  case QSR_WFMT_FP16:
    switch (a.w.bits) { LIN_CASE(QSR_WFMT_FP16, 16) default: return -1; }
  case QSR_WFMT_BF16:
    switch (a.w.bits) { LIN_CASE(QSR_WFMT_BF16, 16) default: return -1; }
  case QSR_WFMT_FP8:
    switch (a.w.bits) { LIN_CASE(QSR_WFMT_FP8, 8) default: return -1; }
  default: return -1;
  }
}
