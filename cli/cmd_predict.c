/*
** cmd_predict.c -- `qsr predict`: one design point, a table or JSON.
*/
#include "cli/cli.h"
#include "costmodel/costmodel.h"
#include "kernels/qformat_traits.h"
#include "spec/spec.h"
#include "util/err.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: qsr predict -d DEVICE -m MODEL [-c DESIGN] [--set key=value]... [--quality PROFILE|none] [--json]\n\n"
          "Predicts prefill/decode latency, throughput, memory, energy and a quality-loss proxy of one\n"
          "design point, with a per-op breakdown that says what bounds each op.\n\n"
          "  -d, --device NAME    configs/devices/NAME.yaml or a path (qsr list devices)\n"
          "  -m, --model NAME     configs/models/NAME.yaml or a path (qsr list models)\n"
          "  -c, --config DESIGN  design file (configs/designs/NAME.yaml or a path); default: the\n"
          "                       model's baseline (FP16 weights/activations/KV, dense heads, own routing)\n"
          "      --set key=value  override a design key; value is YAML: --set quant.weights.bits=4,\n"
          "                       --set attention.dense_layers=[0,31]  (qsr list keys shows every key)\n"
          "      --quality NAME   quality profile (default: default); none disables the proxy\n"
          "      --json           machine-readable output\n");
}

static int arg_val(int argc, char **argv, int *i, const char *s, const char *l, const char **out) {
  const char *a = argv[*i];
  size_t ll = strlen(l);
  if (!strcmp(a, s) || !strcmp(a, l)) {
    if (*i + 1 >= argc) return -1;
    *out = argv[++*i];
    return 1;
  }
  if (!strncmp(a, l, ll) && a[ll] == '=') { *out = a + ll + 1; return 1; }
  return 0;
}

static void print_json(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                       const struct qsr_result *r, const char *design_name, const char *quality_name) {
  FILE *f = stdout;
  fprintf(f, "{\n  \"device\": ");
  qsr_json_str(f, dev->name);
  fprintf(f, ",\n  \"model\": ");
  qsr_json_str(f, m->name);
  fprintf(f, ",\n  \"design\": ");
  qsr_json_str(f, design_name);
  fprintf(f, ",\n  \"feasible\": %s,\n  \"why\": ", r->feasible ? "true" : "false");
  qsr_json_str(f, r->why);
  fprintf(f,
          ",\n  \"batch\": %d, \"prompt\": %d, \"gen\": %d, \"steps\": %d,\n"
          "  \"prefill_ms\": %.6g,\n  \"ttft_ms\": %.6g,\n  \"tpot_ms\": %.6g,\n  \"e2e_ms\": %.6g,\n"
          "  \"tokens_per_s\": %.6g,\n",
          d->batch, d->prompt, d->gen, d->steps, r->prefill_ms, r->ttft_ms, r->tpot_ms, r->e2e_ms, r->tokens_per_s);
  if (m->family == QSR_FAMILY_DIT) fprintf(f, "  \"images_per_s\": %.6g,\n", r->images_per_s);
  fprintf(f,
          "  \"memory_mb\": {\"weights\": %.6g, \"kv\": %.6g, \"activations\": %.6g, \"peak\": %.6g, \"usable\": %.6g},\n"
          "  \"fits\": %s,\n  \"offload_tier\": ",
          r->mem_weights_mb, r->mem_kv_mb, r->mem_act_mb, r->mem_peak_mb, dev->usable_gb * 1e3, r->fits ? "true" : "false");
  static const char *const tiers[] = { "host", "nvme", "flash" };
  if (r->offload_tier >= 0) qsr_json_str(f, tiers[r->offload_tier]);
  else fputs("null", f);
  fprintf(f,
          ",\n  \"offload_mb\": %.6g,\n  \"energy_j_per_token\": %.6g,\n  \"power_w\": %.6g,\n"
          "  \"quality_loss\": %.6g,\n  \"quality_profile\": ",
          r->offload_mb, r->energy_j_per_token, r->power_w, r->quality_loss);
  qsr_json_str(f, quality_name);
  fprintf(f,
          ",\n  \"avg_weight_bits\": %.6g,\n  \"params_b\": %.6g,\n  \"active_params_b\": %.6g,\n"
          "  \"experts_per_token\": %.6g,\n  \"experts_touched\": %.6g,\n  \"dropped_frac\": %.6g,\n",
          r->avg_weight_bits, r->params_b, r->active_params_b, r->experts_per_token, r->experts_touched,
          r->dropped_frac);
  fprintf(f, "  \"breakdown\": [");
  for (int i = 0; i < r->n_ops; i++) {
    const struct qsr_opcost *o = &r->ops[i];
    fprintf(f, "%s\n    {\"op\": \"%s\", \"phase\": \"%s\", \"ms\": %.6g, \"bound\": \"%s\", \"gbytes\": %.6g, \"gflop\": %.6g}",
            i ? "," : "", qsr_op_name(o->kind), qsr_phase_name(o->phase), o->ms, qsr_bound_name(o->bound), o->gbytes,
            o->gflop);
  }
  fprintf(f, "\n  ],\n  \"notes\": [");
  int first = 1;
  for (int b = 0; b < QSR_NOTE_COUNT_; b++)
    if (r->notes & (1u << b)) {
      fputs(first ? "\n    " : ",\n    ", f);
      qsr_json_str(f, qsr_note_text(1u << b));
      first = 0;
    }
  fprintf(f, "%s]\n}\n", first ? "" : "\n  ");
}

