/*
 * The command executor, driven directly on a loop: every test starts attempts,
 * polls the loop until their outcomes arrive (no sleeps), and checks what a
 * user of `spe run` would see. Every test also checks that no descriptor was
 * leaked and no zombie left behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/clock.h"
#include "exec/cmd.h"
#include "exec/utf8.h"
#include "loop/loop.h"
#include "spe.h"
#include "support/cli_util.h"
#include "support/exec_util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- fixture ---- */

struct slot {
  int done;
  struct task_outcome out;
  struct cmd_run *run;
};

struct fx {
  struct loop lp;
  struct cmd_exec *ex;
  int fds_before;
  int in_start;   /* set around spe__cmd_start: done must never be called then */
  int ndone;
  struct slot *extra; /* slots a test allocated, freed in teardown */
  size_t nextra;
};

static void on_done(void *ctx, void *task_ctx, struct task_outcome *out) {
  struct fx *f = ctx;
  struct slot *s = task_ctx;
  assert_false(f->in_start);
  assert_false(s->done);
  s->done = 1;
  s->out = *out;
  f->ndone++;
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->fds_before = xu_count_fds();
  assert_int_equal(spe__loop_init(&f->lp), 0);
  assert_int_equal(spe__cmd_exec_new(&f->ex, &f->lp, NULL, on_done, f), 0);
  *state = f;
  return 0;
}

static void slot_clear(struct slot *s) {
  json_decref(s->out.result);
  json_decref(s->out.error);
  memset(s, 0, sizeof *s);
}

static int teardown(void **state) {
  struct fx *f = *state;
  spe__cmd_exec_free(f->ex);
  spe__loop_close(&f->lp);
  for (size_t i = 0; i < f->nextra; i++) slot_clear(&f->extra[i]);
  free(f->extra);
  int fds_after = xu_count_fds();
  /* Every child was reaped: not one zombie of ours is left. */
  errno = 0;
  pid_t p = waitpid(-1, NULL, WNOHANG);
  int e = errno;
  int before = f->fds_before;
  free(f);
  assert_int_equal(p, -1);
  assert_int_equal(e, ECHILD);
  assert_int_equal(fds_after, before);
  return 0;
}

static struct task_launch launch_cmd(const char *cmd) {
  static const char input[] = "{}";
  return (struct task_launch){.job_id = "01JTESTJOBID0000000000000A",
                              .job_name = "testjob",
                              .task_name = "t",
                              .attempt = 1,
                              .cmd = cmd,
                              .input = input,
                              .input_len = sizeof input - 1};
}

static struct task_launch launch_argv(char *const *argv) {
  struct task_launch l = launch_cmd(NULL);
  l.argv = argv;
  return l;
}

static void start(struct fx *f, const struct task_launch *l, struct slot *s) {
  struct task_outcome failed = {0};
  f->in_start = 1;
  int rc = spe__cmd_start(f->ex, l, s, &s->run, &failed);
  f->in_start = 0;
  if (rc != 0) fail_msg("start failed: %s", json_string_value(json_object_get(failed.error, "message")));
  assert_non_null(s->run);
}

/* Poll until `s` is done, failing after 20 s. */
static void wait_for(struct fx *f, struct slot *s) { xu_await_done(&f->lp, &s->done, 20000); }

static void run(struct fx *f, const struct task_launch *l, struct slot *s) {
  start(f, l, s);
  wait_for(f, s);
}

static void run_cmd(struct fx *f, const char *cmd, struct slot *s) {
  struct task_launch l = launch_cmd(cmd);
  run(f, &l, s);
}

static const char *err_field(const struct slot *s, const char *key) {
  assert_false(s->out.succeeded);
  assert_non_null(s->out.error);
  return json_string_value(json_object_get(s->out.error, key));
}

static void assert_result_string(const struct slot *s, const char *want, size_t len) {
  if (!s->out.succeeded) fail_msg("failed: %s", json_dumps(s->out.error, 0));
  assert_true(json_is_string(s->out.result));
  assert_int_equal(json_string_length(s->out.result), len);
  assert_memory_equal(json_string_value(s->out.result), want, len);
}

static const char *tmp_dir(void) {
  const char *t = getenv("SPE_TEST_TMP");
  if (t == NULL) t = "/tmp";
  mkdir(t, 0755);
  return t;
}

