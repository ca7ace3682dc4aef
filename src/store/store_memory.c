/*
 * The memory store ("memory:"): no job or task is kept (the engine's memory is
 * all there is). A commit numbers the batch's events, 1, 2, 3… over the life
 * of the store, as a durable store would, so that subscribers see the same
 * `seq` whatever the store.
 *
 * Event history (spe_options.event_history): a server whose clients reconnect
 * wants to replay what they missed, so the store may keep the newest N events
 * in a ring, for events_since. It keeps each as its JSON text, not as the
 * json_t the engine publishes: the published object is shared with the event
 * bus and its subscribers on other threads, and a second owner's reference
 * count moving on yet another thread is a race on jansson's non-atomic check
 * of that count. Text costs one encoding per event (what the SQLite store pays
 * too) and is smaller than the object.
 *
 * Threads: commit runs on the engine thread, events_since on any; `lock`
 * guards the ring and last_seq. The ring is filled under the lock but the
 * encoding happens before it, and readers copy texts out and parse them after
 * releasing it, so that neither side holds it for long.
 */
#include "base/msg.h"
#include "spe.h"
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One kept event. */
struct kept_event {
  int64_t seq;
  char job[32]; /* the event's job id ("" when it has none or a longer one) */
  char *text;   /* compact JSON, malloc'd */
};

struct memory_store {
  struct store base;
  pthread_mutex_t lock;
  int64_t last_seq;          /* the seq of the last event numbered; 0: none yet */
  struct kept_event *ring;   /* `cap` slots, NULL when no history is kept */
  size_t cap, len, head;     /* the oldest kept event is ring[head] */
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
  pthread_mutex_init(&ms->lock, NULL);
  *out = &ms->base;
  return 0;
}

static int memory_keep_events(struct store *st, size_t n, char **msg) {
  struct memory_store *ms = (struct memory_store *)st;
  if (ms->ring != NULL || n == 0) return 0;
  if (n > SIZE_MAX / sizeof *ms->ring || (ms->ring = calloc(n, sizeof *ms->ring)) == NULL) {
    spe__msg_set(msg, "cannot keep an event history of %zu events: out of memory", n);
    return SPE_ENOMEM;
  }
  ms->cap = n;
  ms->base.keeps_events = 1;
  return 0;
}

/* Encode the batch's numbered events and add them to the ring, dropping the
 * oldest. An event that cannot be encoded (out of memory) leaves its slot
 * empty, and a replay that reaches it fails with SPE_ENOMEM rather than skip
 * it. */
static void keep(struct memory_store *ms, struct store_batch *b) {
  for (uint32_t i = 0; i < b->nevents; i++) {
    char *text = json_dumps(b->events[i], JSON_COMPACT);
    const char *job = json_string_value(json_object_get(b->events[i], "job"));
    pthread_mutex_lock(&ms->lock);
    struct kept_event *slot;
    if (ms->len == ms->cap) {
      slot = &ms->ring[ms->head];
      free(slot->text);
      ms->head = (ms->head + 1) % ms->cap;
    } else {
      slot = &ms->ring[(ms->head + ms->len++) % ms->cap];
    }
    slot->seq = ms->last_seq + 1 + i;
    slot->text = text;
    slot->job[0] = '\0';
    if (job != NULL && strlen(job) < sizeof slot->job) strcpy(slot->job, job);
    pthread_mutex_unlock(&ms->lock);
  }
}

