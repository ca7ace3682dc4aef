/*
 * Process isolation of `exec` functions (src/func/forkserver.c, proc_*.c),
 * driven directly on a loop: every test starts attempts, polls the loop until
 * their outcomes arrive (no sleeps), and checks what a user would see. Each
 * test checks that no descriptor leaked and no zombie was left; the group's
 * teardown stops the fork servers and checks that every worker seen is gone.
 *
 * The fork servers are started before anything else, from the main thread,
 * as spe_open() does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/clock.h"
#include "func/forkserver.h"
#include "func/impl.h"
#include "func/proc_protocol.h"
#include "loop/loop.h"
#include "spe.h"
#include "support/cli_util.h"
#include "support/exec_util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the functions ---- */

static json_t *fn_add(void *ctx, spe_call *call) { return json_integer(1 + 2); }

/* Everything the call offers, as one object. */
static json_t *fn_echo(void *ctx, spe_call *call) {
  return json_pack("{sOsOsssssssi}", "input", spe_call_input(call), "arg", spe_call_arg(call),
                   "job_id", spe_call_job_id(call), "job_name", spe_call_job_name(call), "task",
                   spe_call_task(call), "attempt", (int)spe_call_attempt(call));
}

static json_t *fn_input(void *ctx, spe_call *call) {
  return json_incref((json_t *)spe_call_input(call));
}
static json_t *fn_string(void *ctx, spe_call *call) { return json_string("hello"); }
static json_t *fn_object(void *ctx, spe_call *call) { return json_pack("{s[ii]}", "a", 1, 2); }
static json_t *fn_null(void *ctx, spe_call *call) { return NULL; }
static json_t *fn_fail(void *ctx, spe_call *call) {
  return spe_call_fail(call, "cannot divide %d by %d", 1, 0);
}
static json_t *fn_segv(void *ctx, spe_call *call) {
  raise(SIGSEGV);
  return NULL;
}
static json_t *fn_abort(void *ctx, spe_call *call) { abort(); }
static json_t *fn_exit1(void *ctx, spe_call *call) { exit(1); }
static json_t *fn_sigkill(void *ctx, spe_call *call) {
  raise(SIGKILL);
  return NULL;
}
static json_t *fn_pid(void *ctx, spe_call *call) { return json_integer(getpid()); }

/* Write our pid to `path`, whole or not at all (a file beside it, renamed). */
static void write_pid(const char *path) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *fp = fopen(tmp, "w");
  if (fp == NULL) return;
  fprintf(fp, "%d\n", (int)getpid());
  fclose(fp);
  rename(tmp, path);
}

/* Write our pid to the file named by the arg (if any), then spin forever. */
static json_t *fn_spin(void *ctx, spe_call *call) {
  const char *path = json_string_value(spe_call_arg(call));
  if (path != NULL) write_pid(path);
  for (volatile unsigned long i = 0;; i++) {
  }
  return NULL;
}

