/*
** types.h -- the cost model's inputs and outputs: device, model, design,
** quality profile and result. Plain structs: specs fill them, the cost model
** reads them, the sweep copies and varies designs. Units are in the names.
*/
#ifndef QSR_TYPES_H
#define QSR_TYPES_H

#include <stdint.h>

#define QSR_MAX_LAYERS 256
#define QSR_MAX_EXPERTS 256
#define QSR_MAX_MODES 8
#define QSR_NAME_MAX 48

/* ---- device ------------------------------------------------------------ */

enum qsr_devkind { QSR_DEVKIND_GPU = 0, QSR_DEVKIND_SOC = 1, QSR_DEVKIND_CPU = 2, QSR_DEVKIND_COUNT };

enum qsr_peak {           /* dense peak throughput per data type */
  QSR_PEAK_FP32 = 0,
  QSR_PEAK_FP16,          /* vector (non-tensor) fp16 */
  QSR_PEAK_FP16_TENSOR,
  QSR_PEAK_BF16_TENSOR,
  QSR_PEAK_INT8_TENSOR,
  QSR_PEAK_FP8_TENSOR,
  QSR_PEAK_INT4_TENSOR,
  QSR_PEAK_COUNT
};

enum qsr_opclass {
  QSR_OPCLASS_GEMM = 0,
  QSR_OPCLASS_ATTENTION,
  QSR_OPCLASS_MOE,
  QSR_OPCLASS_ELEMENTWISE,
  QSR_OPCLASS_EMBEDDING,
  QSR_OPCLASS_GEMV,       /* linear layers at <= 16 tokens: the GEMV kernels */
  QSR_OPCLASS_MEMCPY,     /* offload streaming: tier bandwidth, no efficiency */
  QSR_OPCLASS_COUNT
};
#define QSR_OPCLASS_FITTED QSR_OPCLASS_MEMCPY /* classes with efficiency params */

enum qsr_tier { QSR_TIER_HOST = 0, QSR_TIER_NVME, QSR_TIER_FLASH, QSR_TIER_COUNT };

struct qsr_eff {              /* Hockney-style: t = (n + n_half) / (peak * eff) */
  double compute;             /* asymptotic share of peak compute, 0..1 */
  double memory;              /* asymptotic share of peak bandwidth, 0..1 */
  double compute_half_gflop;  /* work at which half of `compute` is reached */
  double memory_half_mb;      /* traffic at which half of `memory` is reached */
  double fit_rms_pct;         /* calibration: RMS log error of the fit, in %; 0 = not fitted */
};

#define QSR_DECODE_FMTS 7     /* = QSR_WFMT_COUNT (kernels/qformat.h), checked in eval.c */
#define QSR_DECODE_BITS 17    /* bits 0..16 */
#define QSR_DECODE_KV 3       /* = QSR_KVFMT_COUNT */

struct qsr_tierspec {
  double bw_gbps;             /* 0 = tier absent */
  double capacity_gb;
};

struct qsr_power_mode {
  char name[QSR_NAME_MAX];    /* "15w", "maxn" */
  double compute_scale;       /* clock ratio vs the peaks above */
  double bw_scale;            /* memory clock ratio */
  double power_w;             /* board power budget in this mode */
};

struct qsr_device {
  char name[QSR_NAME_MAX];    /* file stem, "a100-80g" */
  int kind;                   /* enum qsr_devkind */
  double memory_gb;           /* physical capacity */
  double usable_gb;           /* capacity a model may use */
  double bw_gbps;             /* peak DRAM bandwidth */
  double l2_mb;               /* last-level cache */
  int units;                  /* SMs or CPU cores */
  double peak_tflops[QSR_PEAK_COUNT]; /* 0 = not supported */
  double launch_us;           /* per kernel launch */
  double sync_us;             /* per phase synchronisation */
  double tdp_w, idle_w;       /* power envelope */
  struct qsr_tierspec offload[QSR_TIER_COUNT];
  struct qsr_power_mode modes[QSR_MAX_MODES];
  int n_modes;
  int default_mode;           /* index into modes, -1 = none */
  struct qsr_eff eff[QSR_OPCLASS_COUNT];
  int eff_fitted;             /* 1 when efficiency comes from a calibration fit */
  /* Vector ops this device's kernels spend per weight element decoded, per
  ** [enum qsr_wfmt][bits], and per KV element per [enum qsr_kvfmt]; 0 = the
  ** format's default (qsr_wfmt_tab dequant_ops; KV: fp16 0, int 2). Set by
  ** calibration: a CPU converting fp16 pays for it, a GPU does not. */
  double decode_ops[QSR_DECODE_FMTS][QSR_DECODE_BITS];
  double kv_decode_ops[QSR_DECODE_KV];
};

