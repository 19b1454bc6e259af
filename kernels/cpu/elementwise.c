/*
** elementwise.c -- rmsnorm_add, layernorm_add, silu_gate, gelu, embedding on
** the CPU. Memory-bound one-pass loops; sums in double where a row is long.
*/
#include "kernels/cpu/cpu.h"

#include "kernels/cpu/cpu_int.h"

#include <math.h>
#include <stddef.h>

void qsr_cpu_rmsnorm_add(const float *x, float *res, const float *w, float eps, int T, int n,
                         float *out) {
  for (int t = 0; t < T; t++) {
    const float *xt = x + (size_t)t * n;
    float *v = res ? res + (size_t)t * n : (float *)xt, *o = out + (size_t)t * n;
    double ss = 0;
    for (int i = 0; i < n; i++) {
      if (res) v[i] += xt[i];
      ss += (double)v[i] * v[i];
    }
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) o[i] = v[i] * r * w[i];
  }
}

void qsr_cpu_layernorm_add(const float *x, float *res, const float *w, const float *b,
                           float eps, int T, int n, float *out) {
  for (int t = 0; t < T; t++) {
    const float *xt = x + (size_t)t * n;
    float *v = res ? res + (size_t)t * n : (float *)xt, *o = out + (size_t)t * n;
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) {
      if (res) v[i] += xt[i];
      s += v[i];
    }
    double mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    float r = (float)(1.0 / sqrt(ss / n + eps)), mf = (float)mean;
    for (int i = 0; i < n; i++) o[i] = (v[i] - mf) * r * w[i] + (b ? b[i] : 0.0f);
  }
}

void qsr_cpu_silu_gate(const float *gate, const float *up, int64_t n, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void qsr_cpu_gelu(const float *x, int64_t n, float *out) {
  const float k = 0.7978845608028654f; /* sqrt(2/pi) */
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    out[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
  }
}

void qsr_cpu_embedding(const qsr_qmatrix *table, const int32_t *ids, int T, float *out) {
  for (int t = 0; t < T; t++) qsr_cpu_dequant_row(table, (uint32_t)ids[t], out + (size_t)t * table->cols);
}
