/*
** import.h -- end-to-end measurements made with other engines, read into
** rows of the measurements table (store/measure.h), so that qsr validate and
** qsr calibrate can use what users already measured. No SQLite here: a file
** becomes an array of struct qsr_meas, or one error "file:line:col: field:
** why". Formats, the weight-type mapping and every decision: docs/import.md.
**
**   format            | what                                   | source column
**   llama-bench-csv   | llama-bench -o csv  (RFC 4180, header) | 'llama-bench'
**   llama-bench-json  | llama-bench -o json (array of objects) | 'llama-bench'
**   llama-bench-jsonl | llama-bench -o jsonl (object per line) | 'llama-bench'
**   csv               | header device, model, quantisation,    | 'csv'
**                     | batch, prompt, generation,             |
**                     | prompt_tok_s, gen_tok_s (any order)     |
**
** JSON is read with libyaml (JSON's syntax is a subset of YAML's flow style).
*/
#ifndef QSR_SPEC_IMPORT_H
#define QSR_SPEC_IMPORT_H

#include <stddef.h>

#include "store/measure.h"

enum qsr_import_fmt {
  QSR_IMPORT_AUTO = 0,      /* detect from the content */
  QSR_IMPORT_LB_CSV = 1,
  QSR_IMPORT_LB_JSON = 2,
  QSR_IMPORT_LB_JSONL = 3,
  QSR_IMPORT_CSV = 4,
  QSR_IMPORT_FMT_COUNT
};
extern const char *const qsr_import_fmt_names[QSR_IMPORT_FMT_COUNT]; /* "auto", "llama-bench-csv"... */
int qsr_import_fmt_from_name(const char *name);                      /* -1 if unknown */

/* llama.cpp's (ggml's) weight types, as ggml-common.h declares their blocks. */
enum qsr_ggml_type {
  QSR_GGML_F32 = 0, QSR_GGML_F16, QSR_GGML_BF16,
  QSR_GGML_Q4_0, QSR_GGML_Q4_1, QSR_GGML_Q5_0, QSR_GGML_Q5_1, QSR_GGML_Q8_0,
  QSR_GGML_Q2_K, QSR_GGML_Q3_K, QSR_GGML_Q4_K, QSR_GGML_Q5_K, QSR_GGML_Q6_K,
  QSR_GGML_IQ1_S, QSR_GGML_IQ1_M, QSR_GGML_IQ2_XXS, QSR_GGML_IQ2_XS, QSR_GGML_IQ2_S,
  QSR_GGML_IQ3_XXS, QSR_GGML_IQ3_S, QSR_GGML_IQ4_NL, QSR_GGML_IQ4_XS,
  QSR_GGML_TQ1_0, QSR_GGML_TQ2_0, QSR_GGML_MXFP4,
  QSR_GGML_COUNT
};

/* One ggml type and the qsr weight format it is imported as. */
struct qsr_ggml_traits {
  const char *name;         /* "Q4_K": llama.cpp's spelling (upper case) */
  int blck;                 /* weights per block */
  int block_bytes;          /* bytes per block */
  int wfmt;                 /* enum qsr_wfmt it maps to; -1 = refused */
  int bits, group;          /* qsr code bits and group (0 = per row) */
  const char *note;         /* how close the mapping is, or why it is refused */
};
extern const struct qsr_ggml_traits qsr_ggml_tab[QSR_GGML_COUNT];

/* A weight quantisation as read from a file. */
struct qsr_quant {
  char name[64];            /* stored in `quant`: "Q4_K_M", "F16", or the qsr spelling given */
  int ggml;                 /* enum qsr_ggml_type of the main tensors; -1 for a qsr spelling */
  int wfmt, bits, group;    /* the qsr format (wfmt -1 when refused) */
};

/* Parses a quantisation: a qsr spelling (FORMAT[BITS][gGROUP]: "int4g128",
** "int_sym4g32", "fp16", "fp8"; group 128 when omitted for sub-byte formats)
** or a llama.cpp type or file-type name ("Q4_0", "q4_K", "Q4_K_M",
** "Q4_K - Medium"). Returns 0, or -1 with the reason in why. A known but
** refused type (F32, IQ*, TQ*, MXFP4) returns -1 too. */
int qsr_import_parse_quant(const char *text, struct qsr_quant *q, char *why, size_t cap);

/* The llama.cpp file type at the end of a llama-bench model_type
** ("llama 7B Q4_K - Medium", "llama 7B mostly Q4_0"). Returns 0 and sets
** *prefix_len to the length of the text before it ("llama 7B"), 1 if the
** text names no known type, or -1 with why for a refused type. */
int qsr_import_quant_from_desc(const char *model_type, struct qsr_quant *q, size_t *prefix_len,
                               char *why, size_t cap);

struct qsr_import_opts {
  int format;               /* enum qsr_import_fmt */
  const char *device;       /* --device: replaces the file's device (NULL: keep / none) */
  const char *model;        /* --model: replaces the file's model (NULL: map) */
  const char *split;        /* "fit" | "holdout" (NULL: "holdout") */
};

struct qsr_import_models;

/* The rows of one file. Strings in rows point into pool (owned here). */
struct qsr_import {
  int format;               /* the format read (detected when AUTO) */
  struct qsr_meas *rows;
  size_t n, cap;
  size_t n_pp, n_tg, n_pg;  /* prompt-only, generation-only and both */
  char **notes;             /* distinct lines for the summary (mappings, warnings) */
  size_t n_notes, cap_notes;
  char **pool;
  size_t n_pool, cap_pool;
  struct qsr_import_models *models;  /* bundled models, loaded on first need */
};

/* Reads path into *im (zeroed first; free with qsr_import_free, also after
** an error). Returns QSR_OK, QSR_ERR_IO (unreadable), QSR_ERR_NOMEM, or
** QSR_ERR_CONFIG with *err = "file:line[:col]: field: why" (caller frees). */
int qsr_import_file(const char *path, const struct qsr_import_opts *o, struct qsr_import *im, char **err);
/* The same from text; origin names it in messages. */
int qsr_import_text(const char *origin, const char *text, const struct qsr_import_opts *o, struct qsr_import *im,
                    char **err);
void qsr_import_free(struct qsr_import *im);   /* NULL-safe; leaves *im zeroed */

/* Maps a llama.cpp architecture and parameter count to a bundled model
** (configs/models): the closest of the same architecture family within 2%.
** Returns its name (owned by im) or NULL, and the relative difference. */
const char *qsr_import_map_model(struct qsr_import *im, const char *arch, double n_params, double *off);

#endif