/* Sleep `arg` ms, then return our pid. */
static json_t *fn_nap(void *ctx, spe_call *call) {
  struct timespec ts = {0, (long)json_integer_value(spe_call_arg(call)) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return json_integer(getpid());
}

/* 256 MiB, touched: more than a 64 MiB address-space limit allows. */
static json_t *fn_hog(void *ctx, spe_call *call) {
  size_t n = (size_t)256 << 20;
  char *p = malloc(n);
  if (p == NULL) abort();
  memset(p, 1, n);
  json_t *r = json_integer(p[n - 1]);
  free(p);
  return r;
}

/* A string of `arg` bytes. */
static json_t *fn_bigstr(void *ctx, spe_call *call) {
  size_t n = (size_t)json_integer_value(spe_call_arg(call));
  char *s = malloc(n);
  for (size_t i = 0; i < n; i++) s[i] = (char)('a' + i % 26);
  json_t *r = json_stringn(s, n);
  free(s);
  return r;
}

/* Not UTF-8, so jansson cannot dump it. */
static json_t *fn_unencodable(void *ctx, spe_call *call) {
  return json_stringn_nocheck("\xff\xfe", 2);
}

/* Start a child in our process group that writes its pid to the file named by
 * the arg and sleeps forever, then kill ourselves. */
static json_t *fn_orphan(void *ctx, spe_call *call) {
  pid_t child = fork();
  if (child == 0) {
    write_pid(json_string_value(spe_call_arg(call)));
    for (;;) pause();
  }
  /* Wait for the file, so that the child is surely running. */
  for (int i = 0; i < 5000 && access(json_string_value(spe_call_arg(call)), F_OK) != 0; i++)
    usleep(1000);
  raise(SIGKILL);
  return NULL;
}

/* How the worker is set up: its group, blocked, ignored and caught signals. */
static json_t *fn_setting(void *ctx, spe_call *call) {
  FILE *fp = fopen("/proc/self/status", "r");
  char line[256];
  json_t *r = json_pack("{sisi}", "pid", (int)getpid(), "pgid", (int)getpgid(0));
  while (fp != NULL && fgets(line, sizeof line, fp) != NULL) {
    char key[32], val[64];
    if (sscanf(line, "%31[^:]:%63s", key, val) == 2 &&
        (strcmp(key, "SigBlk") == 0 || strcmp(key, "SigIgn") == 0 || strcmp(key, "SigCgt") == 0))
      json_object_set_new(r, key, json_string(val));
  }
  if (fp != NULL) fclose(fp);
  return r;
}

static const struct {
  const char *name;
  spe_function fn;
} functions[] = {
    {"add", fn_add},       {"echo", fn_echo},     {"input", fn_input},
    {"string", fn_string}, {"object", fn_object}, {"null", fn_null},
    {"fail", fn_fail},     {"segv", fn_segv},     {"abort", fn_abort},
    {"exit1", fn_exit1},   {"sigkill", fn_sigkill}, {"pid", fn_pid},
    {"spin", fn_spin},     {"nap", fn_nap},       {"hog", fn_hog},
    {"bigstr", fn_bigstr}, {"unencodable", fn_unencodable}, {"orphan", fn_orphan},
    {"setting", fn_setting},
};

/* ---- fixture ---- */

static spe_registry *reg;
static struct fork_server *fs;       /* no memory limit */
static struct fork_server *fs_small; /* 64 MiB */
static struct fork_server *fs_dying; /* killed by a test */
static pid_t seen[256];              /* worker pids seen, checked gone at the end */
static size_t nseen;

struct slot {
  int done;
  struct task_outcome out;
  struct func_run *run;
};

struct fx {
  struct loop lp;
  struct proc_exec *px;
  int fds_before;
  int in_call; /* set around start and signal: done must never be called then */
  int ndone;
};

static void on_done(void *ctx, void *task_ctx, struct task_outcome *out) {
  struct fx *f = ctx;
  struct slot *s = task_ctx;
  assert_false(f->in_call);
  assert_false(s->done);
  s->done = 1;
  s->out = *out;
  f->ndone++;
}

static int sanitized(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return 1;
#else
  return 0;
#endif
#else
  return 0;
#endif
}

static void handler(int sig) { (void)sig; }

static int group_setup(void **state) {
  /* The program's own signal settings, which workers must not inherit. */
  signal(SIGUSR1, SIG_IGN);
  signal(SIGTERM, handler);
  assert_int_equal(spe_registry_new(&reg), 0);
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
    assert_int_equal(spe_register(reg, functions[i].name, functions[i].fn, NULL, NULL), 0);
  char *msg = NULL;
  assert_int_equal(spe__forkserver_start(&fs, reg, SIZE_MAX, NULL, &msg), 0);
  assert_int_equal(spe__forkserver_start(&fs_small, reg, (size_t)64 << 20, NULL, &msg), 0);
  assert_int_equal(spe__forkserver_start(&fs_dying, reg, SIZE_MAX, NULL, &msg), 0);
  signal(SIGTERM, SIG_DFL);
  signal(SIGUSR1, SIG_DFL);
  return 0;
}


static int group_teardown(void **state) {
  spe__forkserver_stop(fs);
  spe__forkserver_stop(fs_small);
  spe__forkserver_stop(fs_dying);
  spe_registry_free(reg);
  /* Every fork server was reaped, and took its workers with it. */
  errno = 0;
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
  for (size_t i = 0; i < nseen; i++)
    if (!cli_process_gone(seen[i])) fail_msg("worker %d is still there", (int)seen[i]);
  return 0;
}

static void see(pid_t pid) {
  if (nseen < sizeof seen / sizeof seen[0]) seen[nseen++] = pid;
}

static int setup_on(void **state, struct fork_server *server, uint32_t workers) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->fds_before = xu_count_fds();
  assert_int_equal(spe__loop_init(&f->lp), 0);
  struct func_exec_config cfg = {.isolation = SPE_ISOLATION_PROCESS,
                                 .workers = workers,
                                 .max_result_bytes = 0,
                                 .reg = reg,
                                 .fs = server};
  assert_int_equal(spe__proc_exec_new(&f->px, &cfg, &f->lp, NULL, on_done, f), 0);
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_on(state, fs, 4); }
static int setup_small(void **state) { return setup_on(state, fs_small, 4); }
static int setup_dying(void **state) { return setup_on(state, fs_dying, 4); }