static const char *wq_str(struct qsr_wq w, char *buf, size_t n) {
  if (w.fmt == QSR_WFMT_FP16 || w.fmt == QSR_WFMT_BF16 || w.fmt == QSR_WFMT_FP8)
    snprintf(buf, n, "%s", qsr_wfmt_tab[w.fmt].name);
  else if (w.group) snprintf(buf, n, "%s%d g%d", qsr_wfmt_tab[w.fmt].name, w.bits, w.group);
  else snprintf(buf, n, "%s%d%s", qsr_wfmt_tab[w.fmt].name, w.bits, w.bits < 16 && w.fmt != QSR_WFMT_FP8 ? " per-ch" : "");
  return buf;
}

static void print_table(const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                        const struct qsr_result *r, const char *design_name, const char *quality_name) {
  char b1[48];
  printf("qsr predict: %s on %s, design %s\n", m->name, dev->name, design_name);
  printf("  weights  %s default, avg %.2f bits, %.2f B params (%.2f B active per token)\n",
         wq_str(d->weights, b1, sizeof b1), r->avg_weight_bits, r->params_b, r->active_params_b);
  static const char *const actn[] = { "fp16", "int8", "fp8" };
  printf("  runtime  batch %d, ", d->batch);
  if (m->family == QSR_FAMILY_DIT) printf("%d tokens/image, %d steps", m->dit_tokens, d->steps);
  else printf("prompt %d, gen %d", d->prompt, d->gen);
  printf(", activations %s, kv %s", actn[d->act], qsr_kvfmt_names[d->kv]);
  if (d->route != QSR_ROUTE_NONE) printf(", %.2f experts/token", r->experts_per_token);
  printf("%s%s\n", d->power_mode[0] ? ", power mode " : "", d->power_mode);
  if (!r->feasible) {
    printf("\n  INFEASIBLE: %s\n", r->why);
  }
  printf("\n");
  if (m->family == QSR_FAMILY_DIT) {
    printf("  step       %10.2f ms   (one denoising step, batch %d)\n", r->prefill_ms, d->batch);
    printf("  end-to-end %10.1f ms   %.3g images/s\n", r->e2e_ms, r->images_per_s);
  } else {
    printf("  prefill    %10.2f ms   TTFT %.2f ms\n", r->prefill_ms, r->ttft_ms);
    printf("  decode     %10.3f ms/token (mean over contexts %d..%d)\n", r->tpot_ms, d->prompt + 1, d->prompt + d->gen);
    printf("  end-to-end %10.1f ms   %.1f tokens/s\n", r->e2e_ms, r->tokens_per_s);
  }
  printf("  energy     %10.4f J/%s at %.1f W mean\n\n", r->energy_j_per_token,
         m->family == QSR_FAMILY_DIT ? "image" : "token", r->power_w);
  double phase_ms[2] = { 0, 0 };
  for (int i = 0; i < r->n_ops; i++) phase_ms[r->ops[i].phase] += r->ops[i].ms;
  printf("  %-10s %-8s %10s %6s  %-8s %10s %10s\n", "op", "phase", "ms/pass", "share", "bound", "GB", "GFLOP");
  for (int ph = 0; ph < 2; ph++)
    for (int i = 0; i < r->n_ops; i++) {
      const struct qsr_opcost *o = &r->ops[i];
      if (o->phase != ph) continue;
      printf("  %-10s %-8s %10.4f %5.1f%%  %-8s %10.4f %10.3f\n", qsr_op_name(o->kind),
             m->family == QSR_FAMILY_DIT ? "step" : qsr_phase_name(o->phase), o->ms,
             phase_ms[ph] > 0 ? 100 * o->ms / phase_ms[ph] : 0, qsr_bound_name(o->bound), o->gbytes, o->gflop);
    }
  printf("\n  memory (MB = 1e6 B)  weights %.0f  kv %.0f  activations %.0f  peak %.0f  usable %.0f  fits %s\n",
         r->mem_weights_mb, r->mem_kv_mb, r->mem_act_mb, r->mem_peak_mb, dev->usable_gb * 1e3, r->fits ? "yes" : "no");
  if (r->offload_tier >= 0) {
    static const char *const tiers[] = { "host DRAM", "NVMe", "flash" };
    printf("  offload  %.0f MB of weights live in %s and stream every pass\n", r->offload_mb, tiers[r->offload_tier]);
  }
  if (d->route != QSR_ROUTE_NONE)
    printf("  routing  %.2f distinct experts per layer per decode step, %.2f%% of prefill assignments dropped\n",
           r->experts_touched, 100 * r->dropped_frac);
  if (quality_name[0])
    printf("  quality  %.4f  -- a PROXY (relative perplexity increase from profile '%s'), not a measurement\n",
           r->quality_loss, quality_name);
  if (r->notes) {
    printf("\n  notes:\n");
    for (int b = 0; b < QSR_NOTE_COUNT_; b++)
      if (r->notes & (1u << b)) printf("  - %s\n", qsr_note_text(1u << b));
  }
}

