/* A hash map from C strings to pointers, by open addressing with linear probing
 * and backward-shift deletion (no tombstones). Keys are borrowed: each key must
 * stay valid and unchanged while it is in the map (typically it lives inside the
 * value). Not thread-safe. */
#ifndef SPE_BASE_STRMAP_H
#define SPE_BASE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
  const char *key; /* NULL = empty */
  void *value;
  uint64_t hash;
};

struct strmap {
  struct strmap_slot *slots;
  size_t cap;  /* a power of two, or 0 */
  size_t len;
};

void spe__strmap_init(struct strmap *m);
void spe__strmap_free(struct strmap *m);
/* The value for key, or NULL. */
void *spe__strmap_get(const struct strmap *m, const char *key);
/* Insert or replace. Returns 0 or SPE_ENOMEM (then the map is unchanged). */
int spe__strmap_put(struct strmap *m, const char *key, void *value);
/* Remove key; returns its value or NULL. */
void *spe__strmap_del(struct strmap *m, const char *key);
uint64_t spe__strhash(const char *s);

#endif
