/* Running the `spe` program from tests: paths, spawning, files, processes. */
#include "support/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

int64_t cli_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cli_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *env_or_fail(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0') fail_msg("$%s is not set (run the tests through ctest)", name);
  return v;
}

const char *cli_bin(void) { return env_or_fail("SPE_BIN"); }

char *cli_path_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

char *cli_source_path(const char *rel) {
  return cli_path_join(env_or_fail("SPE_SOURCE_DIR"), rel);
}

char *cli_job_path(const char *name) {
  char *dir = cli_source_path("tests/jobs/run");
  char *p = cli_path_join(dir, name);
  free(dir);
  return p;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

void cli_remove_dir(const char *dir) {
  nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  struct stat st;
  if (lstat(dir, &st) == 0) fail_msg("cannot remove %s", dir);
}

char *cli_fresh_dir(const char *name) {
  const char *tmp = env_or_fail("SPE_TEST_TMP");
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", tmp, strerror(errno));
  char *dir = cli_path_join(tmp, name);
  cli_remove_dir(dir);
  if (mkdir(dir, 0755) != 0) fail_msg("mkdir %s: %s", dir, strerror(errno));
  return dir;
}

char *cli_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (cap - n < 2) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  fclose(f);
  buf[n] = '\0';
  if (len != NULL) *len = n;
  return buf;
}

void cli_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "we");
  if (f == NULL) fail_msg("cannot write %s: %s", path, strerror(errno));
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* argv for posix_spawn: the program, then args. */
static char **make_argv(const char *const *args) {
  size_t n = 0;
  while (args[n] != NULL) n++;
  char **argv = calloc(n + 2, sizeof *argv);
  assert_non_null(argv);
  argv[0] = (char *)cli_bin();
  for (size_t i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
  return argv;
}

/* environ plus `extra` (which come last and win, as with setenv). */
static char **make_env(const char *const *extra) {
  size_t n = 0, m = 0;
  while (environ[n] != NULL) n++;
  while (extra != NULL && extra[m] != NULL) m++;
  char **env = calloc(n + m + 1, sizeof *env);
  assert_non_null(env);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int overridden = 0;
    for (size_t j = 0; j < m; j++) {
      const char *eq = strchr(extra[j], '=');
      size_t kl = eq != NULL ? (size_t)(eq - extra[j]) : strlen(extra[j]);
      if (strncmp(environ[i], extra[j], kl) == 0 && environ[i][kl] == '=') overridden = 1;
    }
    if (!overridden) env[k++] = environ[i];
  }
  for (size_t j = 0; j < m; j++) env[k++] = (char *)extra[j];
  return env;
}

static int64_t spawn_started_mono, spawn_started_wall;

pid_t cli_spawn(const char *dir, const char *const *args, const char *const *env,
                const char *stdin_path, int stderr_fd) {
  char *out = cli_path_join(dir, ".stdout");
  char *err = cli_path_join(dir, ".stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_path != NULL ? stdin_path : "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (stderr_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, stderr_fd, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addchdir_np(&fa, dir);
  char **argv = make_argv(args);
  char **envp = make_env(env);
  pid_t pid;
  spawn_started_mono = cli_mono_ms();
  spawn_started_wall = cli_wall_ms();
  int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  free(argv);
  free(envp);
  free(out);
  free(err);
  if (rc != 0) fail_msg("cannot start %s: %s", cli_bin(), strerror(rc));
  return pid;
}

void cli_finish(struct cli_result *r, pid_t pid, const char *dir) {
  memset(r, 0, sizeof *r);
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
  r->end_ms = cli_wall_ms();
  r->start_ms = spawn_started_wall;
  r->wall_ms = cli_mono_ms() - spawn_started_mono;
  r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  char *out = cli_path_join(dir, ".stdout");
  char *err = cli_path_join(dir, ".stderr");
  r->out = cli_read_file(out, &r->out_len);
  r->err = cli_read_file(err, &r->err_len);
  if (r->out == NULL) r->out = strdup("");
  if (r->err == NULL) r->err = strdup("");
  free(out);
  free(err);
}

void cli_run_env(struct cli_result *r, const char *dir, const char *const *args,
                 const char *const *env) {
  pid_t pid = cli_spawn(dir, args, env, NULL, -1);
  cli_finish(r, pid, dir);
}

void cli_run(struct cli_result *r, const char *dir, const char *const *args) {
  cli_run_env(r, dir, args, NULL);
}

void cli_result_free(struct cli_result *r) {
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof *r);
}

int cli_process_gone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  /* It exists: gone all the same if it is only a zombie. */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  char *stat = cli_read_file(path, NULL);
  if (stat == NULL) return 1;
  const char *close_paren = strrchr(stat, ')');
  int zombie = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
  free(stat);
  return zombie;
}

void cli_assert_dies(pid_t pid, int timeout_ms) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0 && errno == ENOSYS) { /* no pidfd (valgrind knows none): look every 1 ms */
    /* Against the clock, not by counting sleeps: a sleep cut short by a
     * signal would shorten the wait. */
    int64_t deadline = cli_mono_ms() + timeout_ms;
    while (!cli_process_gone(pid) && cli_mono_ms() < deadline) usleep(1000);
    if (!cli_process_gone(pid)) fail_msg("process %d is still there", (int)pid);
    return;
  }
  if (fd < 0) {
    assert_int_equal(errno, ESRCH);
    return;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, timeout_ms);
  close(fd);
  if (n != 1) fail_msg("process %d is still there", (int)pid);
}

int cli_poll_until(int (*pred)(void *ctx), void *ctx, int timeout_ms) {
  int64_t deadline = cli_mono_ms() + timeout_ms;
  for (;;) {
    if (pred(ctx)) return 1;
    if (cli_mono_ms() >= deadline) return 0;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}
