/* lin_int_sym.cu -- gemv_int_sym / gemm_int_sym instances (lin_inst.cuh). */
#include "kernels/cuda/lin_inst.cuh"

LIN_PACKED(qsr_cuda_lin_int_sym, QSR_WFMT_INT_SYM)
