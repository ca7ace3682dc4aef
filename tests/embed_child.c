/*
 * A small embedding program for tests/test_embed_recovery.c (not a test of its
 * own): it does what a program that runs its C functions through libspe does —
 * register the functions, open a SQLite store (recovering it), submit its job
 * with SPE_SUBMIT_RESUME so that a rerun resumes the same job, start it, wait,
 * print the job — and the test kills it with SIGKILL in the middle.
 *
 *   embed_child DB LOG MARKER IDFILE            run (or resume) the job
 *   embed_child DB LOG MARKER IDFILE --without F  the same program after an
 *       upgrade that dropped function F: it registers every function but F and
 *       lets the recovered job (its id read from IDFILE) go on by itself
 *
 * The job, six tasks in a diamond and then a chain:
 *
 *     a ─┬─ b ─┬─ gate ── e ── f
 *        └─ c ─┘
 *
 * Every function appends "TASK ATTEMPT PID\n" to LOG when it starts (one
 * write, O_APPEND) and returns its `arg` plus the numbers in its input. `gate`
 * then waits until the file MARKER exists, so the test knows where the job is:
 * when LOG has four lines, a, b and c are done (and committed, since gate
 * started after them) and gate is running.
 *
 * Prints the job (SPEC §3) as one line of JSON on stdout. Exit status: 0 the job
 * succeeded, 1 it failed, 3 an API call failed (message on stderr).
 */
#include "spe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char JOB[] =
    "{\"name\":\"embedded\",\"tasks\":["
    "{\"name\":\"a\",\"exec\":\"step\",\"arg\":1,\"enables\":[\"b\",\"c\"]},"
    "{\"name\":\"b\",\"exec\":\"step\",\"arg\":10,\"enables\":[\"gate\"]},"
    "{\"name\":\"c\",\"exec\":\"step\",\"arg\":100,\"enables\":[\"gate\"]},"
    "{\"name\":\"gate\",\"exec\":\"gate\",\"arg\":0,\"enables\":[\"e\"]},"
    "{\"name\":\"e\",\"exec\":\"step\",\"arg\":0,\"enables\":[\"f\"]},"
    "{\"name\":\"f\",\"exec\":\"finish\",\"arg\":0}]}";

struct paths {
  const char *log, *marker;
};

static void log_start(const struct paths *p, spe_call *call) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s %u %d\n", spe_call_task(call), spe_call_attempt(call),
                   (int)getpid());
  int fd = open(p->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write(fd, line, (size_t)n) != n) {
    }
    close(fd);
  }
}

static json_t *sum(spe_call *call) {
  json_int_t n = json_integer_value(spe_call_arg(call));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)spe_call_input(call), k, v) n += json_integer_value(v);
  return json_integer(n);
}

static json_t *step(void *ctx, spe_call *call) {
  log_start(ctx, call);
  return sum(call);
}

static json_t *gate(void *ctx, spe_call *call) {
  const struct paths *p = ctx;
  log_start(p, call);
  struct timespec nap = {0, 2 * 1000 * 1000};
  while (access(p->marker, F_OK) != 0) nanosleep(&nap, NULL);
  return sum(call);
}

static int fail(const char *what, int rc, char *msg) {
  fprintf(stderr, "embed_child: %s: %s: %s\n", what, spe_err_name(rc), msg ? msg : "");
  free(msg);
  return 3;
}

static int read_id(const char *path, char id[SPE_ID_SIZE]) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return -1;
  size_t n = fread(id, 1, SPE_ID_SIZE - 1, f);
  fclose(f);
  id[n] = '\0';
  return n == SPE_ID_SIZE - 1 ? 0 : -1;
}

static int write_id(const char *path, const char *id) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "we");
  if (f == NULL) return -1;
  fputs(id, f);
  if (fclose(f) != 0) return -1;
  return rename(tmp, path);
}

int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 7 && strcmp(argv[5], "--without") == 0)) {
    fprintf(stderr, "usage: embed_child DB LOG MARKER IDFILE [--without FUNCTION]\n");
    return 2;
  }
  /* A process group of its own, so that the test's SIGKILL of the group takes
   * the fork server with it, as a crash of the whole program would. */
  setpgid(0, 0);
  static struct paths paths;
  paths.log = argv[2];
  paths.marker = argv[3];
  const char *without = argc == 7 ? argv[6] : NULL;

  spe_registry *reg = NULL;
  char *msg = NULL;
  int rc = spe_registry_new(&reg);
  if (rc != 0) return fail("spe_registry_new", rc, NULL);
  static const struct {
    const char *name;
    spe_function fn;
  } fns[] = {{"step", step}, {"gate", gate}, {"finish", step}};
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
    if (without && strcmp(without, fns[i].name) == 0) continue;
    rc = spe_register(reg, fns[i].name, fns[i].fn, &paths, &msg);
    if (rc != 0) return fail("spe_register", rc, msg);
  }

  char url[4096];
  snprintf(url, sizeof url, "sqlite:%s", argv[1]);
  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  o.store_url = url;
  o.functions = reg;
  o.isolation = SPE_ISOLATION_PROCESS;
  /* Resuming by name needs the recovered job held until it is claimed; the
   * program without a function claims nothing and lets it go on by itself. */
  o.hold_recovered = without == NULL;
  spe_executor *ex = NULL;
  rc = spe_open(&ex, &o, &msg);
  spe_registry_free(reg);
  if (rc != 0) return fail("spe_open", rc, msg);

  char id[SPE_ID_SIZE];
  if (without == NULL) {
    int resumed = 0;
    rc = spe_submit_ex(ex, JOB, strlen(JOB), SPE_SUBMIT_RESUME, id, &resumed, &msg);
    if (rc != 0) return fail("spe_submit_ex", rc, msg);
    if (write_id(argv[4], id) != 0) return fail("writing the id file", SPE_ESYS, NULL);
    rc = spe_start(ex, id, &msg);
    if (rc != 0 && !(resumed && rc == SPE_ESTATE)) return fail("spe_start", rc, msg);
    free(msg);
    msg = NULL;
  } else if (read_id(argv[4], id) != 0) {
    return fail("reading the id file", SPE_ESYS, NULL);
  }

  rc = spe_wait(ex, id, -1);
  if (rc != 0) return fail("spe_wait", rc, NULL);
  json_t *job = NULL;
  rc = spe_job_get(ex, id, &job, &msg);
  if (rc != 0) return fail("spe_job_get", rc, msg);
  char *text = json_dumps(job, JSON_COMPACT);
  printf("%s\n", text);
  fflush(stdout);
  int ok = strcmp(json_string_value(json_object_get(job, "status")), "succeeded") == 0;
  free(text);
  json_decref(job);
  spe_close(ex);
  return ok ? 0 : 1;
}