/* ---- model ------------------------------------------------------------- */

enum qsr_family { QSR_FAMILY_DECODER = 0, QSR_FAMILY_DIT = 1, QSR_FAMILY_COUNT };
enum qsr_ffnact { QSR_FFNACT_SWIGLU = 0, QSR_FFNACT_GELU = 1, QSR_FFNACT_COUNT };
enum qsr_norm { QSR_NORM_RMS = 0, QSR_NORM_LAYER = 1, QSR_NORM_COUNT };

struct qsr_model {
  char name[QSR_NAME_MAX];
  int family;                 /* enum qsr_family */
  int layers, hidden, heads, kv_heads, head_dim;
  int ffn;                    /* intermediate size (per expert for MoE) */
  int ffn_act;                /* enum qsr_ffnact */
  int vocab;
  int tie_embeddings, norm, bias;
  int max_context;
  int sliding_window;         /* model's own window, 0 = none */
  int experts, top_k;         /* 0 = dense */
  double published_params_b;
  int dit_tokens, dit_patch_in, dit_patch_out, dit_adaln, dit_freq_dim, dit_classes;
};

/* ---- design ------------------------------------------------------------ */

enum qsr_lclass {             /* layer classes that carry their own precision */
  QSR_LCLASS_EMBEDDING = 0,
  QSR_LCLASS_ATTN_QKV,
  QSR_LCLASS_ATTN_OUT,
  QSR_LCLASS_FFN_UP,
  QSR_LCLASS_FFN_GATE,
  QSR_LCLASS_FFN_DOWN,
  QSR_LCLASS_EXPERTS,
  QSR_LCLASS_ROUTER,
  QSR_LCLASS_LM_HEAD,
  QSR_LCLASS_ADALN,
  QSR_LCLASS_NORMS,
  QSR_LCLASS_COUNT
};
extern const char *const qsr_lclass_names[QSR_LCLASS_COUNT];

enum qsr_act { QSR_ACT_FP16 = 0, QSR_ACT_INT8 = 1, QSR_ACT_FP8 = 2, QSR_ACT_COUNT };
enum qsr_sel { QSR_SEL_EXACT = 0, QSR_SEL_PAGED = 1, QSR_SEL_COUNT };
enum qsr_route { QSR_ROUTE_NONE = 0, QSR_ROUTE_MOE = 1, QSR_ROUTE_MOEFY = 2, QSR_ROUTE_COUNT };

struct qsr_wq {               /* one weight precision */
  int fmt;                    /* enum qsr_wfmt */
  int bits;                   /* 0 in an override = not set */
  int group;                  /* 0 = per channel */
};

struct qsr_design {
  struct qsr_wq weights;                  /* default for every linear weight */
  struct qsr_wq layer[QSR_LCLASS_COUNT];  /* per-class overrides (bits 0 = unset) */
  struct qsr_wq sensitive;                /* precision of the sensitive layers */
  uint8_t sensitive_layer[QSR_MAX_LAYERS];/* 1 = this layer uses `sensitive` */
  int act;                                /* enum qsr_act */
  int kv;                                 /* enum qsr_kvfmt */
  double att_local, att_topk, att_dense;  /* fractions of query heads */
  int window;                             /* local heads' window (tokens) */
  int topk;                               /* keys per query for top-k heads */
  int selection;                          /* enum qsr_sel */
  int page;                               /* page size for paged selection */
  uint8_t dense_layer[QSR_MAX_LAYERS];    /* 1 = all heads dense in this layer */
  int route;                              /* enum qsr_route */
  int experts, top_k;                     /* 0 = model's own */
  double capacity;                        /* capacity factor, 0 = unlimited */
  int dynamic, k_min, k_max;              /* token-complexity-driven k */
  double cx_alpha, cx_beta;               /* complexity ~ Beta(alpha, beta) */
  double popularity[QSR_MAX_EXPERTS];     /* expert popularity, normalised */
  int n_popularity;                       /* 0 = uniform */
  int batch, prompt, gen, steps;
  char power_mode[QSR_NAME_MAX];          /* "" = device default */
};

