/*
 * A worker process of process isolation: forked by the fork server, it runs
 * one call after another for the executor, each a request frame read from its
 * socket and a response frame written back (proc_protocol.h).
 *
 * It is where a function may crash, exit, loop, leak or kill itself: all of
 * that ends only this process (and its process group), which the server reaps
 * and reports. Nothing here returns to the server's code: the worker leaves
 * with _exit (no atexit handler or stdio buffer of the embedding program runs
 * twice), when the executor closes the socket or a frame is broken.
 *
 * Its setting: its own process group (a timeout or a cancel kills whatever a
 * function started too), SIGKILL when the server dies (PR_SET_PDEATHSIG), an
 * empty signal mask and the default dispositions (set up by the server), and
 * RLIMIT_AS at the configured memory limit.
 */
#include "base/limits.h"
#include "func/proc_protocol.h"
#include "func/registry.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sanitizers reserve terabytes of address space before main(): under them an
 * address-space limit would leave a worker unable to map anything at all, so
 * it is not applied there (the tests of the limit skip themselves). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SPE_SANITIZED 1
#endif
#endif

/* Exit statuses of a worker that ends for a reason of its own (a function's
 * exit() status can be anything, so these only help someone reading logs). */
#define EXIT_DONE 0     /* the executor closed the socket */
#define EXIT_BROKEN 101 /* a request frame made no sense */
#define EXIT_ORPHAN 102 /* the server was gone before we could watch it */

static void apply_memory_limit(size_t limit) {
#ifndef SPE_SANITIZED
  if (limit == SIZE_MAX) return;
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0) return;
  rlim_t want = (rlim_t)limit;
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
  /* The hard limit too: a worker is dedicated to running functions, and a
   * function has no business raising it. */
  rl.rlim_cur = rl.rlim_max = want;
  setrlimit(RLIMIT_AS, &rl);
#else
  (void)limit;
#endif
}

/* Read until `b` holds at least `want` bytes. Returns 0, 1 on EOF before
 * anything of this frame was read, -1 on a read error or EOF mid-frame. */
static int read_at_least(int fd, struct spe_buf *b, size_t want) {
  while (b->len < want) {
    ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && b->len == 0) return 1;
    if (n <= 0) return -1;
    b->len += (size_t)n;
  }
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The parts of a request, pointing into the read buffer. */
struct request {
  const struct req_head *h;
  const char *job_id, *job_name, *task, *func, *input, *arg;
};

/* Take field `len` bytes at *p, which must be followed by its NUL. */
static const char *take(const char **p, const char *end, uint64_t len) {
  if (len >= (uint64_t)(end - *p) || (*p)[len] != '\0') return NULL;
  const char *s = *p;
  *p += len + 1;
  return s;
}

static int split(const struct spe_buf *b, struct request *r) {
  r->h = (const struct req_head *)b->data;
  const char *p = b->data + sizeof *r->h, *end = b->data + b->len;
  r->job_id = take(&p, end, r->h->job_id_len);
  r->job_name = r->job_id ? take(&p, end, r->h->job_name_len) : NULL;
  r->task = r->job_name ? take(&p, end, r->h->task_len) : NULL;
  r->func = r->task ? take(&p, end, r->h->func_len) : NULL;
  r->input = r->func ? take(&p, end, r->h->input_len) : NULL;
  r->arg = r->input ? take(&p, end, r->h->arg_len) : NULL;
  return r->arg != NULL && p == end ? 0 : -1;
}

/* Read one request into `in`. Returns 0, 1 at EOF, -1 when broken, -2 when
 * its body cannot be held (out of memory). */
static int read_request(int fd, struct spe_buf *in, struct request *r) {
  const size_t hs = sizeof(struct req_head);
  in->len = 0;
  if (spe__buf_reserve(in, 4096) != 0) return -2;
  int rc = read_at_least(fd, in, hs);
  if (rc != 0) return rc;
  struct req_head h;
  memcpy(&h, in->data, hs);
  if (h.magic != REQ_MAGIC) return -1;
  /* Six fields and their NULs; each length is bounded well below overflow. */
  uint64_t body = (uint64_t)h.job_id_len + h.job_name_len + h.task_len + h.func_len;
  if (h.input_len > SIZE_MAX / 4 || h.arg_len > SIZE_MAX / 4) return -1;
  body += h.input_len + h.arg_len + 6;
  if (body > SIZE_MAX / 2) return -1;
  if (spe__buf_reserve(in, hs + (size_t)body - in->len) != 0) return -2;
  rc = read_at_least(fd, in, hs + (size_t)body);
  if (rc != 0) return -1;
  if (in->len != hs + body) return -1; /* one frame at a time */
  return split(in, r);
}

/* ---- the response ---- */

/* A dump into the response that stops past the result limit (so that a huge
 * result is refused without being held) and tells that apart from running
 * out of memory. */
struct dump_ctx {
  struct spe_buf *b;
  size_t start, max;
  int too_big, nomem;
};

static int dump_cb(const char *p, size_t n, void *data) {
  struct dump_ctx *d = data;
  if (n > d->max - (d->b->len - d->start)) {
    d->too_big = 1;
    return -1;
  }
  if (spe__buf_append(d->b, p, n) != 0) {
    d->nomem = 1;
    return -1;
  }
  return 0;
}

