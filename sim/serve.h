/*
** serve.h -- the trace-driven serving simulator (discrete events).
**
** Requests arrive from a trace; a scheduler forms iterations (static
** batches, continuous batching with admission by free KV memory, chunked
** prefill); each iteration is costed by the cost model for exactly the
** prefill chunks and decode contexts in it (costmodel/step), with MoE
** experts counted from a routing trace, misses of an expert cache paying
** the lower tier, resource fluctuation scaling the device, and an adaptive
** policy picking per iteration among resident precisions, k and windows.
** The simulator knows no file formats: records go out through callbacks.
*/
#ifndef QSR_SERVE_H
#define QSR_SERVE_H

#include <stdint.h>

#include "costmodel/costmodel.h"
#include "sim/ecache.h"
#include "sim/fluct.h"
#include "sim/routes.h"
#include "sim/trace.h"

/* One finished request. Times are seconds of simulated time. */
struct qsr_req_rec {
  int64_t id;             /* index in the trace */
  double arrival_s;
  double admit_s;         /* admitted to the running batch (first computed) */
  double first_token_s;   /* first output token out */
  double finish_s;        /* last output token out */
  int32_t prompt, output; /* tokens */
  int32_t cached_tokens;  /* prompt tokens served by the prefix cache */
  double ttft_ms;         /* first_token - arrival */
  double tpot_ms;         /* (finish - first_token) / (output - 1); 0 when output = 1 */
  double e2e_ms;          /* finish - arrival */
  double queue_ms;        /* admit - arrival */
  double quality_loss;    /* mean quality proxy over its output tokens */
  int met_slo;            /* 1: TTFT and TPOT within the SLOs */
};

/* One sample of the time series (every sample_dt_s of simulated time). */
struct qsr_sample {
  double t_s;
  int queued;             /* waiting, not admitted */
  int running;            /* admitted, not finished */
  double kv_mb;           /* KV cache in use (incl. reservations), MB = 1e6 B */
  double mem_used_mb;     /* weights + KV + activations + prefix cache + resident experts */
  double mem_avail_mb;    /* memory available to the model now (fluctuation) */
  double tok_s;           /* output tokens/s over the last interval */
  double bw_scale, compute_scale;
  int level;              /* adaptation level index in force (0 = the base design) */
  double hit_rate;        /* expert-cache hit rate over the interval; < 0 = no cache */
};

struct qsr_pct { double p50, p90, p99, max, mean; };

struct qsr_serve_summary {
  int64_t requests;       /* finished */
  int64_t rejected;       /* could never be admitted (prompt + output KV > memory) */
  int64_t tokens_in, tokens_out;
  double sim_s;           /* simulated time, first arrival to last finish */
  double throughput_tok_s;/* tokens_out / sim_s */
  double throughput_req_s;
  double goodput_req_s;   /* requests meeting both SLOs / sim_s */
  double slo_met_frac;
  struct qsr_pct ttft_ms, tpot_ms, e2e_ms, queue_ms;
  double tpot_std_ms, e2e_std_ms;     /* latency variance (robustness table) */
  double iterations;
  double mean_batch;      /* decode sequences per iteration, mean */
  double peak_mem_mb;
  double expert_cache_hit_rate;       /* < 0: no expert cache */
  double offload_gb;      /* bytes moved from the lower tier */
  double cpu_expert_frac; /* misses computed on the host CPU */
  double prefix_hit_frac; /* prompt tokens served by the prefix cache */
  double quality_loss;    /* mean proxy per output token */
  double retention;       /* throughput with fluctuation / without; < 0 = not computed */
  double level_share[8];  /* share of iterations at each adaptation level */
  int n_levels;
};

#endif
