/*
** cmd_list.c -- `qsr list devices|models|designs|quality|fluctuation|keys`.
*/
#include "cli/cli.h"
#include "costmodel/costmodel.h"
#include "sim/fluct.h"
#include "spec/spec.h"
#include "util/err.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names (file stems) of the *.yaml files in <configs>/<kind>. */
static int stems(const char *kind, char ***out, int *n) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/%s", qsr_spec_config_dir(), kind);
  DIR *dp = opendir(dir);
  *out = NULL;
  *n = 0;
  if (!dp) return -1;
  struct dirent *e;
  int cap = 0;
  while ((e = readdir(dp))) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      *out = realloc(*out, (size_t)cap * sizeof **out);
      if (!*out) abort();
    }
    (*out)[(*n)++] = strndup(e->d_name, l - 5);
  }
  closedir(dp);
  qsort(*out, (size_t)*n, sizeof **out, cmp_str);
  return 0;
}

static void free_stems(char **s, int n) {
  for (int i = 0; i < n; i++) free(s[i]);
  free(s);
}

int qsr_cmd_list(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (!strcmp(what, "-h") || !strcmp(what, "--help") || !*what) {
    fprintf(*what ? stdout : stderr, "usage: qsr list devices | models | designs | quality | fluctuation | keys\n");
    return *what ? 0 : 2;
  }
  if (!strcmp(what, "keys")) {
    int n;
    const struct qsr_key *k = qsr_design_keys(&n);
    printf("design keys (YAML sections, or --set key=value):\n");
    for (int i = 0; i < n; i++)
      if (k[i].help && strncmp(k[i].path, "quant.layers.", 13))
        printf("  %-28s %s\n", k[i].path, k[i].help ? k[i].help : "");
    printf("  quant.layers.CLASS.{bits,format,group}  per-class precision; CLASS is one of:\n   ");
    for (int c = 0; c < QSR_LCLASS_COUNT - 1; c++) printf(" %s", qsr_lclass_names[c]);
    printf("\n");
    return 0;
  }
  const char *kind = !strcmp(what, "devices") ? "devices" : !strcmp(what, "models") ? "models"
                   : !strcmp(what, "designs") ? "designs" : !strcmp(what, "quality") ? "quality"
                   : !strcmp(what, "fluctuation") ? "fluctuation" : NULL;
  if (!kind) {
    fprintf(stderr, "qsr list: unknown list '%s' (devices, models, designs, quality, fluctuation, keys)\n", what);
    return 2;
  }
  char **names;
  int n, bad = 0;
  if (stems(kind, &names, &n)) {
    fprintf(stderr, "qsr list: cannot read %s/%s\n", qsr_spec_config_dir(), kind);
    return 1;
  }
  char path[PATH_MAX], *err = NULL;
  if (!strcmp(kind, "devices"))
    printf("%-16s %-4s %9s %9s %9s %12s %10s\n", "device", "kind", "mem GB", "usable", "bw GB/s", "fp16 TFLOPS", "int8 TOPS");
  else if (!strcmp(kind, "models"))
    printf("%-16s %-8s %7s %7s %10s %8s\n", "model", "family", "layers", "hidden", "params B", "experts");
  else if (!strcmp(kind, "fluctuation"))
    printf("%-16s %6s %9s  %s\n", "fluctuation", "points", "period s", "description");
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s/%s.yaml", qsr_spec_config_dir(), kind, names[i]);
    int rc = 0;
    if (!strcmp(kind, "devices")) {
      struct qsr_device d;
      if (!(rc = qsr_device_load(path, &d, &err))) {
        static const char *const kinds[] = { "gpu", "soc", "cpu" };
        double fp16 = d.peak_tflops[QSR_PEAK_FP16_TENSOR] > 0 ? d.peak_tflops[QSR_PEAK_FP16_TENSOR] : d.peak_tflops[QSR_PEAK_FP16];
        printf("%-16s %-4s %9.1f %9.1f %9.1f %12.2f %10.2f\n", d.name, kinds[d.kind], d.memory_gb, d.usable_gb,
               d.bw_gbps, fp16, d.peak_tflops[QSR_PEAK_INT8_TENSOR]);
      }
    } else if (!strcmp(kind, "models")) {
      struct qsr_model m;
      if (!(rc = qsr_model_load(path, &m, &err)))
        printf("%-16s %-8s %7d %7d %10.3f %8d\n", m.name, m.family ? "dit" : "decoder", m.layers, m.hidden,
               qsr_model_params(&m, NULL) / 1e9, m.experts);
    } else if (!strcmp(kind, "fluctuation")) {
      struct qsr_fluct f;
      if (!(rc = qsr_fluct_load(path, &f, &err)))
        printf("%-16s %6d %9g  %s\n", f.name, f.n, f.period_s, f.desc);
    } else {
      printf("%s\n", names[i]);
    }
    if (rc) {
      fprintf(stderr, "qsr: %s\n", err);
      free(err);
      err = NULL;
      bad = 1;
    }
  }
  free_stems(names, n);
  return bad;
}