static void set_head(struct spe_buf *out, uint16_t status, uint16_t flags) {
  struct resp_head h = {RESP_MAGIC, status, flags, out->len - sizeof h};
  memcpy(out->data, &h, sizeof h);
}

/* Start a response in `out`: room for its header. 0 or -1. */
static int begin(struct spe_buf *out) {
  out->len = 0;
  if (spe__buf_reserve(out, 4096) != 0) return -1;
  out->len = sizeof(struct resp_head);
  return 0;
}

/* An error response with `msg` (cut at RESP_MAX_MESSAGE). When not even that
 * can be built, a fixed one without copying. */
static void error_resp(struct spe_buf *out, const char *msg, uint16_t flags) {
  size_t n = strlen(msg);
  if (n > RESP_MAX_MESSAGE) n = RESP_MAX_MESSAGE;
  static const char nomem[] = "out of memory in the function's worker";
  if (begin(out) != 0 || spe__buf_append(out, msg, n) != 0) {
    /* `begin` reserved 4096 bytes unless the buffer never had any. */
    if (out->cap < sizeof(struct resp_head) + sizeof nomem) return;
    out->len = sizeof(struct resp_head);
    spe__buf_append(out, nomem, sizeof nomem - 1);
    flags |= RESP_F_RETIRE;
  }
  set_head(out, RESP_ERROR, flags);
}

static void result_resp(struct spe_buf *out, json_t *result, size_t max) {
  if (begin(out) != 0) {
    error_resp(out, "out of memory encoding the result", RESP_F_RETIRE);
    return;
  }
  struct dump_ctx d = {out, out->len, max, 0, 0};
  if (json_dump_callback(result, dump_cb, &d, JSON_ENCODE_ANY | JSON_COMPACT) == 0) {
    set_head(out, RESP_OK, 0);
    return;
  }
  char msg[160];
  if (d.too_big)
    snprintf(msg, sizeof msg, "the result passed the limit of %zu bytes (max_result_bytes)", max);
  else if (d.nomem)
    snprintf(msg, sizeof msg, "out of memory encoding the result");
  else
    snprintf(msg, sizeof msg, "the function returned a value that cannot be encoded as JSON");
  error_resp(out, msg, d.nomem ? RESP_F_RETIRE : 0);
}

/* ---- one call ---- */

static void serve(const struct spe_registry *reg, const struct request *r, struct spe_buf *out) {
  const struct func_entry *f = spe__registry_find(reg, r->func);
  if (f == NULL) {
    char msg[SPE_MAX_NAME_BYTES + 64];
    snprintf(msg, sizeof msg, "no function \"%s\" is registered", r->func);
    error_resp(out, msg, 0);
    return;
  }
  json_error_t jerr;
  json_t *input = json_loadb(r->input, r->h->input_len, JSON_ALLOW_NUL, &jerr);
  json_t *arg = input ? json_loadb(r->arg, r->h->arg_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr)
                      : NULL;
  if (input == NULL || arg == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "the function's worker cannot read the task's %s: %s",
             input == NULL ? "input" : "arg", jerr.text);
    /* Out of memory, the worker may be in no state to go on; a text too
     * deep for the parser is only this task's problem. */
    error_resp(out, msg, json_error_code(&jerr) == json_error_out_of_memory ? RESP_F_RETIRE : 0);
    json_decref(input);
    return;
  }
  struct spe_call call = {.input = input,
                          .arg = arg,
                          .job_id = r->job_id,
                          .job_name = r->job_name,
                          .task = r->task,
                          .attempt = r->h->attempt,
                          .cancelled = NULL};
  json_t *result = NULL;
  char *error = NULL;
  spe__call_run(f, &call, &result, &error);
  if (result != NULL) result_resp(out, result, (size_t)r->h->max_result);
  else error_resp(out, error ? error : "the function reported a failure", 0);
  json_decref(result);
  free(error);
  json_decref(input);
  json_decref(arg);
}

void spe__worker_main(int sock, const struct spe_registry *reg, size_t memory_limit,
                      pid_t server) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != server) _exit(EXIT_ORPHAN);
  prctl(PR_SET_NAME, "spe-worker"); /* what ps and top show */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  apply_memory_limit(memory_limit);

  struct spe_buf in = {0}, out = {0};
  for (;;) {
    struct request r = {0};
    int rc = read_request(sock, &in, &r);
    if (rc == 1) _exit(EXIT_DONE);
    if (rc == -1) _exit(EXIT_BROKEN);
    if (rc == -2) {
      /* The rest of the frame is still in the socket: answer, then leave. */
      error_resp(&out, "out of memory reading the task's input in the function's worker",
                 RESP_F_RETIRE);
      if (out.len > 0) write_all(sock, out.data, out.len);
      _exit(EXIT_DONE);
    }
    serve(reg, &r, &out);
    if (out.len == 0 || write_all(sock, out.data, out.len) != 0) _exit(EXIT_DONE);
    int retire = (((const struct resp_head *)out.data)->flags & RESP_F_RETIRE) != 0;
    if (retire) _exit(EXIT_DONE);
    spe__buf_reset(&in);
    spe__buf_reset(&out);
  }
}
