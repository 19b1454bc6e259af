/*
** spec.h -- loading devices, models, designs and quality profiles from YAML,
** and resolving names to files. Key tables and schema: docs/specs.md.
** All loaders: QSR_OK, or QSR_ERR_CONFIG / QSR_ERR_IO with *err set to
** "file:line:col: key: why" (caller frees).
*/
#ifndef QSR_SPEC_H
#define QSR_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "costmodel/types.h"
#include "spec/keys.h"

int qsr_device_load(const char *path, struct qsr_device *dev, char **err);
int qsr_model_load(const char *path, struct qsr_model *m, char **err);
/* Writes `out` as a copy of the device file `src` whose fitted sections
** (launch_us, efficiency, decode_ops, kv_decode_ops, efficiency_source) are
** replaced by dev's, every other line and comment kept, `note` (comment
** lines) first. Written to out.tmp, loaded back, then renamed. */
int qsr_device_write_fitted(const char *src, const char *out, const struct qsr_device *dev, const char *note,
                            char **err);
int qsr_quality_load(const char *path, struct qsr_quality *q, char **err);

/* A design being built: the baseline of a model, then a file, then --set
** overrides, then qsr_design_finish() fills implied values and checks. */
struct qsr_design_builder {
  struct qsr_design d;
  uint8_t seen[256];           /* per row of the design key table */
};
void qsr_design_begin(struct qsr_design_builder *b, const struct qsr_model *m);
int  qsr_design_load(struct qsr_design_builder *b, const char *path, char **err);
int  qsr_design_set(struct qsr_design_builder *b, const char *assignment, char **err);
int  qsr_design_finish(struct qsr_design_builder *b, const struct qsr_model *m, char **err);

/* The design key table (for `qsr list keys`, the sweep's axes and the
** knob columns of result databases). */
const struct qsr_key *qsr_design_keys(int *n);
int qsr_design_key_row(const char *path);   /* -1 if unknown */

/* A pre-parsed "key=value" that can be applied to many builders fast. */
struct qsr_patch {
  int row;                     /* design key row */
  double num;                  /* F64, INT, BOOL, ENUM (index) values */
  char text[96];               /* STR value, or YAML text of a CUSTOM value */
};
int  qsr_design_patch_make(const char *key, const char *yaml_value, struct qsr_patch *p, char **err);
void qsr_design_patch_apply(struct qsr_design_builder *b, const struct qsr_patch *p);

/* A knob's value for the results database: returns 0 for a number in
** *num, 1 for text in `text` (lists as "[0,31]"), 2 for a static string in
** *name (enum names), 3 for NULL (a per-class precision that follows
** quant.weights), -1 for a key with no column. */
int qsr_design_knob(const struct qsr_design *d, int row, double *num, const char **name, char *text, size_t cap);

/* Loads a sweep file (sim/sweep.h); devices, models, quality and the base
** design are loaded too. Free with qsr_sweep_free(). */
struct qsr_sweep;
int qsr_sweep_load(const char *path, struct qsr_sweep *sw, char **err);
/* The same from the file's text (heap, owned by sw afterwards, also on
** failure); `origin` names it in messages. */
int qsr_sweep_load_text(const char *origin, char *text, struct qsr_sweep *sw, char **err);

/* kind: "devices", "models", "designs", "quality". A name with a '/' or
** ending in .yaml is a path; otherwise <configs>/<kind>/<name>.yaml, where
** <configs> is $QSR_CONFIG_DIR, ./configs, or configs/ beside the binary. */
int qsr_spec_resolve(const char *kind, const char *name, char *out, size_t cap, char **err);
const char *qsr_spec_config_dir(void);

/* Loads a resource fluctuation trace (sim/fluct.h) from
** configs/fluctuation/NAME.yaml (kind "fluctuation" for qsr_spec_resolve):
** points in time order from t_s 0, scales in (0, 4], mem_gb > 0 or absent
** (-1); name = the file stem. Format and checks: spec/fluct_spec.c. */
struct qsr_fluct;
int qsr_fluct_load(const char *path, struct qsr_fluct *f, char **err);

#endif
