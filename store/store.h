/*
** store.h -- the results database (SQLite). Schema: docs/results-db.md.
**
** One writer: sweep points arrive in chunks; each chunk's rows and its row
** in `chunks` commit in one transaction, so a run killed at any moment
** (kill -9 included) leaves whole chunks only, and a rerun skips exactly
** those. WAL journal, prepared statements.
*/
#ifndef QSR_STORE_H
#define QSR_STORE_H

#include <stdint.h>

#include "sim/sweep.h"

typedef struct qsr_store qsr_store;

/* Opens (creating if allowed) a database and its schema. */
int  qsr_store_open(const char *path, int readonly, qsr_store **out, char **err);
void qsr_store_close(qsr_store *st);   /* NULL-safe */

/* Finds the sweep (name + hash) or starts it. A sweep of the same name
** with another hash is an error: the file changed since the run began. */
int qsr_store_begin_sweep(qsr_store *st, const struct qsr_sweep *sw, int64_t *sweep_id, char **err);

/* done[c] = 1 for chunks already stored (done has qsr_sweep_chunks() bytes). */
int qsr_store_done_chunks(qsr_store *st, int64_t sweep_id, uint8_t *done, uint64_t nchunks, char **err);

/* Stores one chunk's points and marks the chunk done, atomically. */
int qsr_store_put_chunk(qsr_store *st, int64_t sweep_id, uint64_t chunk, const struct qsr_sweep *sw,
                        const struct qsr_point *pts, int n, char **err);

/* Updates points_done and finished_at (when complete) and builds indexes. */
int qsr_store_finish_sweep(qsr_store *st, int64_t sweep_id, char **err);

/* Replaces the Pareto members of (sweep, device, model). */
int qsr_store_put_pareto(qsr_store *st, int64_t sweep_id, const char *device, const char *model,
                         const int64_t *idx, const uint8_t *knee, size_t n, const char *objectives, char **err);

/* Merges shard databases of the same sweeps (checked by hash) into st. */
int qsr_store_merge(qsr_store *st, const char *in_path, char **err);

/* The raw handle, for read-only queries by the CLI (pareto, plot, deploy). */
struct sqlite3 *qsr_store_db(qsr_store *st);

#endif
