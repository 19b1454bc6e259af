/*
** err.h -- qsr's return codes and error text.
**
** Every fallible library call returns an int from the enum below and, where it
** takes a `char **err`, sets *err to a heap string the caller frees with free()
** (NULL on success). Messages about input name "file:line:col: key: why".
*/
#ifndef QSR_ERR_H
#define QSR_ERR_H

#include <stdio.h>
#include <stdlib.h>

enum qsr_err {
  QSR_OK = 0,
  QSR_ERR_NOMEM,    /* allocation failed */
  QSR_ERR_CONFIG,   /* bad spec file or value */
  QSR_ERR_IO,       /* file missing or unreadable */
  QSR_ERR_USAGE,    /* bad command line */
  QSR_ERR_DB,       /* SQLite */
  QSR_ERR_CUDA,     /* CUDA runtime */
  QSR_ERR_COUNT
};

const char *qsr_errstr(int rc);

/* Formats a message into *err (if err != NULL) and returns rc. */
int qsr_errf(char **err, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Abort with file and line on a broken invariant (never on user input). */
#define QSR_ASSERT(x)                                                        \
  do {                                                                       \
    if (!(x)) {                                                              \
      fprintf(stderr, "%s:%d: internal error: %s\n", __FILE__, __LINE__, #x); \
      abort();                                                               \
    }                                                                        \
  } while (0)

#endif
