/*
** alloc.h -- one allocation hook, two tiers, and an arena for config data.
**
**   qsr_malloc()    aborts on OOM: small bookkeeping
**   qsr_trymalloc() NULL on OOM: big buffers, and anything a test may fail
**   qsr_alloc_set_hook() lets tests make the Nth allocation fail.
**
** An arena owns every string and array of one loaded spec; freeing the
** arena frees all of it (one owner per allocation).
*/
#ifndef QSR_ALLOC_H
#define QSR_ALLOC_H

#include <stddef.h>

typedef void *(*qsr_alloc_fn)(void *ud, size_t n);

void *qsr_malloc(size_t n);
void *qsr_trymalloc(size_t n);
void  qsr_alloc_set_hook(qsr_alloc_fn fn, void *ud); /* NULL restores malloc */

typedef struct qsr_arena qsr_arena;

qsr_arena *qsr_arena_init(size_t chunk_bytes);        /* NULL on OOM */
void       qsr_arena_free(qsr_arena *a);              /* NULL-safe */
void      *qsr_arena_alloc(qsr_arena *a, size_t n);   /* zeroed; NULL on OOM */
char      *qsr_arena_strdup(qsr_arena *a, const char *s);

#endif
