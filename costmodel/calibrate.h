/*
** calibrate.h -- the cost model against measurements: one kernel call as the
** cost model sees it (qsr_kop), its predicted time, the GSL least-squares fit
** of a device's efficiency parameters from measured calls, and the
** measured-lookup predictor (exact -> interpolated -> calibrated roofline).
**
** Pure like the rest of costmodel/: structs in, numbers out; the caller
** reads measurements from SQLite (store/) and writes device files (spec/).
*/
#ifndef QSR_CALIBRATE_H
#define QSR_CALIBRATE_H

#include <stdint.h>

#include "costmodel/costmodel.h"

/* One kernel call. Decoding work is kept apart from the other vector work so
** a fit can learn its per-format cost on this device. */
struct qsr_kop {
  int cls;              /* enum qsr_opclass (gemv for linear calls the GEMV kernels run) */
  int mm_peak;          /* enum qsr_peak that runs `flops` */
  double flops;         /* matrix flops */
  double vec_ops;       /* vector ops other than decoding (softmax, norms, routing) */
  double bytes;         /* DRAM traffic */
  double parts;         /* independent sub-problems (experts), >= 1 */
  int launches;         /* kernel launches */
  int wfmt, wbits;      /* weight format decoded (enum qsr_wfmt), bits */
  double w_decodes;     /* weight elements decoded */
  int kvfmt;            /* enum qsr_kvfmt */
  double kv_decodes;    /* KV elements decoded */
};

/* Predicted time of one call in ms (at the device's default clocks); *bound
** (may be NULL) gets the enum qsr_bound that won. */
double qsr_kop_ms(const struct qsr_device *dev, const struct qsr_kop *op, int *bound);

/* A measured call as stored in the measurements table (store/measure.h):
** strings NULL and numbers < 0 where a field does not apply. */
struct qsr_kshape {
  int64_t id;                       /* row id */
  const char *kernel, *op_class;    /* variant name; cost-model class */
  const char *wfmt, *kvfmt, *head_type;
  int bits, grp;
  int64_t tokens, rows, cols, ctx, heads, kv_heads, head_dim, win, topk, experts, top_k;
  double flops, vec_ops, bytes;     /* the work, as qsr bench counted it */
  double median_us, p10_us, p90_us;
  int holdout;                      /* split = 'holdout' */
};

/* Builds the call the cost model sees for a measured shape on dev. Returns 0,
** or -1 for rows that are not kernel calls (memcpy, fma_peak, e2e) or that
** name an unknown format; *why (static text) says which. */
int qsr_kop_from_shape(const struct qsr_device *dev, const struct qsr_kshape *s, struct qsr_kop *op,
                       const char **why);

/* ---- fit ---------------------------------------------------------------- */

struct qsr_fit_class {
  int n;                /* calls of this class in the fit */
  double rms_log_pct;   /* RMS of log(predicted / measured), as a % */
  double mape_pct;      /* mean |predicted - measured| / measured, % */
  double within_10pct;  /* share of calls within +-10% (0..1) */
  struct qsr_eff eff;   /* fitted values */
  struct qsr_eff sd;    /* their standard errors (delta method), 0 where held at the prior */
};

struct qsr_fit_report {
  int n, n_params, iterations, converged;
  double rms_log_pct, mape_pct, within_10pct;     /* over all fitted calls */
  double launch_us, launch_sd_us;
  struct qsr_fit_class cls[QSR_OPCLASS_COUNT];
  int n_decode;                                   /* fitted per-format decode costs */
  struct { int wfmt, bits, kv; double ops, sd; } decode[32];
};

/* Fits dev's efficiency parameters (per class: compute, memory, the two
** half-work sizes), launch_us, and per-format decode costs of the formats
** present, to n measured calls (times in us) by GSL nonlinear least squares
** on log(predicted / measured), with a weak pull towards dev's values where
** the data say nothing. Classes absent from the data keep their values. On
** success dev holds the fit (eff_fitted = 1, fit_rms_pct per class).
** Returns QSR_OK or QSR_ERR_CONFIG (too few calls) with *err. */
int qsr_calibrate_fit(struct qsr_device *dev, const struct qsr_kop *ops, const double *us, int n,
                      struct qsr_fit_report *rep, char **err);

/* ---- measured lookup --------------------------------------------------- */

enum qsr_psource { QSR_PSOURCE_EXACT = 0, QSR_PSOURCE_INTERP, QSR_PSOURCE_ROOFLINE, QSR_PSOURCE_COUNT };
const char *qsr_psource_name(int src);   /* "measured", "interpolated", "roofline" */

struct qsr_prediction {
  double us;            /* predicted time */
  double lo_us, hi_us;  /* uncertainty band: measured p10..p90, or the fit's RMS error */
  int source;           /* enum qsr_psource */
};

typedef struct qsr_lookup qsr_lookup;

/* A lookup over measured calls (copied; the strings are copied too). Calls
** of the same kernel and shape except one size axis (tokens, or the context
** of decode attention) form a line that is interpolated with GSL. */
int qsr_lookup_new(const struct qsr_kshape *rows, int n, qsr_lookup **out, char **err);
void qsr_lookup_free(qsr_lookup *lk);   /* NULL-safe */

/* Predicts a call: the measurement of the same shape, else interpolated
** between the nearest measured sizes of the same line (never extrapolated),
** else dev's roofline with its fit error as the band. lk may be NULL
** (roofline only). */
void qsr_lookup_predict(const qsr_lookup *lk, const struct qsr_device *dev, const struct qsr_kshape *s,
                        struct qsr_prediction *p);

#endif
