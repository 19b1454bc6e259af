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

enum qsr_batching {
  QSR_BATCHING_STATIC = 0,      /* a batch runs prefill then decodes until its longest request ends */
  QSR_BATCHING_CONTINUOUS = 1,  /* iteration-level: join and leave every step; whole prompts */
  QSR_BATCHING_CHUNKED = 2,     /* continuous + prompts split to fill a per-iteration token budget */
  QSR_BATCHING_COUNT
};
enum qsr_miss {                 /* how an expert-cache miss is served */
  QSR_MISS_FETCH = 0,           /* copy the expert from the lower tier */
  QSR_MISS_LOWBIT = 1,          /* copy a lower-precision copy kept there (HOBBIT) */
  QSR_MISS_CPU = 2,             /* compute it on the host CPU when cheaper than moving it (Fiddler) */
  QSR_MISS_COUNT
};
enum qsr_adapt {
  QSR_ADAPT_STATIC = 0,         /* level 0 always: the baseline */
  QSR_ADAPT_PRESSURE = 1,       /* level from queue, SLO slack and throttling */
  QSR_ADAPT_TOKEN = 2,          /* pressure, tempered by per-token complexity; per-token k */
  QSR_ADAPT_COUNT
};
extern const char *const qsr_batching_names[QSR_BATCHING_COUNT];
extern const char *const qsr_miss_names[QSR_MISS_COUNT];
extern const char *const qsr_adapt_names[QSR_ADAPT_COUNT];

#define QSR_SERVE_LEVELS 8

struct qsr_serve_cfg {
  const struct qsr_device *dev;
  const struct qsr_model *m;
  const struct qsr_quality *q;  /* NULL: no quality proxy */
  int n_levels;                 /* >= 1: level 0 is the base design, higher = cheaper */
  const struct qsr_design *levels[QSR_SERVE_LEVELS];
  int nested;                   /* 1: precision levels are nested bit-planes (memory of the widest),
                                   0: each distinct weight precision is a stored copy (memory summed) */
  int batching;                 /* enum qsr_batching */
  int max_batch;                /* sequences per iteration */
  int chunk_tokens;             /* chunked: tokens per iteration */
  double slo_ttft_ms, slo_tpot_ms;  /* 0 = no limit */
  int64_t prefix_blocks;        /* prefix cache size in blocks (trace block_tokens each); 0 = off */
  qsr_routes *routes;           /* NULL: the cost model's expected distinct experts */
  int expert_cache;             /* resident experts per MoE layer; -1 = as many as memory allows */
  int cache_policy;             /* enum qsr_ecache_policy */
  int tier;                     /* enum qsr_tier of the offloaded experts (-1: fastest present) */
  int miss;                     /* enum qsr_miss */
  int miss_bits;                /* lowbit: bits of the lower-tier copy */
  int overlap;                  /* 1: expert transfers overlap compute */
  const struct qsr_device *cpu; /* miss = cpu: the host CPU's device */
  const struct qsr_fluct *fluct;/* NULL: steady resources */
  int adapt;                    /* enum qsr_adapt */
  double sample_dt_s;           /* time-series period (0: 1 s) */
  uint64_t seed;                /* per-token complexity draws */
  void (*on_request)(void *ud, const struct qsr_req_rec *r);   /* may be NULL */
  void (*on_sample)(void *ud, const struct qsr_sample *s);     /* may be NULL */
  void *ud;
  char note[256];               /* out: what the engine decided (expert cache size, synthesised...) */
};

/* Runs the trace through the engine. Returns QSR_OK (the summary filled),
** QSR_ERR_CONFIG (a design the step cost rejects, a model that cannot be
** held) or QSR_ERR_NOMEM, with *err. */
int qsr_serve_run(struct qsr_serve_cfg *cfg, const struct qsr_trace *t, struct qsr_serve_summary *out, char **err);

#endif
