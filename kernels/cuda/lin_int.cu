/* lin_int.cu -- gemv_int / gemm_int instances (lin_inst.cuh). */
#include "kernels/cuda/lin_inst.cuh"

LIN_PACKED(qsr_cuda_lin_int, QSR_WFMT_INT)
