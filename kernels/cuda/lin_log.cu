/* lin_log.cu -- gemv_log / gemm_log instances (lin_inst.cuh). */
#include "kernels/cuda/lin_inst.cuh"

LIN_PACKED(qsr_cuda_lin_log, QSR_WFMT_LOG)
