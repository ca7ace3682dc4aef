/*
 * The task name index: open addressing with linear probing over a power-of-two
 * table at most half full, so a lookup touches one or two slots on average.
 * Each slot keeps the task index and 32 bits of the name's hash; names are only
 * compared when the hashes match, and they are read from the task array, so the
 * table costs 8 bytes per slot and copies no string.
 */
#include "job/job_internal.h"

#include <stdlib.h>
#include <string.h>

#include "spe.h"

/* FNV-1a over the bytes, then a 64-bit finaliser (from MurmurHash3's fmix64)
 * so that names differing only in their last characters spread over the whole
 * table. */
static uint64_t hash_name(const char *s, size_t len) {
  uint64_t h = 0xcbf29ce484222325u;
  for (size_t k = 0; k < len; k++) {
    h ^= (unsigned char)s[k];
    h *= 0x100000001b3u;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdu;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53u;
  h ^= h >> 33;
  return h;
}

int spe__job_names_init(struct job_names *ix, const struct task_def *tasks, uint32_t n) {
  size_t cap = 16;
  while (cap < (size_t)n * 2) cap *= 2;
  ix->tasks = tasks;
  ix->slot_task = calloc(cap, sizeof *ix->slot_task);
  ix->slot_hash = malloc(cap * sizeof *ix->slot_hash);
  ix->mask = (uint32_t)(cap - 1);
  if (ix->slot_task == NULL || ix->slot_hash == NULL) {
    spe__job_names_free(ix);
    return SPE_ENOMEM;
  }
  return 0;
}

static int same_name(const char *name, const char *s, size_t len) {
  return strncmp(name, s, len) == 0 && name[len] == '\0';
}

/* The slot holding the name, or the empty slot where it would go. */
static uint32_t probe(const struct job_names *ix, const char *s, size_t len, uint32_t h) {
  uint32_t at = h & ix->mask;
  while (ix->slot_task[at] != 0) {
    if (ix->slot_hash[at] == h && same_name(ix->tasks[ix->slot_task[at] - 1].name, s, len))
      return at;
    at = (at + 1) & ix->mask;
  }
  return at;
}

int64_t spe__job_names_add(struct job_names *ix, uint32_t i) {
  const char *name = ix->tasks[i].name;
  size_t len = strlen(name);
  uint32_t h = (uint32_t)hash_name(name, len);
  uint32_t at = probe(ix, name, len, h);
  if (ix->slot_task[at] != 0) return (int64_t)ix->slot_task[at] - 1;
  ix->slot_task[at] = i + 1;
  ix->slot_hash[at] = h;
  return -1;
}

int64_t spe__job_names_find(const struct job_names *ix, const char *s, size_t len) {
  if (ix->slot_task == NULL) return -1;
  uint32_t at = probe(ix, s, len, (uint32_t)hash_name(s, len));
  return (int64_t)ix->slot_task[at] - 1;
}

void spe__job_names_free(struct job_names *ix) {
  free(ix->slot_task);
  free(ix->slot_hash);
  ix->slot_task = NULL;
  ix->slot_hash = NULL;
}
