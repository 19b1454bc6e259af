/*
** alloc.c -- allocation hook and a chunked bump arena.
*/
#include "util/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qsr_alloc_fn hook_fn;
static void *hook_ud;

void qsr_alloc_set_hook(qsr_alloc_fn fn, void *ud) {
  hook_fn = fn;
  hook_ud = ud;
}

void *qsr_trymalloc(size_t n) {
  if (hook_fn) return hook_fn(hook_ud, n);
  return malloc(n ? n : 1);
}

void *qsr_malloc(size_t n) {
  void *p = qsr_trymalloc(n);
  if (!p) {
    fprintf(stderr, "qsr: out of memory allocating %zu bytes\n", n);
    abort();
  }
  return p;
}

struct chunk {
  struct chunk *next;
  size_t used, cap;
  max_align_t data[];   /* aligned payload */
};

struct qsr_arena {
  struct chunk *head;
  size_t chunk_bytes;
};

qsr_arena *qsr_arena_init(size_t chunk_bytes) {
  qsr_arena *a = qsr_trymalloc(sizeof *a);
  if (!a) return NULL;
  a->head = NULL;
  a->chunk_bytes = chunk_bytes ? chunk_bytes : 4096;
  return a;
}

void qsr_arena_free(qsr_arena *a) {
  if (!a) return;
  struct chunk *c = a->head;
  while (c) {
    struct chunk *n = c->next;
    free(c);
    c = n;
  }
  free(a);
}

void *qsr_arena_alloc(qsr_arena *a, size_t n) {
  const size_t al = sizeof(max_align_t);
  n = (n + al - 1) / al * al;
  if (!n) n = al;
  struct chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > a->chunk_bytes ? n : a->chunk_bytes;
    c = qsr_trymalloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

char *qsr_arena_strdup(qsr_arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = qsr_arena_alloc(a, n);
  if (p) memcpy(p, s, n);
  return p;
}
