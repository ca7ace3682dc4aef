/* Opening a store by URL, and the batch a scheduling round fills. See store.h. */
#include "store/store.h"

#include "base/msg.h"
#include "spe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The backends, by URL scheme. A backend not built yet has ops NULL and is
 * refused with `not built yet`; building it is the one-line change of its ops. */
static const struct backend {
  const char *scheme;
  const struct store_ops *ops;
  const char *usage; /* how its URL is written, for the unknown-scheme message */
} backends[] = {
    {"memory", &spe__store_memory_ops, "memory:"},
    {"sqlite", &spe__store_sqlite_ops, "sqlite:PATH"},
};
#define NBACKENDS (sizeof backends / sizeof backends[0])

/* `unknown state store URL "foo:bar" (expected memory: or sqlite:PATH)`. */
static void set_unknown_msg(char **msg, const char *url) {
  char expected[256] = "";
  size_t len = 0;
  for (size_t i = 0; i < NBACKENDS; i++) {
    const char *sep = i == 0 ? "" : i + 1 == NBACKENDS ? " or " : ", ";
    int w = snprintf(expected + len, sizeof expected - len, "%s%s", sep, backends[i].usage);
    if (w < 0 || (size_t)w >= sizeof expected - len) break;
    len += (size_t)w;
  }
  spe__msg_set(msg, "unknown state store URL \"%s\" (expected %s)", url, expected);
}

int spe__store_open(struct store **out, const char *url, const struct logger *lg,
                    char **msg) {
  *out = NULL;
  if (msg) *msg = NULL;
  if (url == NULL) {
    spe__msg_set(msg, "no state store URL");
    return SPE_EURL;
  }
  const char *colon = strchr(url, ':');
  size_t schemelen = colon ? (size_t)(colon - url) : 0;
  for (size_t i = 0; colon != NULL && i < NBACKENDS; i++) {
    const struct backend *b = &backends[i];
    if (strlen(b->scheme) != schemelen || memcmp(b->scheme, url, schemelen) != 0) continue;
    if (b->ops == NULL) {
      spe__msg_set(msg, "the %s store is not built yet", b->scheme);
      return SPE_EURL;
    }
    return b->ops->open(out, colon + 1, lg, msg);
  }
  set_unknown_msg(msg, url);
  return SPE_EURL;
}

void spe__store_close(struct store *st) {
  if (st != NULL) st->ops->close(st);
}

int spe__store_keep_events(struct store *st, size_t n, char **msg) {
  if (st->ops->keep_events == NULL || n == 0) return 0;
  return st->ops->keep_events(st, n, msg);
}

/* Grow an array of `size`-byte items so that it holds one more: double it. */
static int grow(void **items, uint32_t n, uint32_t *cap, size_t size) {
  if (n < *cap) return 0;
  if (*cap > UINT32_MAX / 2) return SPE_ENOMEM;
  uint32_t newcap = *cap ? *cap * 2 : 16;
  void *p = realloc(*items, (size_t)newcap * size);
  if (p == NULL) return SPE_ENOMEM;
  *items = p;
  *cap = newcap;
  return 0;
}

int spe__batch_job(struct store_batch *b, const struct job_rec *r) {
  if (grow((void **)&b->jobs, b->njobs, &b->capjobs, sizeof *b->jobs) != 0) return SPE_ENOMEM;
  b->jobs[b->njobs++] = *r;
  return 0;
}

int spe__batch_task(struct store_batch *b, const struct task_rec *r) {
  if (grow((void **)&b->tasks, b->ntasks, &b->captasks, sizeof *b->tasks) != 0)
    return SPE_ENOMEM;
  /* The batch holds its own references: it may be committed on another
   * thread while the engine changes the task. */
  b->tasks[b->ntasks] = *r;
  json_incref(r->result);
  json_incref(r->error);
  b->ntasks++;
  return 0;
}

void spe__batch_task_replace(struct store_batch *b, uint32_t row, const struct task_rec *r) {
  struct task_rec *old = &b->tasks[row];
  json_incref(r->result);
  json_incref(r->error);
  json_decref(old->result);
  json_decref(old->error);
  *old = *r;
}

int spe__batch_event(struct store_batch *b, json_t *ev) {
  if (grow((void **)&b->events, b->nevents, &b->capevents, sizeof *b->events) != 0) {
    json_decref(ev);
    return SPE_ENOMEM;
  }
  b->events[b->nevents++] = ev;
  return 0;
}

void spe__batch_clear(struct store_batch *b) {
  for (uint32_t i = 0; i < b->nevents; i++) json_decref(b->events[i]);
  for (uint32_t i = 0; i < b->ntasks; i++) {
    json_decref(b->tasks[i].result);
    json_decref(b->tasks[i].error);
  }
  b->njobs = b->ntasks = b->nevents = 0;
  b->prune_before_ms = 0;
  b->pruned = 0;
}

void spe__batch_free(struct store_batch *b) {
  spe__batch_clear(b);
  free(b->jobs);
  free(b->tasks);
  free(b->events);
  memset(b, 0, sizeof *b);
}

int spe__event_set_seq(json_t *ev, int64_t seq, uint8_t *had) {
  json_t *v = json_object_get(ev, "seq");
  *had = v == NULL ? SEQ_NONE : json_is_integer(v) ? SEQ_PLACEHOLDER : SEQ_NULL;
  if (*had == SEQ_PLACEHOLDER) return json_integer_set(v, seq);
  return json_object_set_new(ev, "seq", json_integer(seq));
}

void spe__event_unset_seq(json_t *ev, uint8_t had) {
  if (had == SEQ_PLACEHOLDER) json_integer_set(json_object_get(ev, "seq"), 0);
  else if (had == SEQ_NULL) json_object_set_new(ev, "seq", json_null());
  else json_object_del(ev, "seq");
}