static void slot_clear(struct slot *s) {
  json_decref(s->out.result);
  json_decref(s->out.error);
  memset(s, 0, sizeof *s);
}

static int teardown(void **state) {
  struct fx *f = *state;
  spe__proc_exec_free(f->px);
  spe__loop_close(&f->lp);
  int fds_after = xu_count_fds(), before = f->fds_before;
  free(f);
  assert_int_equal(fds_after, before);
  /* The fork servers are our only children, and none of them is a zombie
   * (fs_dying is, once its test killed it: stopping it reaps it). */
  siginfo_t info;
  memset(&info, 0, sizeof info);
  assert_int_equal(waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT), 0);
  if (info.si_pid != 0) assert_int_equal(info.si_pid, fs_dying->pid);
  return 0;
}

static struct task_launch launch(const char *function, const json_t *arg) {
  return (struct task_launch){.job_id = "01JTESTJOBID0000000000000A",
                              .job_name = "testjob",
                              .task_name = "t",
                              .attempt = 1,
                              .function = function,
                              .input_json = xu_empty_input(),
                              .arg = arg};
}

static void start(struct fx *f, const struct task_launch *l, struct slot *s) {
  struct task_outcome failed = {0};
  f->in_call = 1;
  int rc = spe__proc_start(f->px, l, s, &s->run, &failed);
  f->in_call = 0;
  if (rc != 0)
    fail_msg("start failed: %s", json_string_value(json_object_get(failed.error, "message")));
  assert_non_null(s->run);
}

static void signal_run(struct fx *f, struct slot *s, int sig, const char *kind) {
  f->in_call = 1;
  spe__proc_signal(f->px, s->run, sig, kind);
  f->in_call = 0;
}

/* Poll until `s` is done, failing after 20 s. */
static void wait_for(struct fx *f, struct slot *s) { xu_await_done(&f->lp, &s->done, 20000); }

/* Poll until `path` exists (a function under test creates it once it runs),
 * failing after 10 s. */
static void await_file(struct fx *f, const char *path) {
  int64_t deadline = spe__mono_ms() + 10000;
  while (access(path, F_OK) != 0) {
    if (spe__mono_ms() >= deadline) fail_msg("%s did not appear within 10 s", path);
    assert_true(spe__loop_poll(&f->lp, 5) >= 0);
  }
}

static void run(struct fx *f, const struct task_launch *l, struct slot *s) {
  start(f, l, s);
  wait_for(f, s);
}

static void run_fn(struct fx *f, const char *function, const json_t *arg, struct slot *s) {
  struct task_launch l = launch(function, arg);
  run(f, &l, s);
}

static void assert_ok(const struct slot *s) {
  if (!s->out.succeeded) {
    char *e = json_dumps(s->out.error, 0);
    fail_msg("failed: %s", e);
  }
  assert_non_null(s->out.result);
  assert_null(s->out.error);
}

static const char *err_field(const struct slot *s, const char *key) {
  assert_false(s->out.succeeded);
  assert_null(s->out.result);
  assert_non_null(s->out.error);
  return json_string_value(json_object_get(s->out.error, key));
}

/* The pid a "pid" call returns: which worker ran it. */
static pid_t worker_pid(struct fx *f) {
  struct slot s = {0};
  run_fn(f, "pid", NULL, &s);
  assert_ok(&s);
  pid_t pid = (pid_t)json_integer_value(s.out.result);
  see(pid);
  slot_clear(&s);
  return pid;
}

