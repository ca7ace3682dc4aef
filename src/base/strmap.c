#include "base/strmap.h"

#include "spe.h"

#include <stdlib.h>
#include <string.h>

uint64_t spe__strhash(const char *s) {
  /* FNV-1a, then a final mix so that linear probing sees well-spread bits. */
  uint64_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdu;
  h ^= h >> 33;
  return h;
}

void spe__strmap_init(struct strmap *m) {
  m->slots = NULL;
  m->cap = m->len = 0;
}

void spe__strmap_free(struct strmap *m) {
  free(m->slots);
  spe__strmap_init(m);
}

static size_t find_slot(const struct strmap *m, const char *key, uint64_t h) {
  size_t mask = m->cap - 1;
  size_t i = (size_t)h & mask;
  while (m->slots[i].key != NULL &&
         (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
    i = (i + 1) & mask;
  return i;
}

void *spe__strmap_get(const struct strmap *m, const char *key) {
  if (m->len == 0) return NULL;
  size_t i = find_slot(m, key, spe__strhash(key));
  return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow(struct strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  struct strmap_slot *slots = calloc(cap, sizeof *slots);
  if (slots == NULL) return SPE_ENOMEM;
  struct strmap old = *m;
  m->slots = slots;
  m->cap = cap;
  for (size_t i = 0; i < old.cap; i++) {
    if (old.slots[i].key == NULL) continue;
    size_t j = find_slot(m, old.slots[i].key, old.slots[i].hash);
    m->slots[j] = old.slots[i];
  }
  free(old.slots);
  return 0;
}

int spe__strmap_put(struct strmap *m, const char *key, void *value) {
  /* Keep the load factor under 3/4 so that probe runs stay short. */
  if ((m->len + 1) * 4 > m->cap * 3 && grow(m) != 0) return SPE_ENOMEM;
  uint64_t h = spe__strhash(key);
  size_t i = find_slot(m, key, h);
  if (m->slots[i].key == NULL) m->len++;
  m->slots[i] = (struct strmap_slot){key, value, h};
  return 0;
}

void *spe__strmap_del(struct strmap *m, const char *key) {
  if (m->len == 0) return NULL;
  size_t mask = m->cap - 1;
  size_t i = find_slot(m, key, spe__strhash(key));
  if (m->slots[i].key == NULL) return NULL;
  void *value = m->slots[i].value;
  /* Backward-shift deletion: move later members of the probe run into the hole
   * when their home slot does not lie between the hole and them. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
    size_t home = (size_t)m->slots[j].hash & mask;
    int between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!between) {
      m->slots[hole] = m->slots[j];
      hole = j;
    }
  }
  m->slots[hole].key = NULL;
  m->len--;
  return value;
}
