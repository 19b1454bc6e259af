/*
** err.c -- the message table for enum qsr_err and the formatted-error helper.
*/
#include "util/err.h"

#include <stdarg.h>
#include <string.h>

static const char *const qsr_errstr_tab[QSR_ERR_COUNT] = {
  /* QSR_OK         */ "ok",
  /* QSR_ERR_NOMEM  */ "out of memory",
  /* QSR_ERR_CONFIG */ "bad configuration",
  /* QSR_ERR_IO     */ "i/o error",
  /* QSR_ERR_USAGE  */ "bad usage",
  /* QSR_ERR_DB     */ "database error",
  /* QSR_ERR_CUDA   */ "cuda error",
};

const char *qsr_errstr(int rc) {
  if (rc < 0 || rc >= QSR_ERR_COUNT) return "unknown error";
  return qsr_errstr_tab[rc];
}

int qsr_errf(char **err, int rc, const char *fmt, ...) {
  if (!err) return rc;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  char *s = malloc((size_t)n + 1);
  if (s) {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  free(*err);
  *err = s;
  return rc;
}
