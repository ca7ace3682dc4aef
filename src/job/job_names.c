/*
 * The task name index: open addressing with linear probing over a power-of-two
 * table at most half full, so a lookup touches one or two slots on average.
 * A slot holds the name's pointer, 32 bits of its hash and the task index, so
 * a lookup reads one slot and, when the hashes match, the name itself: no
 * detour through the task array.
 *
 * At 100,000 tasks the table (4 MiB) and the names are far larger than the
 * caches, and a lookup is two cache misses. Resolving `enables` lists performs
 * hundreds of thousands of lookups whose keys are known in advance, so the
 * index also offers prefetches: of the slot from the hash, and of the name in
 * the slot, which a caller issues a few lookups ahead (job_graph.c).
 */
#include "job/job_internal.h"

#include <stdlib.h>
#include <string.h>

#include "spe.h"

/* FNV-1a over the bytes, then a 64-bit finaliser (from MurmurHash3's fmix64)
 * so that names differing only in their last characters spread over the whole
 * table. Never 0, so that 0 can mark an empty slot's hash. */
uint32_t spe__job_names_hash(const char *s, size_t len) {
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
  return (uint32_t)h | 1u;
}

int spe__job_names_init(struct job_names *ix, uint32_t n) {
  size_t cap = 16;
  while (cap < (size_t)n * 2) cap *= 2;
  ix->slots = calloc(cap, sizeof *ix->slots);
  ix->mask = (uint32_t)(cap - 1);
  return ix->slots == NULL ? SPE_ENOMEM : 0;
}

static int same_name(const char *name, const char *s, size_t len) {
  return strncmp(name, s, len) == 0 && name[len] == '\0';
}

/* The slot holding the name, or the empty slot where it would go. */
static struct job_name_slot *probe(const struct job_names *ix, const char *s, size_t len,
                                   uint32_t h) {
  uint32_t at = h & ix->mask;
  while (ix->slots[at].hash != 0) {
    if (ix->slots[at].hash == h && same_name(ix->slots[at].name, s, len)) break;
    at = (at + 1) & ix->mask;
  }
  return &ix->slots[at];
}

int64_t spe__job_names_add(struct job_names *ix, const char *name, uint32_t task) {
  size_t len = strlen(name);
  uint32_t h = spe__job_names_hash(name, len);
  struct job_name_slot *slot = probe(ix, name, len, h);
  if (slot->hash != 0) return slot->task;
  slot->name = name;
  slot->hash = h;
  slot->task = task;
  return -1;
}

int64_t spe__job_names_find(const struct job_names *ix, const char *s, size_t len,
                            uint32_t hash) {
  if (ix->slots == NULL) return -1;
  struct job_name_slot *slot = probe(ix, s, len, hash);
  return slot->hash != 0 ? (int64_t)slot->task : -1;
}

void spe__job_names_prefetch_slot(const struct job_names *ix, uint32_t hash) {
  __builtin_prefetch(&ix->slots[hash & ix->mask]);
}

void spe__job_names_prefetch_name(const struct job_names *ix, uint32_t hash) {
  const struct job_name_slot *slot = &ix->slots[hash & ix->mask];
  if (slot->hash == hash) __builtin_prefetch(slot->name);
}

void spe__job_names_free(struct job_names *ix) {
  free(ix->slots);
  ix->slots = NULL;
}