static const char *tmp_path(const char *name) {
  static char path[4096];
  const char *t = getenv("SPE_TEST_TMP");
  if (t == NULL) t = "/tmp";
  mkdir(t, 0755);
  snprintf(path, sizeof path, "%s/%s.%d", t, name, (int)getpid());
  unlink(path);
  return path;
}

static pid_t read_pid(const char *path) {
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  int pid = 0;
  assert_int_equal(fscanf(fp, "%d", &pid), 1);
  fclose(fp);
  unlink(path);
  return (pid_t)pid;
}

/* ---- results ---- */

static void test_returns_value(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  run_fn(f, "add", NULL, &s);
  assert_ok(&s);
  assert_int_equal(json_integer_value(s.out.result), 3);
  assert_true(s.out.started_ms > 0 && s.out.finished_ms >= s.out.started_ms);
  assert_int_equal(spe__proc_running(f->px), 0);
  slot_clear(&s);
}

static void test_call_context(void **state) {
  struct fx *f = *state;
  json_t *input = json_pack("{si s{ss}}", "a", 7, "b", "x", "y");
  json_t *arg = json_pack("[is]", 2, "two");
  struct task_launch l = launch("echo", arg);
  l.input_json = input;
  l.task_name = "sum";
  l.attempt = 3;
  struct slot s = {0};
  run(f, &l, &s);
  assert_ok(&s);
  assert_true(json_equal(json_object_get(s.out.result, "input"), input));
  assert_true(json_equal(json_object_get(s.out.result, "arg"), arg));
  assert_string_equal(json_string_value(json_object_get(s.out.result, "task")), "sum");
  assert_string_equal(json_string_value(json_object_get(s.out.result, "job_id")),
                      "01JTESTJOBID0000000000000A");
  assert_string_equal(json_string_value(json_object_get(s.out.result, "job_name")), "testjob");
  assert_int_equal(json_integer_value(json_object_get(s.out.result, "attempt")), 3);
  slot_clear(&s);

  /* No arg: JSON null; no input: {}. */
  run_fn(f, "echo", NULL, &s);
  assert_ok(&s);
  assert_true(json_is_null(json_object_get(s.out.result, "arg")));
  assert_int_equal(json_object_size(json_object_get(s.out.result, "input")), 0);
  slot_clear(&s);
  json_decref(input);
  json_decref(arg);
}

static void test_result_kinds(void **state) {
  struct fx *f = *state;
  struct slot s = {0}, o = {0}, n = {0};
  run_fn(f, "string", NULL, &s);
  assert_ok(&s);
  assert_string_equal(json_string_value(s.out.result), "hello");
  run_fn(f, "object", NULL, &o);
  assert_ok(&o);
  assert_int_equal(json_integer_value(json_array_get(json_object_get(o.out.result, "a"), 1)), 2);
  run_fn(f, "null", NULL, &n);
  assert_ok(&n);
  assert_true(json_is_null(n.out.result));
  slot_clear(&s);
  slot_clear(&o);
  slot_clear(&n);
}

static void test_reported_failure(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  run_fn(f, "fail", NULL, &s);
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_string_equal(err_field(&s, "message"), "cannot divide 1 by 0");
  slot_clear(&s);
}

static void test_unencodable_result(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  pid_t before = worker_pid(f);
  run_fn(f, "unencodable", NULL, &s);
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_non_null(strstr(err_field(&s, "message"), "cannot be encoded as JSON"));
  slot_clear(&s);
  /* Not a crash: the worker goes on. */
  assert_int_equal(worker_pid(f), before);
}

/* ---- crashes ---- */

static void check_crash(struct fx *f, const char *function, const char *key, int value,
                        const char *message) {
  struct slot s = {0};
  run_fn(f, function, NULL, &s);
  assert_string_equal(err_field(&s, "kind"), "crashed");
  assert_true(json_is_integer(json_object_get(s.out.error, key)));
  assert_int_equal(json_integer_value(json_object_get(s.out.error, key)), value);
  assert_string_equal(err_field(&s, "message"), message);
  slot_clear(&s);
}

