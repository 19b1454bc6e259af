/*
** device_spec.c -- configs/devices/NAME.yaml -> struct qsr_device.
*/
#include "costmodel/costmodel.h"
#include "spec/spec.h"
#include "util/err.h"

#include "kernels/qformat.h"
#include "kernels/qformat_traits.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dev_load {
  struct qsr_device dev;
  char default_mode[QSR_NAME_MAX];
};

static const char *const kind_names[] = { "gpu", "soc", "cpu", NULL };
static const char *const eff_src_names[] = { "default", "fitted", NULL };

static int set_mode(void *obj, struct qsr_kctx *k) {
  struct qsr_device *dev = &((struct dev_load *)obj)->dev;
  const char *name = k->seg[1], *field = k->seg[2];
  int i;
  for (i = 0; i < dev->n_modes; i++)
    if (!strcmp(dev->modes[i].name, name)) break;
  if (i == dev->n_modes) {
    if (dev->n_modes == QSR_MAX_MODES) return qsr_kctx_error(k, "more than %d power modes", QSR_MAX_MODES);
    if (strlen(name) >= QSR_NAME_MAX) return qsr_kctx_error(k, "mode name too long");
    snprintf(dev->modes[i].name, QSR_NAME_MAX, "%s", name);
    dev->modes[i].compute_scale = dev->modes[i].bw_scale = 1;
    dev->n_modes++;
  }
  struct qsr_power_mode *pm = &dev->modes[i];
  if (!strcmp(field, "compute_scale")) return qsr_kctx_f64(k, 0.01, 4, &pm->compute_scale);
  if (!strcmp(field, "bw_scale")) return qsr_kctx_f64(k, 0.01, 4, &pm->bw_scale);
  if (!strcmp(field, "power_w")) return qsr_kctx_f64(k, 0.1, 5000, &pm->power_w);
  return qsr_kctx_error(k, "unknown key (known here: compute_scale, bw_scale, power_w)");
}

/* decode_ops.<format><bits>: "int4", "lut3", "int_sym8"; the float formats
** by name alone: "fp16", "bf16", "fp8". */
static int set_decode(void *obj, struct qsr_kctx *k) {
  struct qsr_device *dev = &((struct dev_load *)obj)->dev;
  const char *s = k->seg[1];
  int whole = qsr_wfmt_from_name(s);     /* fp16, bf16, fp8: the name carries the width */
  if (whole == QSR_WFMT_FP16 || whole == QSR_WFMT_BF16 || whole == QSR_WFMT_FP8)
    return qsr_kctx_f64(k, 0, 1e4, &dev->decode_ops[whole][whole == QSR_WFMT_FP8 ? 8 : 16]);
  size_t n = strlen(s), i = n;
  while (i > 0 && isdigit((unsigned char)s[i - 1])) i--;
  char fmt[32];
  if (i == 0 || i == n || i >= sizeof fmt)
    return qsr_kctx_error(k, "'%s': write a format and its bits, e.g. int4, fp16, lut3", s);
  memcpy(fmt, s, i);
  fmt[i] = 0;
  int f = qsr_wfmt_from_name(fmt), bits = atoi(s + i);
  if (f < 0) return qsr_kctx_error(k, "'%s': unknown weight format", fmt);
  if (bits < 1 || bits >= QSR_DECODE_BITS) return qsr_kctx_error(k, "bits %d out of range 1..16", bits);
  return qsr_kctx_f64(k, 0, 1e4, &dev->decode_ops[f][bits]);
}

#define D(f) offsetof(struct dev_load, dev.f)
#define F64(p, f, lo, hi, fl) { p, QSR_K_F64, D(f), lo, hi, NULL, NULL, fl, NULL }
#define EFF(c, cls)                                                            \
  F64("efficiency." c ".compute", eff[cls].compute, 0.01, 1, 0),             \
  F64("efficiency." c ".memory", eff[cls].memory, 0.01, 1, 0),               \
  F64("efficiency." c ".compute_half_gflop", eff[cls].compute_half_gflop, 0, 1e4, 0), \
  F64("efficiency." c ".memory_half_mb", eff[cls].memory_half_mb, 0, 1e5, 0)
