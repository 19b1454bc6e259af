/* lin_lut.cu -- gemv_lut / gemm_lut instances (lin_inst.cuh). */
#include "kernels/cuda/lin_inst.cuh"

LIN_PACKED(qsr_cuda_lin_lut, QSR_WFMT_LUT)
