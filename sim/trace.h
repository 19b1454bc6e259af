/*
** trace.h -- request traces for the serving simulator.
**
** A trace is an array of requests sorted by arrival time: read from a file
** (the Azure LLM inference trace CSV of 2023, a plain CSV, or the Mooncake
** JSONL with its prefix-block hashes), or synthesised (Poisson or gamma
** arrivals, length distributions) with GSL random numbers and a seed.
** Errors name the file, the line and the column.
*/
#ifndef QSR_TRACE_H
#define QSR_TRACE_H

#include <stddef.h>
#include <stdint.h>

struct qsr_request {
  double arrival_s;       /* seconds from the first request of the trace */
  int32_t prompt;         /* prompt (context) tokens, >= 1 */
  int32_t output;         /* tokens to generate, >= 1 */
  float complexity;       /* per-token complexity in [0,1]; < 0 = none given */
  uint32_t n_blocks;      /* prefix blocks of this request (Mooncake hash_ids) */
  uint64_t block_off;     /* its first block id in qsr_trace.blocks */
};

struct qsr_trace {
  struct qsr_request *req;  /* n requests, arrival_s non-decreasing; owned */
  size_t n;
  uint32_t *blocks;       /* prefix-block hash ids of all requests; owned, NULL when none */
  uint64_t n_blocks;
  int block_tokens;       /* tokens per prefix block (512 for Mooncake); 0 = no blocks */
  char source[256];       /* what it is, for output: "azure-llm-2023-conv.csv (Azure 2023 CSV)",
                             "synthetic poisson rate=0.5/s, n=1000, seed=1" */
  int synthetic;          /* 1 when synthesised */
};

/* Reads a trace file; the format is told by its content:
**   Azure 2023 CSV   header TIMESTAMP,ContextTokens,GeneratedTokens; wall-clock
**                    "YYYY-MM-DD HH:MM:SS.fffffff", times made relative to the first row
**   plain CSV        header with arrival_s (or timestamp_ms), prompt_tokens, output_tokens,
**                    optional complexity (in [0,1]); columns in any order, '#' comment lines
**   Mooncake JSONL   one object a line: timestamp (ms), input_length, output_length, hash_ids
** Rows must be sorted by time; lengths must be >= 1 (0 output tokens is read as 1, and said in
** the source text). Returns QSR_ERR_IO (missing file) or QSR_ERR_CONFIG with "file:line: why". */
int qsr_trace_read(const char *path, struct qsr_trace *t, char **err);

/* Synthesises a trace from a spec of comma-separated key=value after the
** arrival process ("poisson" or "gamma"):
**   synthetic:poisson,rate=0.5,n=1000,prompt=512,output=128,seed=1
**   synthetic:gamma,rate=2,cv=4,n=10000,prompt=lognormal:1000:1.0,output=exp:200
** keys: rate (requests/s, required), cv (gamma inter-arrival coefficient of variation, default 1),
** n (requests, default 1000), duration (s; alternative to n), seed (default 1),
** prompt / output: a length distribution: N (fixed), uniform:A:B, exp:MEAN, lognormal:MEAN:CV,
** (defaults prompt=512, output=128), complexity=beta:A:B (default none).
** Errors name the key. */
int qsr_trace_synth(const char *spec, struct qsr_trace *t, char **err);

/* Path or "synthetic:..." -> qsr_trace_read or qsr_trace_synth. */
int qsr_trace_load(const char *path_or_spec, struct qsr_trace *t, char **err);

/* Divides every arrival time by rate_scale (2 = twice the load). */
void qsr_trace_scale(struct qsr_trace *t, double rate_scale);

/* Keeps the first n requests (n >= t->n: no-op). */
void qsr_trace_head(struct qsr_trace *t, size_t n);

void qsr_trace_free(struct qsr_trace *t);   /* NULL-safe; leaves *t zeroed */

#endif