int qsr_cmd_predict(int argc, char **argv) {
  const char *dev_name = NULL, *model_name = NULL, *design = NULL, *quality = "default";
  const char *sets[MAX_SETS];
  int nsets = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    int r;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
    if (!strcmp(argv[i], "--json")) { json = 1; continue; }
    if ((r = arg_val(argc, argv, &i, "-d", "--device", &v))) { if (r < 0) goto missing; dev_name = v; continue; }
    if ((r = arg_val(argc, argv, &i, "-m", "--model", &v))) { if (r < 0) goto missing; model_name = v; continue; }
    if ((r = arg_val(argc, argv, &i, "-c", "--config", &v))) { if (r < 0) goto missing; design = v; continue; }
    if ((r = arg_val(argc, argv, &i, "-q", "--quality", &v))) { if (r < 0) goto missing; quality = v; continue; }
    if ((r = arg_val(argc, argv, &i, "-s", "--set", &v))) {
      if (r < 0) goto missing;
      if (nsets == MAX_SETS) return qsr_cli_fail(QSR_ERR_USAGE, strdup("too many --set options"));
      sets[nsets++] = v;
      continue;
    }
    fprintf(stderr, "qsr predict: unknown option '%s'\n", argv[i]);
    usage(stderr);
    return 2;
  missing:
    fprintf(stderr, "qsr predict: %s needs a value\n", argv[i]);
    return 2;
  }
  if (!dev_name || !model_name) {
    fprintf(stderr, "qsr predict: -d DEVICE and -m MODEL are required\n");
    usage(stderr);
    return 2;
  }
  char path[PATH_MAX], *err = NULL;
  struct qsr_device dev;
  struct qsr_model m;
  struct qsr_quality q;
  static struct qsr_design_builder b;
  int rc;
  if ((rc = qsr_cli_device(dev_name, &dev, path, sizeof path, &err)))
    return qsr_cli_fail(rc, err);
  if ((rc = qsr_spec_resolve("models", model_name, path, sizeof path, &err)) ||
      (rc = qsr_model_load(path, &m, &err)))
    return qsr_cli_fail(rc, err);
  int use_q = strcmp(quality, "none") != 0;
  if (use_q && ((rc = qsr_spec_resolve("quality", quality, path, sizeof path, &err)) ||
                (rc = qsr_quality_load(path, &q, &err))))
    return qsr_cli_fail(rc, err);
  qsr_design_begin(&b, &m);
  if (design && ((rc = qsr_spec_resolve("designs", design, path, sizeof path, &err)) ||
                 (rc = qsr_design_load(&b, path, &err))))
    return qsr_cli_fail(rc, err);
  for (int i = 0; i < nsets; i++)
    if ((rc = qsr_design_set(&b, sets[i], &err))) return qsr_cli_fail(rc, err);
  if ((rc = qsr_design_finish(&b, &m, &err))) {
    char *msg = NULL;
    qsr_errf(&msg, rc, "%s: %s", design ? design : "design", err);
    free(err);
    return qsr_cli_fail(rc, msg);
  }
  struct qsr_result res;
  if ((rc = qsr_eval(&dev, &m, &b.d, use_q ? &q : NULL, &res, &err))) return qsr_cli_fail(rc, err);
  char dn[PATH_MAX + 64];
  snprintf(dn, sizeof dn, "%s%s", design ? design : "baseline", nsets ? " + --set" : "");
  if (json) print_json(&dev, &m, &b.d, &res, dn, use_q ? quality : "");
  else print_table(&dev, &m, &b.d, &res, dn, use_q ? quality : "");
  return 0;
}
