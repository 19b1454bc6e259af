/*
** routes.h -- expert routing traces for the serving simulator.
**
** A routing source gives, for each new token of a sequence, the experts
** that token picks in every MoE layer. It is either recorded (a CSV of
** token, layer, expert rows, replayed in order) or synthesised from the
** statistics files in ../shared/data/moe: per-layer expert popularity
** (layer, expert, count, share_of_layer_selections) and, when a layer summary
** is given, the token-to-token locality (consecutive_token_expert_overlap).
** Synthesis is seeded (GSL) and deterministic.
*/
#ifndef QSR_ROUTES_H
#define QSR_ROUTES_H

#include <stddef.h>
#include <stdint.h>

typedef struct qsr_routes qsr_routes;

/* Recorded trace: CSV with header token,layer,expert; one row per selection;
** token ids ascending from 0, layers 0..layers-1, experts 0..experts-1; each
** (token, layer) has 1..top_k rows. Replayed cyclically. */
int qsr_routes_load_csv(const char *path, int layers, int experts, int top_k, qsr_routes **out, char **err);

/* Synthesised: popularity from counts_csv, locality from summary_csv (may be
** NULL: none, say so in the description). The file's layers are mapped onto
** the model's `layers` proportionally; its expert count must equal `experts`. */
int qsr_routes_synth(const char *counts_csv, const char *summary_csv, int layers, int experts, int top_k,
                     uint64_t seed, qsr_routes **out, char **err);

void qsr_routes_free(qsr_routes *r);          /* NULL-safe */

int qsr_routes_recorded(const qsr_routes *r);  /* 1 recorded, 0 synthesised */
/* One line for the output: "recorded: FILE (N tokens)" or
** "synthesised from FILE popularity + FILE locality (overlap 0.23 mean)". */
const char *qsr_routes_desc(const qsr_routes *r);
int qsr_routes_layers(const qsr_routes *r);
int qsr_routes_experts(const qsr_routes *r);
/* Popularity of each expert at a (model) layer, summing to 1. */
const double *qsr_routes_popularity(const qsr_routes *r, int layer);

/* Per-sequence state (previous token's experts, trace cursor): a caller-owned
** block of qsr_routes_state_size() bytes, set up by qsr_routes_seq_init. */
size_t qsr_routes_state_size(const qsr_routes *r);
void qsr_routes_seq_init(qsr_routes *r, void *state, uint64_t seq_id);

/* The next token of a sequence: writes its k experts (distinct) in each
** layer to ids[l * k + j], l < layers, j < k (1 <= k <= the model's top_k;
** a recorded trace with fewer selections for a (token, layer) repeats the
** last one's neighbour-free choices from popularity). */
void qsr_routes_token(qsr_routes *r, void *state, int k, int *ids);

#endif