static pid_t read_pid(const char *path) {
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  long pid = 0;
  assert_int_equal(fscanf(fp, "%ld", &pid), 1);
  fclose(fp);
  return (pid_t)pid;
}

/* ---- results ---- */

static void test_json_result(void **state) {
  struct fx *f = *state;
  struct slot a = {0}, b = {0}, c = {0};
  run_cmd(f, "echo 3", &a);
  assert_true(a.out.succeeded);
  assert_true(json_is_integer(a.out.result));
  assert_int_equal(json_integer_value(a.out.result), 3);
  assert_null(a.out.error);
  assert_true(a.out.started_ms > 0 && a.out.finished_ms >= a.out.started_ms);

  run_cmd(f, "echo '{\"a\":1}'", &b);
  assert_true(b.out.succeeded);
  assert_int_equal(json_integer_value(json_object_get(b.out.result, "a")), 1);

  /* Whitespace around the value is allowed; a quoted string is a JSON string. */
  run_cmd(f, "printf '  \"quoted\"\\n\\n'", &c);
  assert_result_string(&c, "quoted", 6);
  slot_clear(&a);
  slot_clear(&b);
  slot_clear(&c);
}

static void test_string_result(void **state) {
  struct fx *f = *state;
  static const struct {
    const char *cmd, *want;
  } cases[] = {
      {"echo hello world", "hello world"}, /* one trailing newline removed */
      {"printf 'a\\n\\n'", "a\n"},         /* only one */
      {"printf 'x\\r\\n'", "x"},           /* a CRLF counts as one newline */
      {"printf 'no newline'", "no newline"},
      {"echo 3 4", "3 4"},                 /* two JSON values are not one */
      {"echo '{\"a\":1} x'", "{\"a\":1} x"},
      {"echo 1e400", "1e400"},             /* out of JSON's range in jansson */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct slot s = {0};
    run_cmd(f, cases[i].cmd, &s);
    assert_result_string(&s, cases[i].want, strlen(cases[i].want));
    slot_clear(&s);
  }
}

static void test_empty_stdout(void **state) {
  struct fx *f = *state;
  struct slot s = {0}, w = {0};
  run_cmd(f, "true", &s);
  assert_result_string(&s, "", 0);
  run_cmd(f, "echo", &w); /* a lone newline: the empty string too */
  assert_result_string(&w, "", 0);
  slot_clear(&s);
  slot_clear(&w);
}

static void test_invalid_utf8(void **state) {
  struct fx *f = *state;
  struct slot s = {0}, n = {0};
  run_cmd(f, "printf 'a\\377b\\n'", &s);
  assert_result_string(&s, "a\xEF\xBF\xBD" "b", 5);
  /* A NUL byte makes it not JSON: "3" followed by NUL is a string. */
  run_cmd(f, "printf '3\\000'", &n);
  assert_result_string(&n, "3\0", 2);
  slot_clear(&s);
  slot_clear(&n);
}