#define FIT(c, cls) F64("efficiency." c ".fit_rms_pct", eff[cls].fit_rms_pct, 0, 1e4, 0)
#define TIER(t, idx)                                                           \
  F64("offload." t ".bw_gbps", offload[idx].bw_gbps, 0.001, 1e5, 0),         \
  F64("offload." t ".capacity_gb", offload[idx].capacity_gb, 0.001, 1e7, 0)

static const struct qsr_key device_keys[] = {
  { "name", QSR_K_STR, D(name), 1, 0, NULL, NULL, QSR_KEY_REQUIRED, "file stem" },
  { "kind", QSR_K_ENUM, D(kind), 1, 0, kind_names, NULL, QSR_KEY_REQUIRED, "gpu | soc | cpu" },
  F64("memory_gb", memory_gb, 0.001, 1e5, QSR_KEY_REQUIRED),
  F64("usable_gb", usable_gb, 0.001, 1e5, QSR_KEY_REQUIRED),
  F64("bw_gbps", bw_gbps, 0.001, 1e5, QSR_KEY_REQUIRED),
  F64("l2_mb", l2_mb, 0, 1e5, 0),
  { "units", QSR_K_INT, D(units), 1, 1e6, NULL, NULL, 0, "SMs or cores" },
  F64("peak_tflops.fp32", peak_tflops[QSR_PEAK_FP32], 0, 1e5, QSR_KEY_REQUIRED),
  F64("peak_tflops.fp16", peak_tflops[QSR_PEAK_FP16], 0, 1e5, 0),
  F64("peak_tflops.fp16_tensor", peak_tflops[QSR_PEAK_FP16_TENSOR], 0, 1e5, 0),
  F64("peak_tflops.bf16_tensor", peak_tflops[QSR_PEAK_BF16_TENSOR], 0, 1e5, 0),
  F64("peak_tflops.int8_tensor", peak_tflops[QSR_PEAK_INT8_TENSOR], 0, 1e5, 0),
  F64("peak_tflops.fp8_tensor", peak_tflops[QSR_PEAK_FP8_TENSOR], 0, 1e5, 0),
  F64("peak_tflops.int4_tensor", peak_tflops[QSR_PEAK_INT4_TENSOR], 0, 1e5, 0),
  F64("launch_us", launch_us, 0, 1e5, QSR_KEY_REQUIRED),
  F64("sync_us", sync_us, 0, 1e5, 0),
  F64("tdp_w", tdp_w, 0.1, 1e5, QSR_KEY_REQUIRED),
  F64("idle_w", idle_w, 0, 1e5, QSR_KEY_REQUIRED),
  TIER("host", QSR_TIER_HOST), TIER("nvme", QSR_TIER_NVME), TIER("flash", QSR_TIER_FLASH),
  { "power_modes.*.*", QSR_K_CUSTOM, 0, 1, 0, NULL, set_mode, 0, "compute_scale, bw_scale, power_w" },
  { "default_power_mode", QSR_K_STR, offsetof(struct dev_load, default_mode), 1, 0, NULL, NULL, 0, NULL },
  EFF("gemm", QSR_OPCLASS_GEMM), EFF("attention", QSR_OPCLASS_ATTENTION), EFF("moe", QSR_OPCLASS_MOE),
  EFF("elementwise", QSR_OPCLASS_ELEMENTWISE), EFF("embedding", QSR_OPCLASS_EMBEDDING),
  EFF("gemv", QSR_OPCLASS_GEMV),
  FIT("gemm", QSR_OPCLASS_GEMM), FIT("attention", QSR_OPCLASS_ATTENTION), FIT("moe", QSR_OPCLASS_MOE),
  FIT("elementwise", QSR_OPCLASS_ELEMENTWISE), FIT("embedding", QSR_OPCLASS_EMBEDDING), FIT("gemv", QSR_OPCLASS_GEMV),
  { "decode_ops.*", QSR_K_CUSTOM, 0, 1, 0, NULL, set_decode, 0, "vector ops per weight decoded: int4, fp16, lut3..." },
  F64("kv_decode_ops.fp16", kv_decode_ops[QSR_KVFMT_FP16], 0, 1e4, 0),
  F64("kv_decode_ops.int8", kv_decode_ops[QSR_KVFMT_INT8], 0, 1e4, 0),
  F64("kv_decode_ops.int4", kv_decode_ops[QSR_KVFMT_INT4], 0, 1e4, 0),
  { "efficiency_source", QSR_K_ENUM, D(eff_fitted), 1, 0, eff_src_names, NULL, 0, "default | fitted" },
};
#define N_DEVICE_KEYS ((int)(sizeof device_keys / sizeof device_keys[0]))

