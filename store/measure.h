/*
** measure.h -- the `measurements` table: one row per timed kernel shape
** (qsr bench), per imported end-to-end run (qsr import) or per deployment
** run (qsr run), in the results-database conventions (docs/results-db.md):
** one column per field, SI-ish units in the column names, NULL where a field
** does not apply.
**
**   measurements(
**     id INTEGER PRIMARY KEY,
**     kernel TEXT NOT NULL,     variant name (variants.def), or 'memcpy',
**                               'fma_peak', 'e2e' (a whole model run)
**     op_class TEXT,            cost-model op class: linear, attention,
**                               routing, elementwise, memcpy, e2e
**     wfmt TEXT, bits INTEGER, grp INTEGER,   weight format (linear, experts)
**     kvfmt TEXT,               KV format (attention)
**     tokens INTEGER,           M: tokens in the call (linear, router, experts; prefill T)
**     rows INTEGER, cols INTEGER,             N x K of the weight matrix
**     ctx INTEGER,              attention: context; e2e rows: context already
**                               in the cache before the test (llama-bench n_depth)
**     heads INTEGER, kv_heads INTEGER, head_dim INTEGER,
**     head_type TEXT, win INTEGER, topk INTEGER,   attention shape
**     experts INTEGER, top_k INTEGER,         routing shape
**     flops REAL, vec_ops REAL, bytes REAL,   the work as the cost model counts it
**     backend TEXT,             cpu | cuda | external
**     device TEXT,              device name (configs/devices) or the engine's own
**     device_desc TEXT, driver TEXT, clocks TEXT, threads INTEGER,
**     rev TEXT,                 qsr version + git revision that measured it
**                               (imported rows: the engine's own build commit)
**     source TEXT,              'qsr bench', 'qsr run', 'llama-bench', 'csv'
**     reps INTEGER, median_us REAL, p10_us REAL, p90_us REAL, spread_pct REAL,
**     model TEXT, quant TEXT, batch INTEGER, prompt INTEGER, gen INTEGER,
**     prompt_tok_s REAL, gen_tok_s REAL,      end-to-end rows
**     split TEXT,               'fit' | 'holdout' (which rows calibrate may use)
**     created_at TEXT,
**     -- qsr run rows: the cost model's prediction beside the measurement
**     pred_prompt_tok_s REAL, pred_gen_tok_s REAL,   predicted throughputs
**     peak_mb REAL, pred_peak_mb REAL,  measured (runner's own buffers) and
**                               predicted peak memory, MB = 1e6 B
**     config TEXT)              the deployment config that was run
** Columns after created_at were added later; qsr_measure_schema adds them
** to tables created before (ALTER TABLE ... ADD COLUMN).
*/
#ifndef QSR_MEASURE_H
#define QSR_MEASURE_H

#include <stdint.h>

struct sqlite3;

/* One row; strings may be NULL, numbers < 0 (or NaN for reals) are NULL. */
struct qsr_meas {
  const char *kernel, *op_class, *wfmt, *kvfmt, *head_type;
  int bits, grp;
  int64_t tokens, rows, cols;
  int64_t ctx, heads, kv_heads, head_dim, win, topk, experts, top_k;
  double flops, vec_ops, bytes;
  const char *backend, *device, *device_desc, *driver, *clocks, *rev, *source;
  int threads, reps;
  double median_us, p10_us, p90_us, spread_pct;
  const char *model, *quant;
  int64_t batch, prompt, gen;
  double prompt_tok_s, gen_tok_s;
  const char *split;
  /* qsr run: prediction beside measurement */
  double pred_prompt_tok_s, pred_gen_tok_s, peak_mb, pred_peak_mb;
  const char *config;
};

/* Sets every number of m to "NULL" and every string to NULL. */
void qsr_meas_clear(struct qsr_meas *m);

/* Creates the table (and its index) if missing, and adds the columns a
** table from an older qsr lacks. */
int qsr_measure_schema(struct sqlite3 *db, const char *path, char **err);
/* Inserts one row (inside the caller's transaction, if any). */
int qsr_measure_put(struct sqlite3 *db, const char *path, const struct qsr_meas *m, char **err);

#endif