/* ---- quality profile --------------------------------------------------- */

struct qsr_quality {
  char name[QSR_NAME_MAX];
  double weights[7][17];                  /* [enum qsr_wfmt][bits]; <0 = unknown */
  double symmetric_factor;
  double group_factor[5];                 /* per channel, 32, 64, 128, 256 */
  double class_share[QSR_LCLASS_COUNT];
  double act[QSR_ACT_COUNT];
  double kv[3];
  double att_local, att_topk, att_paged;
  double route_drop, route_moefy, route_dynamic;
};

/* ---- result ------------------------------------------------------------ */

enum qsr_phase { QSR_PHASE_PREFILL = 0, QSR_PHASE_DECODE = 1, QSR_PHASE_COUNT };
enum qsr_bound { QSR_BOUND_COMPUTE = 0, QSR_BOUND_MEMORY, QSR_BOUND_OVERHEAD, QSR_BOUND_COUNT };

enum qsr_note {               /* bits of qsr_result.notes; text in qsr_note_text() */
  QSR_NOTE_FP8_EMULATED = 1u << 0,
  QSR_NOTE_INT8_EMULATED = 1u << 1,
  QSR_NOTE_FP16_NO_TENSOR = 1u << 2,
  QSR_NOTE_OFFLOAD = 1u << 3,
  QSR_NOTE_DROPPED = 1u << 4,
  QSR_NOTE_CONTEXT_OVER = 1u << 5,
  QSR_NOTE_DYNAMIC_K = 1u << 6,
  QSR_NOTE_WINDOW_CACHE = 1u << 7,
  QSR_NOTE_MOEFY = 1u << 8,
  QSR_NOTE_BF16_AS_FP16 = 1u << 9,
  QSR_NOTE_COUNT_ = 10
};

struct qsr_opcost {           /* one (op kind, phase) line of the breakdown */
  int kind;                   /* enum qsr_op_kind */
  int phase;
  double ms;                  /* per pass: prefill pass, or mean decode step */
  double compute_ms, memory_ms, overhead_ms;
  double gbytes, gflop;
  int bound;                  /* enum qsr_bound of the largest term */
};

#define QSR_MAX_BREAKDOWN 32

struct qsr_result {
  int feasible;               /* 0: see why */
  char why[160];
  double prefill_ms;          /* one prefill pass (DiT: one denoising step) */
  double ttft_ms;             /* prefill + first decode step */
  double tpot_ms;             /* mean decode step over the contexts reached */
  double e2e_ms;              /* prefill + all decode steps (DiT: all steps) */
  double tokens_per_s;        /* generated tokens/s over e2e (DiT: latent tokens/s) */
  double images_per_s;        /* DiT only */
  double mem_weights_mb, mem_kv_mb, mem_act_mb, mem_peak_mb; /* MB = 1e6 B */
  int fits;                   /* peak <= usable without offload */
  int offload_tier;           /* -1 none, else enum qsr_tier */
  double offload_mb;          /* weights kept in the lower tier */
  double energy_j_per_token;
  double power_w;             /* mean board power over e2e */
  double quality_loss;        /* proxy: relative perplexity increase */
  double avg_weight_bits;     /* over all linear + embedding weights */
  double params_b, active_params_b;
  double experts_per_token;   /* mean active experts per token (routing) */
  double experts_touched;     /* distinct experts per layer per decode step */
  double dropped_frac;        /* token-expert assignments dropped (prefill) */
  unsigned notes;             /* enum qsr_note bits */
  int n_ops;
  struct qsr_opcost ops[QSR_MAX_BREAKDOWN];
};

#endif
