/*
** lin_inst.cuh -- instantiation of the gemv and gemm templates for one weight
** format, one bit width per case; each lin_<fmt>.cu holds one format so that
** nvcc compiles the formats in parallel (make -j).
*/
#ifndef QSR_CUDA_LIN_INST_CUH
#define QSR_CUDA_LIN_INST_CUH

#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/gemv.cuh"

/* Returns 0, or -1 when the bit width has no instance. */
#define LIN_CASE(FMT, BITS)                                                      \
  case BITS:                                                                     \
    if (gemm) gemm_launch_fb<FMT, BITS>(a, tab, experts, max_pairs, s);          \
    else gemv_launch_fb<FMT, BITS>(a, tab, experts, max_pairs, s);               \
    return 0;

#define LIN_LAUNCH_FN(NAME) \
  int NAME(int gemm, const lin_args &a, const lin_tab *tab, int experts, int max_pairs, cudaStream_t s)

#define LIN_PACKED(NAME, FMT)                                                    \
  LIN_LAUNCH_FN(NAME) {                                                          \
    switch (a.w.bits) {                                                          \
      LIN_CASE(FMT, 2)                                                           \
      LIN_CASE(FMT, 3)                                                           \
      LIN_CASE(FMT, 4)                                                           \
      LIN_CASE(FMT, 5)                                                           \
      LIN_CASE(FMT, 6)                                                           \
      LIN_CASE(FMT, 8)                                                           \
    default: return -1;                                                          \
    }                                                                            \
  }

LIN_LAUNCH_FN(qsr_cuda_lin_float);  /* fp16, bf16, fp8 */
LIN_LAUNCH_FN(qsr_cuda_lin_int);
LIN_LAUNCH_FN(qsr_cuda_lin_int_sym);
LIN_LAUNCH_FN(qsr_cuda_lin_log);
LIN_LAUNCH_FN(qsr_cuda_lin_lut);

#endif