static void test_crashes(void **state) {
  struct fx *f = *state;
  pid_t p0 = worker_pid(f);
  check_crash(f, "segv", "signal", SIGSEGV,
              "the function's worker was killed by signal 11 (SIGSEGV)");
  pid_t p1 = worker_pid(f); /* the next task succeeds, on a new worker */
  assert_int_not_equal(p1, p0);
  check_crash(f, "abort", "signal", SIGABRT,
              "the function's worker was killed by signal 6 (SIGABRT)");
  pid_t p2 = worker_pid(f);
  assert_int_not_equal(p2, p1);
  check_crash(f, "exit1", "exit_code", 1, "the function's worker exited with status 1");
  pid_t p3 = worker_pid(f);
  assert_int_not_equal(p3, p2);
  check_crash(f, "sigkill", "signal", SIGKILL,
              "the function's worker was killed by signal 9 (SIGKILL)");
  pid_t p4 = worker_pid(f);
  assert_int_not_equal(p4, p3);
  cli_assert_dies(p0, 5000);
  cli_assert_dies(p1, 5000);
  cli_assert_dies(p2, 5000);
  cli_assert_dies(p3, 5000);
}

/* A worker's death kills whatever the function started in its group. */
static void test_crash_kills_group(void **state) {
  struct fx *f = *state;
  const char *path = tmp_path("orphan");
  json_t *arg = json_string(path);
  struct slot s = {0};
  run_fn(f, "orphan", arg, &s);
  assert_string_equal(err_field(&s, "kind"), "crashed");
  cli_assert_dies(read_pid(path), 5000);
  slot_clear(&s);
  json_decref(arg);
}

static void test_timeout(void **state) {
  struct fx *f = *state;
  const char *path = tmp_path("spin");
  json_t *arg = json_string(path);
  struct task_launch l = launch("spin", arg);
  l.timeout_ms = 200;
  struct slot s = {0};
  int64_t t0 = spe__mono_ms();
  run(f, &l, &s);
  int64_t took = spe__mono_ms() - t0;
  assert_string_equal(err_field(&s, "kind"), "timeout");
  assert_string_equal(err_field(&s, "message"), "ran past 200 ms");
  assert_true(took >= 200);
  assert_true(took < 5000);
  cli_assert_dies(read_pid(path), 5000);
  slot_clear(&s);
  worker_pid(f); /* the executor goes on */
  json_decref(arg);
}

static void test_memory_limit(void **state) {
  struct fx *f = *state;
  /* Sanitizers reserve terabytes of address space, so the limit is not
   * applied there; valgrind's own mappings count against it. */
  if (sanitized() || xu_under_valgrind()) skip();
  struct slot s = {0};
  run_fn(f, "hog", NULL, &s);
  assert_string_equal(err_field(&s, "kind"), "crashed");
  assert_int_equal(json_integer_value(json_object_get(s.out.error, "signal")), SIGABRT);
  slot_clear(&s);
  worker_pid(f);
}

/* ---- several at once, cancel, refusals ---- */

static void test_parallel(void **state) {
  struct fx *f = *state;
  enum { N = 4 };
  struct slot s[N];
  memset(s, 0, sizeof s);
  json_t *arg = json_integer(300);
  for (int i = 0; i < N; i++) {
    struct task_launch l = launch("nap", arg);
    start(f, &l, &s[i]);
  }
  assert_int_equal(spe__proc_running(f->px), N);
  for (int i = 0; i < N; i++) wait_for(f, &s[i]);
  /* All ran at once, so each on its own worker. */
  for (int i = 0; i < N; i++) {
    assert_ok(&s[i]);
    see((pid_t)json_integer_value(s[i].out.result));
    for (int j = 0; j < i; j++)
      assert_int_not_equal(json_integer_value(s[i].out.result),
                           json_integer_value(s[j].out.result));
  }
  for (int i = 0; i < N; i++) slot_clear(&s[i]);
  json_decref(arg);
}

static void test_worker_reused(void **state) {
  struct fx *f = *state;
  pid_t a = worker_pid(f), b = worker_pid(f);
  assert_int_equal(a, b);
  assert_int_not_equal(a, getpid());
  /* Let go with the executor, an idle worker exits. */
  spe__proc_exec_free(f->px);
  f->px = NULL;
  cli_assert_dies(a, 5000);
}

