/*
** runner.h -- the deployment runner: a model's whole layer stack, with
** synthetic weights in exactly the formats a design names, run through
** exactly the kernel variants a deployment config names (prefill: gemm_<fmt>
** and attn_prefill_<type>; decode: gemv_<fmt> and attn_decode_<type>; see
** variants.def), timed per phase, with its memory. `qsr run` feeds it a
** deployment config (spec/deploy.h) and compares it with the cost model.
** What runs, what is skipped and how a model too large for the host is
** scaled: docs/run.md.
**
** Usage:
**   struct qsr_run_opts o = { .backend = QSR_RUN_CPU, .pool = pool, .seed = 1 };
**   struct qsr_run_result r;
**   rc = qsr_run_model(&model, &design, &o, &r, &err);
**
** The runner does not read files or know YAML or SQL: structs in, numbers
** out. It allocates everything it runs on and frees it before returning.
*/
#ifndef QSR_RUNNER_H
#define QSR_RUNNER_H

#include "costmodel/types.h"
#include "kernels/cpu/cpu.h"

enum qsr_run_backend {
  QSR_RUN_CPU = 0,           /* the C kernels (kernels/cpu) */
  QSR_RUN_CUDA = 1           /* the CUDA kernels (kernels/cuda): not built yet */
};

struct qsr_run_opts {
  int backend;               /* enum qsr_run_backend */
  qsr_pool *pool;            /* CPU threads; NULL = the calling thread only */
  int batch;                 /* sequences; 0 = the design's runtime.batch */
  int prompt;                /* prompt tokens per sequence; 0 = the design's */
  int steps;                 /* timed decode steps; 0 = the design's gen; < 0 = none */
  double mem_budget_gb;      /* weights + KV + activations cap (GB = 1e9 B);
                                0 = 80% of physical RAM */
  int prefill_reps;          /* prefill passes (KV cache emptied between them);
                                prefill_ms is their median; 0 = 1 */
  unsigned seed;             /* synthetic weights and token ids */
  int verbose;               /* progress on stderr */
  float *logits;             /* optional [batch][vocab]: the logits of the last
                                pass (prefill, or the last decode step) */
};

#define QSR_RUN_KERNELS_MAX 640
#define QSR_RUN_NOTES_MAX 512

struct qsr_run_result {
  int batch, prompt;         /* as run */
  int steps;                 /* decode steps timed (the warm-up step excluded) */
  int layers_run;            /* decoder layers allocated and run */
  int layers_model;          /* the model's decoder layers */
  double layer_scale;        /* layers_model / layers_run (1 = all ran) */
  double prefill_ms;         /* one prefill pass over batch x prompt tokens
                                (median of prefill_reps passes) */
  int prefill_reps;          /* prefill passes timed */
  double prefill_ms_min, prefill_ms_max;
  double decode_ms_mean;     /* one decode step (batch tokens), mean over steps */
  double decode_ms_p10, decode_ms_p90;
  double ends_prefill_ms;    /* of prefill_ms: embedding + final norm + lm_head */
  double ends_decode_ms;     /* of decode_ms_mean: the same, per step */
  /* memory, MB = 1e6 B; "own" = the runner's own buffers for the layers run */
  double weights_mb;         /* packed weights (qsr_qmatrix_bytes), layers run + ends */
  double kv_mb;              /* KV caches + page summaries, layers run */
  double act_mb;             /* activations, logits and kernel scratch */
  double peak_mb;            /* weights_mb + kv_mb + act_mb (all live at once) */
  double model_mb;           /* peak_mb for all layers_model layers (exact layouts;
                                = peak_mb when every layer ran) */
  double rss_mb;             /* getrusage ru_maxrss of the process at the end */
  char kernels[QSR_RUN_KERNELS_MAX];  /* distinct variants run, comma-separated,
                                         in variants.def order */
  char notes[QSR_RUN_NOTES_MAX];      /* what was skipped or scaled, "; "-separated */
};

/* Builds the model m (decoder family) under design d, runs one prefill pass
** and 1 + steps decode steps (the first is a warm-up, not timed), fills r.
** Layers beyond what mem_budget_gb holds are not run: their time is
** estimated from the layers run (per kind of layer, see docs/run.md) and the
** scaling is said on stderr and in r->notes. Returns QSR_OK;
** QSR_ERR_CONFIG (a DiT model, a shape the kernels cannot take, bad opts),
** QSR_ERR_NOMEM (the budget cannot hold one layer, or allocation failed),
** QSR_ERR_CUDA (backend cuda: not built yet); *err set (caller frees). */
int qsr_run_model(const struct qsr_model *m, const struct qsr_design *d, const struct qsr_run_opts *o,
                  struct qsr_run_result *r, char **err);

/* The synthetic weights, one matrix each (norm weights are all 1, biases 0). */
enum qsr_run_weight {
  QSR_RUN_W_EMBED = 0,       /* [vocab][hidden], the embedding table */
  QSR_RUN_W_LM_HEAD,         /* [vocab][hidden]; the embedding itself when tied */
  QSR_RUN_W_QKV,             /* [(heads + 2 kv_heads) head_dim][hidden]: q, then k, then v rows */
  QSR_RUN_W_OUT,             /* [hidden][heads head_dim] */
  QSR_RUN_W_UP,              /* [ffn][hidden] */
  QSR_RUN_W_GATE,            /* [ffn][hidden] (SwiGLU only) */
  QSR_RUN_W_DOWN,            /* [hidden][ffn] */
  QSR_RUN_W_ROUTER,          /* [experts][hidden] */
  QSR_RUN_W_EXPERT_UP,       /* [expert ffn][hidden], one per expert */
  QSR_RUN_W_EXPERT_GATE,
  QSR_RUN_W_EXPERT_DOWN,     /* [hidden][expert ffn] */
  QSR_RUN_W_COUNT
};

/* Allocates *out (qsr_qmatrix_free it) and fills it with the weights the
** runner uses for matrix `which` of model layer `layer` (and `expert`), in
** the precision the design gives it: a deterministic function of (seed,
** which, layer, expert, shape, precision). For tests and references. */
int qsr_run_weight(const struct qsr_model *m, const struct qsr_design *d, unsigned seed, int which, int layer,
                   int expert, qsr_qmatrix *out, char **err);

/* The precision that holds the most linear weights (layers and lm_head) of
** m under d: what a one-word "quant" label of a run should say. */
struct qsr_wq qsr_run_main_wq(const struct qsr_model *m, const struct qsr_design *d);

/* The synthetic token id of sequence b at position pos (what prefill and
** decode feed; deterministic in seed), in [0, vocab). */
int qsr_run_token(unsigned seed, int b, int pos, int vocab);

#endif