static void stem(const char *path, char *out, size_t cap) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  size_t n = strcspn(b, ".");
  snprintf(out, cap, "%.*s", (int)n, b);
}

int qsr_device_load(const char *path, struct qsr_device *dev, char **err) {
  struct dev_load L;
  uint8_t seen[N_DEVICE_KEYS];
  memset(&L, 0, sizeof L);
  memset(seen, 0, sizeof seen);
  for (int c = 0; c < QSR_OPCLASS_COUNT; c++)
    L.dev.eff[c] = (struct qsr_eff){ -1, -1, -1, -1, 0 };
  L.dev.default_mode = -1;
  int rc = qsr_spec_load(path, "device", device_keys, N_DEVICE_KEYS, &L, seen, err);
  if (rc) return rc;
  struct qsr_device *d = &L.dev;
  char st[QSR_NAME_MAX];
  stem(path, st, sizeof st);
  if (strcmp(st, d->name))
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: device.name: '%s' must equal the file name '%s'", path, d->name, st);
  if (d->usable_gb > d->memory_gb)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: device.usable_gb: %g exceeds memory_gb %g", path, d->usable_gb, d->memory_gb);
  if (d->idle_w >= d->tdp_w)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: device.idle_w: %g must be below tdp_w %g", path, d->idle_w, d->tdp_w);
  if (d->peak_tflops[QSR_PEAK_FP32] <= 0)
    return qsr_errf(err, QSR_ERR_CONFIG, "%s: device.peak_tflops.fp32: must be > 0", path);
  for (int c = 0; c < QSR_OPCLASS_COUNT; c++) {
    struct qsr_eff def;
    qsr_eff_default(d->kind, c, &def);
    if (c == QSR_OPCLASS_GEMV) def = d->eff[QSR_OPCLASS_GEMM];  /* no gemv section: the GEMM figures */
    struct qsr_eff *e = &d->eff[c];
    if (e->compute < 0) e->compute = def.compute;
    if (e->memory < 0) e->memory = def.memory;
    if (e->compute_half_gflop < 0) e->compute_half_gflop = def.compute_half_gflop;
    if (e->memory_half_mb < 0) e->memory_half_mb = def.memory_half_mb;
  }
  if (L.default_mode[0]) {
    for (int i = 0; i < d->n_modes; i++)
      if (!strcmp(d->modes[i].name, L.default_mode)) d->default_mode = i;
    if (d->default_mode < 0)
      return qsr_errf(err, QSR_ERR_CONFIG, "%s: device.default_power_mode: '%s' is not among power_modes", path, L.default_mode);
  }
  *dev = *d;
  return QSR_OK;
}

/* ---- calibrated device files ------------------------------------------- */

static int indent_of(const char *l) { int i = 0; while (l[i] == ' ') i++; return i; }

/* Lines of the device file's own fitted sections, which a calibration
** replaces: efficiency, efficiency_source, decode_ops, kv_decode_ops and
** launch_us (a block is its key line and every deeper-indented line). */
static int fitted_key(const char *l) {
  static const char *const keys[] = { "efficiency:", "efficiency_source:", "decode_ops:", "kv_decode_ops:",
                                      "launch_us:" };
  const char *s = l + indent_of(l);
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    if (!strncmp(s, keys[i], strlen(keys[i]))) return 1;
  return 0;
}