static void test_utf8_replacement_rules(void **state) {
  static const struct {
    const char *in;
    size_t len;
    const char *want;
  } cases[] = {
      {"\xE2\x82\xAC", 3, "\xE2\x82\xAC"},                         /* valid: kept */
      {"\xE2\x82", 2, "\xEF\xBF\xBD"},                             /* truncated: one */
      {"\xC0\x80", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong */
      {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
      {"\xF4\x90\x80\x80", 4,
       "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},         /* above U+10FFFF */
      {"a\xE2\x82z", 4, "a\xEF\xBF\xBDz"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *j = spe__json_string_lossy(cases[i].in, cases[i].len);
    assert_non_null(j);
    assert_int_equal(json_string_length(j), strlen(cases[i].want));
    assert_memory_equal(json_string_value(j), cases[i].want, strlen(cases[i].want));
    json_decref(j);
  }
}

static void test_argv_no_shell(void **state) {
  struct fx *f = *state;
  char *argv[] = {"printf", "%s", "a b", NULL};
  struct task_launch l = launch_argv(argv);
  struct slot s = {0};
  run(f, &l, &s);
  assert_result_string(&s, "a b", 3);
  slot_clear(&s);
}

static void assert_start_fails(struct fx *f, const struct task_launch *l, const char *want) {
  struct task_outcome failed = {0};
  struct cmd_run *r = (struct cmd_run *)1;
  struct slot s = {0};
  f->in_start = 1;
  int rc = spe__cmd_start(f->ex, l, &s, &r, &failed);
  f->in_start = 0;
  assert_true(rc < 0);
  assert_null(r);
  assert_false(failed.succeeded);
  assert_null(failed.result);
  assert_string_equal(json_string_value(json_object_get(failed.error, "kind")), "error");
  const char *msg = json_string_value(json_object_get(failed.error, "message"));
  if (strstr(msg, want) == NULL) fail_msg("message \"%s\" lacks \"%s\"", msg, want);
  json_decref(failed.error);
  assert_int_equal(spe__cmd_running(f->ex), 0);
  /* The done callback is never called for it. */
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_false(s.done);
}

static void test_missing_program(void **state) {
  struct fx *f = *state;
  if (xu_under_valgrind()) skip();
  char *argv[] = {"nosuchprog-spe", NULL};
  struct task_launch l = launch_argv(argv);
  assert_start_fails(f, &l, "cannot run \"nosuchprog-spe\": No such file or directory");

  char *noexec[] = {"/etc/passwd", NULL};
  l = launch_argv(noexec);
  assert_start_fails(f, &l, "cannot run \"/etc/passwd\": Permission denied");
}

static void test_bad_cwd(void **state) {
  struct fx *f = *state;
  if (xu_under_valgrind()) skip();
  struct task_launch l = launch_cmd("pwd");
  l.cwd = "/nope";
  assert_start_fails(f, &l, "cannot change to directory \"/nope\": No such file or directory");
  char *argv[] = {"nosuchprog-spe", NULL};
  l = launch_argv(argv);
  l.cwd = "/";
  assert_start_fails(f, &l, "cannot run \"nosuchprog-spe\"");
}

/* ---- failures ---- */

static void test_exit_code(void **state) {
  struct fx *f = *state;
  struct slot s = {0}, q = {0};
  run_cmd(f, "echo partial; echo oops >&2; exit 3", &s);
  assert_string_equal(err_field(&s, "kind"), "exit");
  assert_string_equal(err_field(&s, "message"), "exited with status 3");
  assert_int_equal(json_integer_value(json_object_get(s.out.error, "exit_code")), 3);
  assert_string_equal(err_field(&s, "stderr"), "oops\n");
  assert_null(s.out.result);

  /* No stderr written: no "stderr" field. */
  run_cmd(f, "exit 1", &q);
  assert_string_equal(err_field(&q, "kind"), "exit");
  assert_null(json_object_get(q.out.error, "stderr"));
  slot_clear(&s);
  slot_clear(&q);
}

static void test_stderr_tail(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  run_cmd(f, "seq 1 3000 >&2; exit 2", &s);
  /* What seq wrote, rebuilt here: its last 4096 bytes must be kept exactly. */
  char *all = malloc(20000);
  size_t n = 0;
  for (int i = 1; i <= 3000; i++) n += (size_t)sprintf(all + n, "%d\n", i);
  const char *tail = err_field(&s, "stderr");
  assert_int_equal(strlen(tail), SPE_STDERR_KEEP);
  assert_memory_equal(tail, all + n - SPE_STDERR_KEEP, SPE_STDERR_KEEP);
  free(all);
  slot_clear(&s);
}

/* A flood on stderr is read as it comes (no deadlock) and only its tail kept. */
static void test_stderr_flood(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  run_cmd(f, "head -c 20000000 /dev/zero | tr '\\0' e >&2; echo end >&2; exit 4", &s);
  assert_string_equal(err_field(&s, "kind"), "exit");
  const char *tail = err_field(&s, "stderr");
  assert_int_equal(strlen(tail), SPE_STDERR_KEEP);
  assert_string_equal(tail + SPE_STDERR_KEEP - 5, "eend\n");
  slot_clear(&s);
}

static void test_crashed(void **state) {
  struct fx *f = *state;
  static const struct {
    const char *cmd;
    int sig;
    const char *msg;
  } cases[] = {
      {"kill -KILL $$", SIGKILL, "killed by signal 9 (SIGKILL)"},
      {"kill -TERM $$", SIGTERM, "killed by signal 15 (SIGTERM)"},
      {"ulimit -c 0; echo bye >&2; kill -SEGV $$", SIGSEGV, "killed by signal 11 (SIGSEGV)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct slot s = {0};
    run_cmd(f, cases[i].cmd, &s);
    assert_string_equal(err_field(&s, "kind"), "crashed");
    assert_int_equal(json_integer_value(json_object_get(s.out.error, "signal")), cases[i].sig);
    assert_string_equal(err_field(&s, "message"), cases[i].msg);
    if (cases[i].sig == SIGSEGV) assert_string_equal(err_field(&s, "stderr"), "bye\n");
    slot_clear(&s);
  }
}

static void test_timeout_kills_group(void **state) {
  struct fx *f = *state;
  char cmd[PATH_MAX + 64], pidfile[PATH_MAX];
  snprintf(pidfile, sizeof pidfile, "%s/cmd-timeout-%d.pid", tmp_dir(), (int)getpid());
  snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > '%s'; wait", pidfile);
  struct task_launch l = launch_cmd(cmd);
  l.timeout_ms = 200;
  struct slot s = {0};
  int64_t t0 = spe__mono_ms();
  run(f, &l, &s);
  int64_t took = spe__mono_ms() - t0;
  assert_string_equal(err_field(&s, "kind"), "timeout");
  assert_string_equal(err_field(&s, "message"), "ran past 200 ms");
  assert_true(took >= 195);
  assert_true(took < 1000);
  cli_assert_dies(read_pid(pidfile), 2000);
  unlink(pidfile);
  slot_clear(&s);
}

static void test_background_child(void **state) {
  struct fx *f = *state;
  char cmd[PATH_MAX + 64], pidfile[PATH_MAX];
  snprintf(pidfile, sizeof pidfile, "%s/cmd-bg-%d.pid", tmp_dir(), (int)getpid());
  snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > '%s'; echo done", pidfile);
  struct slot s = {0};
  int64_t t0 = spe__mono_ms();
  run_cmd(f, cmd, &s);
  assert_true(spe__mono_ms() - t0 < 5000); /* not the 30 s of the child */
  assert_result_string(&s, "done", 4);
  cli_assert_dies(read_pid(pidfile), 2000);
  unlink(pidfile);
  slot_clear(&s);
}

static void test_large_stdout(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  run_cmd(f, "head -c 8000000 /dev/zero | tr '\\0' a", &s);
  assert_true(s.out.succeeded);
  assert_int_equal(json_string_length(s.out.result), 8000000);
  const char *v = json_string_value(s.out.result);
  assert_int_equal(v[0], 'a');
  assert_int_equal(v[7999999], 'a');
  slot_clear(&s);
}

static void test_result_limit(void **state) {
  struct fx *f = *state;
  struct task_launch l = launch_cmd("head -c 5000 /dev/zero | tr '\\0' a; sleep 30");
  l.max_result_bytes = 1000;
  struct slot s = {0}, ok = {0};
  int64_t t0 = spe__mono_ms();
  run(f, &l, &s);
  assert_true(spe__mono_ms() - t0 < 5000); /* killed at once, not after the sleep */
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_string_equal(err_field(&s, "message"),
                      "stdout passed the result limit of 1000 bytes (max_result_bytes)");

  /* Exactly at the limit is fine. */
  l.cmd = "head -c 1000 /dev/zero | tr '\\0' b";
  run(f, &l, &ok);
  assert_true(ok.out.succeeded);
  assert_int_equal(json_string_length(ok.out.result), 1000);
  slot_clear(&s);
  slot_clear(&ok);
}

/* ---- what the task sees ---- */

static void test_stdin_is_input(void **state) {
  struct fx *f = *state;
  static const char input[] = "{\"up\": [1, 2, {\"x\": \"y\"}]}";
  struct task_launch l = launch_cmd("cat");
  l.input = input;
  l.input_len = sizeof input - 1;
  struct slot s = {0};
  run(f, &l, &s);
  assert_true(s.out.succeeded);
  json_t *want = json_loads(input, 0, NULL);
  assert_true(json_equal(s.out.result, want));
  json_decref(want);
  slot_clear(&s);
}

static void test_environment(void **state) {
  struct fx *f = *state;
  setenv("SPE_TEST_INHERITED", "yes", 1);
  setenv("SPE_TASK", "outer", 1); /* the attempt's own value must win */
  char *env_job[] = {"A=job", "B=job", NULL};
  char *env_task[] = {"B=task", "C=task", NULL};
  struct task_launch l = launch_cmd(
      "printf '{\"id\":\"%s\",\"job\":\"%s\",\"task\":\"%s\",\"attempt\":%s,"
      "\"A\":\"%s\",\"B\":\"%s\",\"C\":\"%s\",\"inh\":\"%s\",\"ntask\":%s}' "
      "\"$SPE_JOB_ID\" \"$SPE_JOB_NAME\" \"$SPE_TASK\" \"$SPE_ATTEMPT\" \"$A\" \"$B\" \"$C\" "
      "\"$SPE_TEST_INHERITED\" \"$(env | grep -c '^SPE_TASK=')\"");
  l.task_name = "my-task";
  l.attempt = 2;
  l.env_job = env_job;
  l.env_task = env_task;
  struct slot s = {0};
  run(f, &l, &s);
  unsetenv("SPE_TEST_INHERITED");
  unsetenv("SPE_TASK");
  if (!s.out.succeeded) fail_msg("%s", json_dumps(s.out.error, 0));
  json_t *r = s.out.result;
  assert_string_equal(json_string_value(json_object_get(r, "id")), "01JTESTJOBID0000000000000A");
  assert_string_equal(json_string_value(json_object_get(r, "job")), "testjob");
  assert_string_equal(json_string_value(json_object_get(r, "task")), "my-task");
  assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 2);
  assert_string_equal(json_string_value(json_object_get(r, "A")), "job");
  assert_string_equal(json_string_value(json_object_get(r, "B")), "task");
  assert_string_equal(json_string_value(json_object_get(r, "C")), "task");
  assert_string_equal(json_string_value(json_object_get(r, "inh")), "yes");
  assert_int_equal(json_integer_value(json_object_get(r, "ntask")), 1); /* no duplicate */
  slot_clear(&s);
}

static void test_cwd(void **state) {
  struct fx *f = *state;
  char want[PATH_MAX];
  assert_non_null(realpath(tmp_dir(), want));
  struct task_launch l = launch_cmd("pwd -P");
  l.cwd = tmp_dir();
  struct slot s = {0};
  run(f, &l, &s);
  assert_result_string(&s, want, strlen(want));
  slot_clear(&s);
}

/* The engine may block SIGTERM and ignore SIGPIPE; tasks must see neither. */
static void test_signal_state(void **state) {
  struct fx *f = *state;
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
  sigaction(SIGPIPE, &ign, &old_pipe);

  struct slot k = {0}, st = {0};
  run_cmd(f, "kill -TERM $$", &k);
  char *argv[] = {"cat", "/proc/self/status", NULL};
  struct task_launch l = launch_argv(argv);
  run(f, &l, &st);

  sigaction(SIGPIPE, &old_pipe, NULL);
  sigprocmask(SIG_SETMASK, &old, NULL);

  assert_string_equal(err_field(&k, "kind"), "crashed");
  assert_int_equal(json_integer_value(json_object_get(k.out.error, "signal")), SIGTERM);
  assert_true(st.out.succeeded);
  const char *status = json_string_value(st.out.result);
  assert_non_null(strstr(status, "SigBlk:\t0000000000000000\n"));
  /* glibc's posix_spawn leaves its two internal signals (32 and 33, below
   * SIGRTMIN) ignored in the child, and no attribute can change that. */
  const char *ign_line = strstr(status, "SigIgn:\t");
  assert_non_null(ign_line);
  unsigned long long ignored = strtoull(ign_line + 8, NULL, 16);
  assert_int_equal(ignored & ~((1ull << (32 - 1)) | (1ull << (33 - 1))), 0);
  slot_clear(&k);
  slot_clear(&st);
}

/* ---- control ---- */

static void test_cancel(void **state) {
  struct fx *f = *state;
  struct slot s = {0};
  struct task_launch l = launch_cmd("trap 'exit 0' TERM; sleep 30 & wait");
  start(f, &l, &s);
  assert_int_equal(spe__cmd_running(f->ex), 1);
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_false(s.done);
  /* Even though the task exits 0 on SIGTERM, it is reported cancelled. */
  spe__cmd_signal(f->ex, s.run, SIGTERM, "cancelled");
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "cancelled");
  assert_string_equal(err_field(&s, "message"), "cancelled");
  assert_int_equal(spe__cmd_running(f->ex), 0);
  slot_clear(&s);
}

static void test_many_at_once(void **state) {
  struct fx *f = *state;
  enum { N = 50 };
  f->extra = calloc(N, sizeof *f->extra);
  f->nextra = N;
  char names[N][8];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "t%d", i);
    struct task_launch l = launch_cmd("echo \"$SPE_TASK\"");
    l.task_name = names[i];
    start(f, &l, &f->extra[i]);
  }
  assert_int_equal(spe__cmd_running(f->ex), N);
  int64_t deadline = spe__mono_ms() + 20000;
  while (f->ndone < N) {
    assert_true(spe__mono_ms() < deadline);
    assert_true(spe__loop_poll(&f->lp, 200) >= 0);
  }
  for (int i = 0; i < N; i++) assert_result_string(&f->extra[i], names[i], strlen(names[i]));
  assert_int_equal(spe__cmd_running(f->ex), 0);
}

/* Running out of descriptors at any step fails the attempt cleanly. */
static void test_out_of_descriptors(void **state) {
  struct fx *f = *state;
  struct rlimit old;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  int open_now = xu_count_fds();
  /* New descriptors take the lowest free numbers, which the limit caps. */
  int lowest_free = dup(0);
  assert_true(lowest_free >= 0);
  close(lowest_free);
  int failures = 0, successes = 0;
  for (int extra = 0; extra <= 8; extra++) {
    char *argv[] = {"true", NULL};
    struct task_launch l = launch_argv(argv);
    struct task_outcome failed = {0};
    struct slot s = {0};
    struct rlimit lim = {.rlim_cur = (rlim_t)(lowest_free + extra), .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    int rc = spe__cmd_start(f->ex, &l, &s, &s.run, &failed);
    setrlimit(RLIMIT_NOFILE, &old);
    if (rc != 0) {
      failures++;
      const char *msg = json_string_value(json_object_get(failed.error, "message"));
      if (strstr(msg, "Too many open files") == NULL) fail_msg("unexpected: %s", msg);
      json_decref(failed.error);
    } else {
      successes++;
      wait_for(f, &s);
      assert_result_string(&s, "", 0);
      slot_clear(&s);
    }
    assert_int_equal(xu_count_fds(), open_now);
  }
  assert_true(failures >= 3); /* at the memfd, the first pipe, the second pipe */
  assert_true(successes >= 1);
}

/* With the embedding program's stdin closed, new descriptors land on 0: the
 * child must still get its input there, not a clobbered descriptor. */
static void test_stdin_closed(void **state) {
  struct fx *f = *state;
  int saved = dup(0);
  assert_true(saved >= 0);
  close(0);
  struct task_launch l = launch_cmd("cat; echo x >&2");
  l.input = "[7]";
  l.input_len = 3;
  struct slot s = {0};
  run(f, &l, &s);
  dup2(saved, 0);
  close(saved);
  assert_true(s.out.succeeded);
  assert_int_equal(json_integer_value(json_array_get(s.out.result, 0)), 7);
  slot_clear(&s);
}

/* Freeing the executor kills and reaps what still runs (teardown checks). */
static void test_free_while_running(void **state) {
  struct fx *f = *state;
  f->extra = calloc(3, sizeof *f->extra);
  f->nextra = 3;
  for (int i = 0; i < 3; i++) {
    struct task_launch l = launch_cmd("sleep 30 & sleep 30");
    start(f, &l, &f->extra[i]);
  }
  assert_true(spe__loop_poll(&f->lp, 10) >= 0);
  assert_int_equal(spe__cmd_running(f->ex), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_json_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_string_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_stdout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
      cmocka_unit_test(test_utf8_replacement_rules),
      cmocka_unit_test_setup_teardown(test_argv_no_shell, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_program, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_cwd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exit_code, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stderr_tail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stderr_flood, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crashed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
      cmocka_unit_test_setup_teardown(test_background_child, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_stdout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stdin_is_input, setup, teardown),
      cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cwd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_signal_state, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_of_descriptors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stdin_closed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_while_running, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
