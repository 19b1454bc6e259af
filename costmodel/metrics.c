/*
** metrics.c -- the metric table (see metrics.h). Append-only: the order is
** the column order of result databases.
*/
#include "costmodel/metrics.h"

#include <string.h>

#define M(name, unit, desc, field, max) { name, unit, desc, offsetof(struct qsr_result, field), max }
const struct qsr_metric qsr_metric_tab[] = {
  M("prefill_ms", "ms", "one prefill pass (DiT: one step)", prefill_ms, 0),
  M("ttft_ms", "ms", "time to first token", ttft_ms, 0),
  M("tpot_ms", "ms", "mean time per output token", tpot_ms, 0),
  M("e2e_ms", "ms", "end-to-end latency of one batch", e2e_ms, 0),
  M("tokens_per_s", "tok/s", "generated tokens per second", tokens_per_s, 1),
  M("mem_weights_mb", "MB", "weight memory", mem_weights_mb, 0),
  M("mem_kv_mb", "MB", "KV-cache memory", mem_kv_mb, 0),
  M("mem_act_mb", "MB", "activation memory", mem_act_mb, 0),
  M("mem_peak_mb", "MB", "peak memory", mem_peak_mb, 0),
  M("offload_mb", "MB", "weights kept in an offload tier", offload_mb, 0),
  M("energy_j_per_token", "J", "energy per token (per image for DiT)", energy_j_per_token, 0),
  M("quality_loss", "", "quality-loss proxy (relative perplexity increase)", quality_loss, 0),
  M("avg_weight_bits", "bits", "mean weight code bits", avg_weight_bits, 0),
  M("experts_per_token", "", "mean active experts per token", experts_per_token, 0),
  M("dropped_frac", "", "token-expert assignments dropped", dropped_frac, 0),
};
const int qsr_metric_count = (int)(sizeof qsr_metric_tab / sizeof qsr_metric_tab[0]);

int qsr_metric_find(const char *name) {
  for (int i = 0; i < qsr_metric_count; i++)
    if (!strcmp(qsr_metric_tab[i].name, name)) return i;
  return -1;
}