int qsr_device_write_fitted(const char *src, const char *out, const struct qsr_device *dev, const char *note,
                            char **err) {
  FILE *in = fopen(src, "r");
  if (!in) return qsr_errf(err, QSR_ERR_IO, "%s: cannot read: %s", src, strerror(errno));
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fclose(in);
    return qsr_errf(err, QSR_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
  }
  fprintf(f, "%s", note);
  char line[4096];
  int skip = -1, dev_indent = 2;
  while (fgets(line, sizeof line, in)) {
    int blank = line[strspn(line, " \t\r\n")] == 0;
    int ind = indent_of(line);
    if (skip >= 0) {
      if (blank || ind > skip || (line[ind] == '#' && ind > skip)) continue;
      skip = -1;
    }
    if (!strncmp(line, "# qsr calibrate", 15)) continue;   /* the previous calibration's note */
    if (!blank && line[ind] != '#' && fitted_key(line)) {
      skip = ind;
      dev_indent = ind;
      continue;
    }
    fputs(line, f);
  }
  fclose(in);
  const char *I = "        ";
  int di = dev_indent < 8 ? dev_indent : 2;
  fprintf(f, "%.*s# fitted by qsr calibrate (see the header): launch cost, efficiencies, decode costs\n", di, I);
  fprintf(f, "%.*slaunch_us: %.4g\n", di, I, dev->launch_us);
  fprintf(f, "%.*sefficiency:\n", di, I);
  for (int c = 0; c < QSR_OPCLASS_FITTED; c++) {
    const struct qsr_eff *e = &dev->eff[c];
    char key[32];
    snprintf(key, sizeof key, "%s:", qsr_opclass_name(c));
    fprintf(f, "%.*s  %-13s { compute: %.4g, memory: %.4g, compute_half_gflop: %.4g, memory_half_mb: %.4g",
            di, I, key, e->compute, e->memory, e->compute_half_gflop, e->memory_half_mb);
    if (e->fit_rms_pct > 0) fprintf(f, ", fit_rms_pct: %.3g", e->fit_rms_pct);
    fprintf(f, " }\n");
  }
  int any = 0;
  for (int w = 0; w < QSR_DECODE_FMTS; w++)
    for (int b = 1; b < QSR_DECODE_BITS; b++)
      if (dev->decode_ops[w][b] > 0) {
        if (!any++) fprintf(f, "%.*sdecode_ops:       # vector ops per weight decoded, by format and bits\n", di, I);
        char nm[32];
        fprintf(f, "%.*s  %s: %.4g\n", di, I, qsr_wfmt_bits_name(w, b, nm, sizeof nm), dev->decode_ops[w][b]);
      }
  any = 0;
  for (int k = 0; k < QSR_DECODE_KV; k++)
    if (dev->kv_decode_ops[k] > 0) {
      if (!any++) fprintf(f, "%.*skv_decode_ops:    # vector ops per KV element decoded\n", di, I);
      fprintf(f, "%.*s  %s: %.4g\n", di, I, qsr_kvfmt_names[k], dev->kv_decode_ops[k]);
    }
  fprintf(f, "%.*sefficiency_source: %s\n", di, I, dev->eff_fitted ? "fitted" : "default");
  int bad = ferror(f);
  if (fclose(f) || bad) {
    remove(tmp);
    return qsr_errf(err, QSR_ERR_IO, "%s: write failed", tmp);
  }
  struct qsr_device back;
  char *why = NULL;
  if (qsr_device_load(tmp, &back, &why)) {   /* never leave a file qsr cannot read */
    int rc = qsr_errf(err, QSR_ERR_CONFIG, "calibrated device does not load back: %s", why ? why : "?");
    free(why);
    remove(tmp);
    return rc;
  }
  if (rename(tmp, out)) {
    int rc = qsr_errf(err, QSR_ERR_IO, "%s: cannot rename from %s: %s", out, tmp, strerror(errno));
    remove(tmp);
    return rc;
  }
  return QSR_OK;
}