static void test_cancel(void **state) {
  struct fx *f = *state;
  const char *path = tmp_path("cancel");
  json_t *arg = json_string(path);
  struct task_launch l = launch("spin", arg);
  struct slot s = {0};
  start(f, &l, &s);
  /* Wait until the function runs, then cancel it. */
  await_file(f, path);
  signal_run(f, &s, SIGTERM, "cancelled");
  signal_run(f, &s, SIGTERM, "cancelled"); /* twice is harmless */
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "cancelled");
  cli_assert_dies(read_pid(path), 5000);
  slot_clear(&s);
  json_decref(arg);
}

/* An attempt cancelled before any worker took it is reported from the loop. */
static void test_cancel_waiting(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  struct task_launch l = launch("add", NULL);
  start(f, &l, &s); /* no idle worker yet: it waits for one */
  signal_run(f, &s, SIGTERM, "cancelled");
  assert_false(s.done);
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "cancelled");
  slot_clear(&s);
  worker_pid(f);
}

static void test_unknown_function(void **state) {
  struct fx *f = *state;
  struct task_launch l = launch("nope", NULL);
  struct task_outcome failed = {0};
  struct func_run *r = (struct func_run *)1;
  struct slot s = {0};
  f->in_call = 1;
  int rc = spe__proc_start(f->px, &l, &s, &r, &failed);
  f->in_call = 0;
  assert_true(rc < 0);
  assert_null(r);
  assert_false(failed.succeeded);
  assert_string_equal(json_string_value(json_object_get(failed.error, "kind")), "error");
  assert_string_equal(json_string_value(json_object_get(failed.error, "message")),
                      "no function \"nope\" is registered");
  json_decref(failed.error);
  assert_int_equal(spe__proc_running(f->px), 0);
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_false(s.done);
}

/* An arg jansson cannot dump (not UTF-8) is refused at the start. */
static void test_unencodable_arg(void **state) {
  struct fx *f = *state;
  json_t *arg = json_stringn_nocheck("\xff", 1);
  struct task_launch l = launch("echo", arg);
  struct task_outcome failed = {0};
  struct func_run *r;
  struct slot s = {0};
  f->in_call = 1;
  assert_true(spe__proc_start(f->px, &l, &s, &r, &failed) < 0);
  f->in_call = 0;
  assert_string_equal(json_string_value(json_object_get(failed.error, "message")),
                      "the task's input or arg cannot be encoded as JSON");
  json_decref(failed.error);
  json_decref(arg);
  worker_pid(f);
}

static void test_no_fork_server(void **state) {
  struct loop lp;
  assert_int_equal(spe__loop_init(&lp), 0);
  struct func_exec_config cfg = {.isolation = SPE_ISOLATION_PROCESS, .workers = 1, .reg = reg};
  struct proc_exec *px;
  assert_int_equal(spe__proc_exec_new(&px, &cfg, &lp, NULL, on_done, NULL), 0);
  struct task_launch l = launch("add", NULL);
  struct task_outcome failed = {0};
  struct func_run *r;
  assert_true(spe__proc_start(px, &l, NULL, &r, &failed) < 0);
  assert_string_equal(json_string_value(json_object_get(failed.error, "kind")), "error");
  json_decref(failed.error);
  spe__proc_exec_free(px);
  spe__loop_close(&lp);
}

/* ---- sizes ---- */

static void test_big_input_and_result(void **state) {
  struct fx *f = *state;
  size_t n = (size_t)6 << 20;
  char *text = malloc(n);
  for (size_t i = 0; i < n; i++) text[i] = (char)('A' + (i * 7) % 26);
  json_t *input = json_object();
  json_object_set_new(input, "up", json_stringn(text, n));
  struct task_launch l = launch("input", NULL);
  l.input_json = input;
  struct slot s = {0};
  run(f, &l, &s);
  assert_ok(&s);
  assert_true(json_equal(s.out.result, input));
  slot_clear(&s);

  json_t *size = json_integer(5 << 20);
  run_fn(f, "bigstr", size, &s);
  assert_ok(&s);
  assert_int_equal(json_string_length(s.out.result), 5 << 20);
  assert_int_equal(json_string_value(s.out.result)[(5 << 20) - 1], 'a' + ((5 << 20) - 1) % 26);
  slot_clear(&s);
  json_decref(size);
  json_decref(input);
  free(text);
}

