/*
 * The string store of a job_def: strings and small arrays are carved from
 * blocks with a bump pointer and freed together. A 100,000-task job holds a few
 * hundred thousand short strings (names, commands); one malloc each would cost
 * 16 to 24 bytes of overhead and time per string, and they all die at once
 * anyway.
 *
 * Blocks double from 1 KiB up to 64 KiB, so a four-task job wastes little.
 * A request larger than a quarter of the block size gets a block of its own,
 * linked behind the current one, so the current block's free space is not lost.
 */
#include "job/job_internal.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

enum { FIRST_BLOCK = 1024, LAST_BLOCK = 64 * 1024 };

struct block {
  struct block *next;
  size_t size; /* bytes in data[] */
  size_t used;
  alignas(max_align_t) char data[];
};

struct job_strings {
  struct block *head; /* the block being filled, or NULL */
  size_t next_size;   /* data size of the next ordinary block */
  size_t bytes;       /* total malloc'd, for measurements */
};

struct job_strings *spe__job_strings_new(void) {
  struct job_strings *js = calloc(1, sizeof *js);
  if (js != NULL) js->next_size = FIRST_BLOCK;
  return js;
}

static struct block *new_block(struct job_strings *js, size_t size) {
  struct block *b = malloc(sizeof *b + size);
  if (b == NULL) return NULL;
  b->size = size;
  b->used = 0;
  js->bytes += sizeof *b + size;
  return b;
}

static void *alloc_own_block(struct job_strings *js, size_t size) {
  struct block *b = new_block(js, size);
  if (b == NULL) return NULL;
  b->used = size;
  if (js->head == NULL) {
    b->next = NULL;
    js->head = b;
  } else {
    b->next = js->head->next;
    js->head->next = b;
  }
  return b->data;
}

void *spe__job_strings_alloc(struct job_strings *js, size_t size) {
  const size_t align = alignof(void *);
  if (size > LAST_BLOCK / 4) return alloc_own_block(js, size);
  struct block *b = js->head;
  size_t at = b == NULL ? 0 : (b->used + align - 1) & ~(align - 1);
  if (b == NULL || at + size > b->size) {
    size_t bsize = js->next_size;
    while (bsize < size) bsize *= 2;
    b = new_block(js, bsize);
    if (b == NULL) return NULL;
    b->next = js->head;
    js->head = b;
    if (js->next_size < LAST_BLOCK) js->next_size *= 2;
    at = 0;
  }
  b->used = at + size;
  return b->data + at;
}

char *spe__job_strings_dup(struct job_strings *js, const char *s, size_t len) {
  /* Strings need no alignment; take them from the block's tail directly so
   * that short names are packed byte to byte. */
  struct block *b = js->head;
  char *out;
  if (b != NULL && b->size - b->used >= len + 1) {
    out = b->data + b->used;
    b->used += len + 1;
  } else {
    out = spe__job_strings_alloc(js, len + 1);
    if (out == NULL) return NULL;
  }
  memcpy(out, s, len);
  out[len] = '\0';
  return out;
}

size_t spe__job_strings_bytes(const struct job_strings *js) {
  return js == NULL ? 0 : js->bytes;
}

void spe__job_strings_free(struct job_strings *js) {
  if (js == NULL) return;
  struct block *b = js->head;
  while (b != NULL) {
    struct block *next = b->next;
    free(b);
    b = next;
  }
  free(js);
}
