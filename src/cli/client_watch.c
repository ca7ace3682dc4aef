/*
 * `spe watch [ID]`: follow the server's events as they happen, one line each
 * (the lines of `spe run`'s log: time, level, what happened) or, with --json,
 * each event as one JSON object per line (NDJSON).
 *
 * With an id: that job's events from its first one (so a finished job's
 * history is printed whole), until its job_finished; the exit status then says
 * how it ended. Without: every job's events from now on, until interrupted.
 * A lost connection or a restart of the server does not end the watch: it
 * reconnects and goes on after the last event it printed (client_sse.c), so
 * every event is printed exactly once.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/console.h"
#include "cli/event_log.h"
#include "cli/log_sink.h"
#include "spe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char watch_usage[] =
    "usage: spe watch [OPTION...] [ID]\n"
    "\n"
    "Prints events as they happen, one line each: with a job id, that job's events\n"
    "from its start until it finishes; without, every job's events from now on.\n"
    "Reconnects after a lost connection or a restart of the server, without\n"
    "losing or repeating an event.\n"
    "\n"
    "Options:\n"
    "  --after SEQ          start after the event numbered SEQ (0: from the first\n"
    "                       event the server still holds)\n" CLIENT_OPTIONS_HELP
    "\n"
    "Exit status: 0 the job succeeded; 1 it failed or was cancelled; 2 bad usage\n"
    "or an unknown job; 3 the server cannot be reached (or was lost for a minute)\n"
    "or failed, or standard output could not be written.\n";

enum { OPT_AFTER = 1 };

struct watch {
  int64_t after; /* --after, -1 when not given */
  const char *job;
  int json;
  struct event_log *log;
  const char *final_status; /* the watched job's, once it finished */
  int write_failed;
};

static int on_opt(void *ctx, int id, const char *value) {
  struct watch *w = ctx;
  if (id == OPT_AFTER) {
    /* seq is a 63-bit number: parsed whole, not as an int. */
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end != '\0' || errno != 0 || v < 0)
      return args_usage_error("spe watch", "--after \"%s\": expected an event number (0 or more)",
                              value);
    w->after = v;
  }
  return 0;
}

static int on_event(void *ctx, json_t *ev) {
  struct watch *w = ctx;
  if (w->json) {
    if (client_print_json(ev) != 0) {
      w->write_failed = 1;
      return FOLLOW_STOP;
    }
  } else {
    event_log_write(w->log, ev);
    if (console_error() != 0) {
      fprintf(stderr, "spe watch: standard output: %s\n", strerror(console_error()));
      w->write_failed = 1;
      return FOLLOW_STOP;
    }
  }
  const char *type = json_string_value(json_object_get(ev, "type"));
  if (w->job != NULL && type != NULL && strcmp(type, "job_finished") == 0) {
    const char *st = json_string_value(json_object_get(ev, "status"));
    w->final_status = st != NULL && strcmp(st, "succeeded") == 0 ? "succeeded" : "failed";
    return FOLLOW_STOP;
  }
  return FOLLOW_GO_ON;
}

int cmd_watch(int argc, char **argv) {
  static const struct opt_spec own[] = {{"after", 0, 1, OPT_AFTER}, {NULL, 0, 0, 0}};
  struct watch w = {.after = -1};
  struct client_args a;
  int rc = client_parse_args("spe watch", watch_usage, argc, argv, own, on_opt, &w, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  w.json = a.opts.json;
  w.job = a.noperands == 1 ? a.operands[0] : NULL;
  if (a.noperands > 1) {
    rc = args_usage_error("spe watch", "one job id at a time");
  } else if (!w.json && event_log_new(&w.log) != 0) {
    rc = CLIENT_EXIT_SERVER;
  } else if ((rc = client_open(&c, "spe watch", &a.opts)) == 0) {
    if (!w.json) {
      /* The event lines are this command's output: on stdout, every one. */
      console_set_fd(STDOUT_FILENO);
      log_sink_set_level(SPE_LOG_INFO);
    }
    struct client_follow_opts fo = {.job = w.job,
                                    .after = w.after >= 0 ? w.after : (w.job != NULL ? 0 : -1)};
    rc = client_follow(c, &fo, on_event, &w);
    json_t *job = NULL;
    if (rc == 0 && w.write_failed) {
      rc = CLIENT_EXIT_SERVER;
    } else if (rc == 0 && w.final_status != NULL) {
      rc = strcmp(w.final_status, "succeeded") == 0 ? CLIENT_EXIT_OK : CLIENT_EXIT_FAILED;
    } else if (rc == 0 && w.job != NULL && (rc = client_get_job(c, w.job, &job)) == 0) {
      /* It had finished before --after: its end is in the job itself. */
      rc = client_job_exit(job);
    }
    json_decref(job);
  }
  event_log_free(w.log);
  client_close(c);
  free(a.operands);
  return rc;
}
