/* The memory store ("memory:"): nothing is kept. A commit only numbers the
 * batch's events, 1, 2, 3… over the life of the store, as a durable store
 * would, so that subscribers see the same `seq` whatever the store. */
#include "base/msg.h"
#include "spe.h"
#include "store/store.h"

#include <stdlib.h>

struct memory_store {
  struct store base;
  int64_t last_seq; /* the seq of the last event numbered; 0: none yet */
};

static int memory_open(struct store **out, const char *where, const struct logger *lg,
                       char **msg) {
  if (where[0] != '\0') {
    spe__msg_set(msg, "the memory store takes no path: \"memory:%s\" (write memory:)", where);
    return SPE_EURL;
  }
  struct memory_store *ms = calloc(1, sizeof *ms);
  if (ms == NULL) return SPE_ENOMEM;
  ms->base.ops = &spe__store_memory_ops;
  *out = &ms->base;
  return 0;
}

static int memory_commit(struct store *st, struct store_batch *b, char **msg) {
  struct memory_store *ms = (struct memory_store *)st;
  for (uint32_t i = 0; i < b->nevents; i++) {
    if (json_object_set_new(b->events[i], "seq", json_integer(ms->last_seq + 1 + i)) != 0) {
      /* Nothing of a failed batch is kept: take back the numbers given. */
      for (uint32_t j = 0; j < i; j++) json_object_del(b->events[j], "seq");
      spe__msg_set(msg, "out of memory numbering events");
      return SPE_ESTORE;
    }
  }
  ms->last_seq += b->nevents;
  return 0;
}

/* Nothing is kept, so there is nothing to recover... */
static int memory_load_unfinished(struct store *st, stored_job_fn fn, void *ctx, char **msg) {
  return 0;
}

/* ...and no job to read back: the engine answers for the jobs it holds. */
static int memory_load_job(struct store *st, const char *id, stored_job_fn fn, void *ctx,
                           char **msg) {
  spe__msg_set(msg, "no job with id \"%s\"", id);
  return SPE_ENOJOB;
}

static void memory_close(struct store *st) { free(st); }

const struct store_ops spe__store_memory_ops = {
    .scheme = "memory",
    .open = memory_open,
    .commit = memory_commit,
    .load_unfinished = memory_load_unfinished,
    .load_job = memory_load_job,
    .close = memory_close,
};
