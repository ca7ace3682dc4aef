/* The public registry of functions (spe_registry_*) and the executor's copy. */
#include "func/registry.h"

#include "base/limits.h"
#include "base/msg.h"

#include <stdlib.h>
#include <string.h>

SPE_EXPORT int spe_registry_new(spe_registry **out) {
  if (out == NULL) return SPE_EINVAL;
  *out = calloc(1, sizeof **out);
  if (*out == NULL) return SPE_ENOMEM;
  spe__strmap_init(&(*out)->by_name);
  return 0;
}

SPE_EXPORT void spe_registry_free(spe_registry *reg) {
  if (reg == NULL) return;
  for (uint32_t i = 0; i < reg->len; i++) {
    free(reg->items[i]->name);
    free(reg->items[i]);
  }
  free(reg->items);
  spe__strmap_free(&reg->by_name);
  free(reg);
}

static int add(spe_registry *reg, const char *name, spe_function fn, void *ctx) {
  if (reg->len == reg->cap) {
    uint32_t cap = reg->cap ? reg->cap * 2 : 8;
    struct func_entry **items = realloc(reg->items, cap * sizeof *items);
    if (items == NULL) return SPE_ENOMEM;
    reg->items = items;
    reg->cap = cap;
  }
  struct func_entry *f = malloc(sizeof *f);
  char *copy = strdup(name);
  if (f == NULL || copy == NULL) goto nomem;
  *f = (struct func_entry){copy, fn, ctx};
  /* The key lives inside the entry, as strmap wants. */
  if (spe__strmap_put(&reg->by_name, f->name, f) != 0) goto nomem;
  reg->items[reg->len++] = f;
  return 0;
nomem:
  free(copy);
  free(f);
  return SPE_ENOMEM;
}

SPE_EXPORT int spe_register(spe_registry *reg, const char *name, spe_function fn, void *ctx,
                            char **msg) {
  spe__msg_give(msg, NULL);
  if (reg == NULL || name == NULL || fn == NULL) {
    spe__msg_set(msg, "spe_register: registry, name and function must not be NULL");
    return SPE_EINVAL;
  }
  size_t n = strlen(name);
  if (n == 0 || n > SPE_MAX_NAME_BYTES) {
    spe__msg_set(msg, "spe_register: a function name must have 1 to %u bytes (this one has %zu)",
                 SPE_MAX_NAME_BYTES, n);
    return SPE_EINVAL;
  }
  if (spe__strmap_get(&reg->by_name, name) != NULL) {
    spe__msg_set(msg, "spe_register: a function \"%s\" is already registered", name);
    return SPE_EINVAL;
  }
  int rc = add(reg, name, fn, ctx);
  if (rc != 0) spe__msg_set(msg, "spe_register: out of memory");
  return rc;
}

int spe__registry_copy(struct spe_registry **out, const struct spe_registry *src) {
  int rc = spe_registry_new(out);
  for (uint32_t i = 0; rc == 0 && src != NULL && i < src->len; i++)
    rc = add(*out, src->items[i]->name, src->items[i]->fn, src->items[i]->ctx);
  if (rc != 0) {
    spe_registry_free(*out);
    *out = NULL;
  }
  return rc;
}

const struct func_entry *spe__registry_find(const struct spe_registry *reg, const char *name) {
  return reg == NULL || name == NULL ? NULL : spe__strmap_get(&reg->by_name, name);
}