static int memory_commit(struct store *st, struct store_batch *b, char **msg) {
  struct memory_store *ms = (struct memory_store *)st;
  /* last_seq is written only here, on the engine thread, which may read it
   * without the lock. */
  uint8_t had[1];
  for (uint32_t i = 0; i < b->nevents; i++) {
    if (spe__event_set_seq(b->events[i], (int64_t)(ms->last_seq + 1 + i), had) != 0) {
      /* Nothing of a failed batch is kept: take back the numbers given (a
       * placeholder goes back to 0, whatever its value was; other members
       * go away). */
      for (uint32_t j = 0; j < i; j++) spe__event_unset_seq(b->events[j], SEQ_PLACEHOLDER);
      spe__msg_set(msg, "out of memory numbering events");
      return SPE_ESTORE;
    }
  }
  if (ms->ring != NULL) keep(ms, b);
  pthread_mutex_lock(&ms->lock);
  ms->last_seq += b->nevents;
  pthread_mutex_unlock(&ms->lock);
  b->pruned = 0; /* no job is kept here: the engine prunes its own */
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

/* Copy out, under the lock, the texts of the wanted events (a NULL entry: an
 * empty slot, or out of memory copying). Returns how many, or -1 when events
 * after after_seq have been dropped (*oldest: the first kept). */
static long take_texts(struct memory_store *ms, const char *job_id, int64_t after_seq,
                       uint32_t limit, char **texts, int64_t *oldest, int64_t *last_seq) {
  long n = 0;
  pthread_mutex_lock(&ms->lock);
  *last_seq = ms->last_seq;
  *oldest = ms->len ? ms->ring[ms->head].seq : ms->last_seq + 1;
  if (after_seq + 1 < *oldest && *oldest > 1) {
    n = -1;
  } else {
    /* Kept seqs are consecutive: the first wanted one is found by arithmetic. */
    size_t from = after_seq < *oldest ? 0 : (size_t)(after_seq + 1 - *oldest);
    for (size_t k = from; k < ms->len && n < (long)limit; k++) {
      const struct kept_event *e = &ms->ring[(ms->head + k) % ms->cap];
      if (job_id != NULL && strcmp(e->job, job_id) != 0) continue;
      texts[n] = e->text ? strdup(e->text) : NULL;
      if (texts[n++] == NULL) break;
    }
  }
  pthread_mutex_unlock(&ms->lock);
  return n;
}

static int memory_events_since(struct store *st, const char *job_id, int64_t after_seq,
                               uint32_t limit, json_t *out, int64_t *last_seq, char **msg) {
  struct memory_store *ms = (struct memory_store *)st;
  if (ms->ring == NULL) {
    spe__msg_set(msg, "the memory store keeps no events (spe_options.event_history is 0)");
    return SPE_ENOTSUP;
  }
  char **texts = malloc((limit ? limit : 1) * sizeof *texts);
  if (texts == NULL) return SPE_ENOMEM;
  int64_t oldest = 0, last = 0;
  long n = take_texts(ms, job_id, after_seq, limit, texts, &oldest, &last);
  int rc = 0;
  if (n < 0) {
    spe__msg_set(msg,
                 "events after seq %lld are no longer kept: the memory store keeps the last "
                 "%zu, the oldest is seq %lld",
                 (long long)after_seq, ms->cap, (long long)oldest);
    rc = SPE_ELIMIT;
  }
  for (long i = 0; i < n; i++) {
    json_t *ev = rc == 0 && texts[i] ? json_loads(texts[i], 0, NULL) : NULL;
    if (rc == 0 && (ev == NULL || json_array_append_new(out, ev) != 0)) {
      spe__msg_set(msg, "out of memory reading the event history");
      rc = SPE_ENOMEM;
    }
    free(texts[i]);
  }
  free(texts);
  if (last_seq) *last_seq = last;
  return rc;
}

static void memory_close(struct store *st) {
  struct memory_store *ms = (struct memory_store *)st;
  for (size_t k = 0; k < ms->len; k++) free(ms->ring[(ms->head + k) % ms->cap].text);
  free(ms->ring);
  pthread_mutex_destroy(&ms->lock);
  free(ms);
}

const struct store_ops spe__store_memory_ops = {
    .scheme = "memory",
    .open = memory_open,
    .commit = memory_commit,
    .load_unfinished = memory_load_unfinished,
    .load_job = memory_load_job,
    .events_since = memory_events_since,
    .keep_events = memory_keep_events,
    .close = memory_close,
};
