/*
** kbench.h -- microbenchmarks of the C kernels: each kernel variant over a
** grid of shapes (the bundled models' real shapes and a spread around them),
** timed until its median is stable, plus the host's copy bandwidth and peak
** fp32 FMA rate. Results go to a callback, one row each; the caller stores
** them (qsr bench writes the measurements table). No SQLite, no cost model.
**
** Timing: one warm-up call, then batches of 5 repetitions until the median
** of all repetitions moves less than 2% between batches (at least 5, at most
** 200 repetitions or about budget_s seconds per shape). For kernels whose
** operands fit in the last-level cache, a buffer of 2 x LLC is written
** between repetitions so every repetition starts from DRAM, as in a model
** where each layer's weights are read once per step.
*/
#ifndef QSR_KBENCH_H
#define QSR_KBENCH_H

#include "kernels/cpu/cpu.h"

#include <stddef.h>
#include <stdint.h>

struct qsr_kbench_row {
  const char *kernel;        /* variant name, "memcpy" or "fma_peak" */
  const char *op_class;      /* the cost model's class: gemm, attention, moe, elementwise, embedding, memcpy */
  const char *wfmt;          /* weight format name, NULL if none */
  int bits, group;           /* -1 if none */
  const char *kvfmt;         /* KV format name, NULL if none */
  const char *head_type;     /* dense | local | topk_exact | topk_paged, NULL if none */
  int64_t tokens, rows, cols;             /* -1 where not applicable */
  int64_t ctx, heads, kv_heads, head_dim, window, topk, experts, top_k;
  double flops;              /* arithmetic work (2 per multiply-add) */
  double vec_ops;            /* dequantisation / softmax element ops */
  double bytes;              /* DRAM traffic: weights + activations + KV read */
  int reps;
  double median_us, p10_us, p90_us;
  int split_holdout;         /* 1 for shapes meant for validation only */
};

struct qsr_kbench_opts {
  qsr_pool *pool;            /* threads to time with */
  int quick;                 /* a small grid (tinyllama shapes, fewer formats) */
  double budget_s;           /* per-shape time cap (default 0.5) */
  size_t llc_bytes;          /* last-level cache size to flush (0: 32 MiB) */
  int verbose;               /* progress on stderr */
};

typedef int (*qsr_kbench_fn)(void *ud, const struct qsr_kbench_row *row);

/* Runs the whole grid; stops early and returns the callback's non-zero code,
** or QSR_ERR_NOMEM. */
int qsr_kbench_run(const struct qsr_kbench_opts *o, qsr_kbench_fn fn, void *ud);

/* Host figures measured on the spot: copy bandwidth (GB/s of read + write,
** all threads) and peak fp32 FMA rate (GFLOP/s, all threads). */
double qsr_kbench_copy_gbps(qsr_pool *p);
double qsr_kbench_fma_gflops(qsr_pool *p);
/* Cost of one empty parallel step on the pool (dispatch + join), in us: the
** host's "kernel launch". */
double qsr_kbench_dispatch_us(qsr_pool *p);

#endif
