/*
** deploy.h -- deployment configs: what exactly to run (schema: docs/deploy.md).
*/
#ifndef QSR_DEPLOY_H
#define QSR_DEPLOY_H

#include <stdint.h>
#include <stdio.h>

#include "costmodel/types.h"

struct qsr_provenance {
  char database[512];
  char sweep[64];
  char sweep_hash[17];
  int64_t point;
  char pick[32];
};

/* Writes the deployment config of one evaluated design. */
int qsr_deploy_write(FILE *f, const struct qsr_device *dev, const struct qsr_model *m, const struct qsr_design *d,
                     const struct qsr_result *r, const struct qsr_provenance *pv, char **err);

/* Reads and validates a deployment config against its model: formats,
** kernel variants, head assignment, routing. Fills the device and model
** names and the design it describes (for re-prediction) and the predicted
** tpot/mem from the file. */
struct qsr_deploy_info {
  char device[QSR_NAME_MAX], model[QSR_NAME_MAX];
  struct qsr_design d;
  double tpot_ms, mem_peak_mb, quality_loss;
  int layers;
};
int qsr_deploy_check(const char *path, struct qsr_deploy_info *info, char **err);

#endif