static void test_result_limit(void **state) {
  struct fx *f = *state;
  spe__proc_exec_free(f->px);
  struct func_exec_config cfg = {.isolation = SPE_ISOLATION_PROCESS,
                                 .workers = 2,
                                 .max_result_bytes = 1000,
                                 .reg = reg,
                                 .fs = fs};
  assert_int_equal(spe__proc_exec_new(&f->px, &cfg, &f->lp, NULL, on_done, f), 0);
  json_t *small = json_integer(998), *big = json_integer(999);
  struct slot s = {0};
  run_fn(f, "bigstr", small, &s); /* 998 characters and two quotes */
  assert_ok(&s);
  slot_clear(&s);
  run_fn(f, "bigstr", big, &s);
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_string_equal(err_field(&s, "message"),
                      "the result passed the limit of 1000 bytes (max_result_bytes)");
  slot_clear(&s);
  worker_pid(f);
  json_decref(small);
  json_decref(big);
}

/* ---- the worker's setting ---- */

static void test_worker_setting(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  run_fn(f, "setting", NULL, &s);
  assert_ok(&s);
  json_t *r = s.out.result;
  see((pid_t)json_integer_value(json_object_get(r, "pid")));
  /* Its own process group. */
  assert_int_equal(json_integer_value(json_object_get(r, "pgid")),
                   json_integer_value(json_object_get(r, "pid")));
  /* Nothing blocked, and none of the program's handlers or ignored signals
   * (sanitizers install handlers of their own in every process). */
  assert_string_equal(json_string_value(json_object_get(r, "SigBlk")), "0000000000000000");
  assert_string_equal(json_string_value(json_object_get(r, "SigIgn")), "0000000000000000");
  if (!sanitized() && !xu_under_valgrind())
    assert_string_equal(json_string_value(json_object_get(r, "SigCgt")), "0000000000000000");
  slot_clear(&s);
}

/* Freeing the executor kills what still runs (the group's teardown checks
 * that the worker is gone). */
static void test_free_while_running(void **state) {
  struct fx *f = *state;
  const char *path = tmp_path("free");
  json_t *arg = json_string(path);
  struct task_launch l = launch("spin", arg);
  static struct slot s;
  memset(&s, 0, sizeof s);
  start(f, &l, &s);
  await_file(f, path);
  pid_t pid = read_pid(path);
  spe__proc_exec_free(f->px);
  f->px = NULL;
  assert_false(s.done);
  cli_assert_dies(pid, 5000);
  json_decref(arg);
}

/* The fork server dies: the running attempt fails, later ones cannot start,
 * and the executor goes on. */
static void test_server_dies(void **state) {
  struct fx *f = *state;
  const char *path = tmp_path("dies");
  json_t *arg = json_string(path);
  struct task_launch l = launch("spin", arg);
  struct slot s = {0};
  start(f, &l, &s);
  await_file(f, path);
  pid_t worker = read_pid(path);
  kill(fs_dying->pid, SIGKILL);
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_string_equal(err_field(&s, "message"), "the fork server died while the function ran");
  cli_assert_dies(worker, 5000); /* its death signal */
  slot_clear(&s);

  struct task_outcome failed = {0};
  struct func_run *r;
  l = launch("add", NULL);
  assert_true(spe__proc_start(f->px, &l, &s, &r, &failed) < 0);
  assert_string_equal(json_string_value(json_object_get(failed.error, "message")),
                      "the fork server is gone");
  json_decref(failed.error);
  json_decref(arg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_returns_value, setup, teardown),
      cmocka_unit_test_setup_teardown(test_call_context, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_kinds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reported_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unencodable_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crashes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crash_kills_group, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_memory_limit, setup_small, teardown),
      cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_worker_reused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_function, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unencodable_arg, setup, teardown),
      cmocka_unit_test(test_no_fork_server),
      cmocka_unit_test_setup_teardown(test_big_input_and_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_worker_setting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_while_running, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_dies, setup_dying, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
