/*
** simstore.h -- serving-simulation results in the results database
** (SQLite, the qsr_store handle of store/store.h). Schema: store/simstore.c
** and docs/results-db.md ("Simulations").
**
**   simulations   one row per simulated run: what was run (device, model,
**                 design, trace, routing, fluctuation, policy, batching,
**                 rate scale, batch cap, SLOs) and its summary metrics
**   sim_requests  one row per finished request
**   sim_timeline  one row per time-series sample
**
** The tables are created on first use (qsr_store_begin_sim). Each call is
** one transaction: a call that fails rolls back and stores nothing. All
** calls: QSR_OK, or QSR_ERR_DB with *err = "DB-PATH: what: why" (one line,
** caller frees).
*/
#ifndef QSR_SIMSTORE_H
#define QSR_SIMSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "sim/serve.h"
#include "store/store.h"

/* What a simulation ran. Strings may be NULL (stored as NULL); numbers
** that are NaN or negative are stored as NULL (not set). */
struct qsr_sim_meta {
  const char *name;       /* run label, may be NULL */
  const char *device, *model, *design, *trace, *routing, *fluctuation, *policy, *batching;
  const char *args;       /* the command line or other free text */
  double rate_scale;      /* arrival-rate multiplier applied to the trace */
  double slo_ttft_ms, slo_tpot_ms;
  int max_batch;          /* running-batch cap (sequences) */
};

/* Creates the tables if needed and adds a simulations row (started_at =
** now, summary columns NULL until qsr_store_finish_sim); *sim_id = its id. */
int qsr_store_begin_sim(qsr_store *st, const struct qsr_sim_meta *m, int64_t *sim_id, char **err);

/* Adds n finished requests (one transaction per call). A request id
** already stored for the simulation is an error. */
int qsr_store_put_sim_requests(qsr_store *st, int64_t sim_id, const struct qsr_req_rec *r, size_t n, char **err);

/* Adds n time-series samples (one transaction per call). */
int qsr_store_put_sim_samples(qsr_store *st, int64_t sim_id, const struct qsr_sample *s, size_t n, char **err);

/* Stores the summary and finished_at; an unknown sim_id is an error. */
int qsr_store_finish_sim(qsr_store *st, int64_t sim_id, const struct qsr_serve_summary *s, char **err);

#endif
