/*
 * embed.c — a complete program on libspe: C functions as tasks, a durable
 * SQLite store, events, the result.
 *
 *   cc -o embed embed.c $(pkg-config --cflags --libs spe)
 *   ./embed [STATE.db]
 *
 * It registers three C functions, opens an executor on a SQLite store (the
 * path given, else one in a fresh temporary folder that it removes at the
 * end), submits this job, prints the job's events as they come, waits for the
 * job and prints its result (SPEC §3):
 *
 *        base (exec "answer": 17)
 *        /          \
 *   double           \        (exec "scale" with arg {"factor": 2}: 34)
 *        \            \
 *         \  count     \      (cmd "echo 4": 4)
 *          \   |       /
 *            total            (exec "sum" of every upstream result: 55)
 *
 * The exit status is 0 when the job succeeded, 1 when it failed, 2 when the
 * library refused something (the message says what).
 */
#include <spe.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- The C functions ------------------------------------------------------ */

/* Under the default process isolation, each function runs in a worker process
 * forked from the library's fork server: it may crash or hang without taking
 * this program down, and it sees its own copy of `ctx`. It returns its result
 * as a new JSON reference (the library takes it), or reports a failure with
 * spe_call_fail(). */

/* Returns a number: the integer `ctx` points to. */
static json_t *answer(void *ctx, spe_call *call) {
  (void)call;
  const int *value = ctx;
  return json_integer(*value);
}

/* Sums the results of every task upstream of this one. The input is an object
 * {"task name": result, ...} with every ancestor, not only direct ones. */
static json_t *sum(void *ctx, spe_call *call) {
  (void)ctx;
  const char *name;
  json_t *value;
  json_int_t total = 0;
  /* The input is borrowed and read-only: never modify it. */
  json_object_foreach((json_t *)spe_call_input(call), name, value) {
    if (!json_is_integer(value))
      return spe_call_fail(call, "input \"%s\" is not an integer", name);
    total += json_integer_value(value);
  }
  return json_integer(total);
}

/* Multiplies the sum of its input by the task's static argument:
 * "arg": {"factor": N}. */
static json_t *scale(void *ctx, spe_call *call) {
  (void)ctx;
  json_t *factor = json_object_get(spe_call_arg(call), "factor");
  if (!json_is_integer(factor)) return spe_call_fail(call, "arg.factor must be an integer");
  json_int_t total = 0;
  const char *name;
  json_t *value;
  json_object_foreach((json_t *)spe_call_input(call), name, value) {
    total += json_integer_value(value);
  }
  return json_integer(total * json_integer_value(factor));
}

/* ---- The job ----------------------------------------------------------------- */

/* The job as JSON text (SPEC §1): `exec` names a registered function, `arg`
 * is handed to it as is, `enables` lists the tasks that run after this one and
 * receive its result. A `cmd` task runs a shell command (its stdout, parsed as
 * JSON, is its result): both kinds mix freely. */
static const char JOB[] =
    "{\"name\": \"embed-example\",\n"
    " \"tasks\": [\n"
    "  {\"name\": \"base\",   \"exec\": \"answer\", \"enables\": [\"double\", \"total\"]},\n"
    "  {\"name\": \"double\", \"exec\": \"scale\", \"arg\": {\"factor\": 2},\n"
    "   \"enables\": [\"total\"]},\n"
    "  {\"name\": \"count\",  \"cmd\": \"echo 4\", \"enables\": [\"total\"]},\n"
    "  {\"name\": \"total\",  \"exec\": \"sum\", \"timeout\": 10000}\n"
    " ]}\n";

/* ---- Events ------------------------------------------------------------------- */

/* What the event callback shares with main(): the callback runs on the
 * library's event delivery thread, so the flag is guarded by a mutex. */
struct watch {
  pthread_mutex_t lock;
  pthread_cond_t finished_cond;
  int finished; /* job_finished was printed */
};

/* Prints one event (SPEC §4) per line. `event` is borrowed for the call. */
static void print_event(void *ctx, const json_t *event) {
  struct watch *w = ctx;
  const char *type = json_string_value(json_object_get(event, "type"));
  const char *task = json_string_value(json_object_get(event, "task"));
  const char *status = json_string_value(json_object_get(event, "status"));
  printf("event %3lld  %-16s %-7s %s\n",
         (long long)json_integer_value(json_object_get(event, "seq")), type,
         task ? task : "", status ? status : "");
  fflush(stdout);
  if (strcmp(type, "job_finished") == 0) {
    pthread_mutex_lock(&w->lock);
    w->finished = 1;
    pthread_cond_signal(&w->finished_cond);
    pthread_mutex_unlock(&w->lock);
  }
}

/* The library never prints: it hands its log lines to this callback. */
static void print_log(void *ctx, int level, const char *msg) {
  (void)ctx;
  static const char *const names[] = {"error", "warn", "info", "debug"};
  fprintf(stderr, "spe %s: %s\n", names[level], msg);
}

/* ---- Helpers ------------------------------------------------------------------ */

/* Reports a failed call: its message if it gave one, else the code's text. */
static int failed(const char *what, int rc, char *msg) {
  fprintf(stderr, "embed: %s: %s (%s)\n", what, msg ? msg : spe_strerror(rc), spe_err_name(rc));
  free(msg);
  return 2;
}

/* Removes the temporary state folder: the database and the files beside it
 * (write-ahead log, lock file). */
static void remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* ---- The program ------------------------------------------------------------- */

static int run(const char *state_path) {
  char *msg = NULL;
  int rc;

  /* 1. The functions that `exec` tasks may name. spe_open() copies the
   * registry, so it can be freed as soon as the executor is open. */
  static int seventeen = 17;
  spe_registry *reg = NULL;
  if ((rc = spe_registry_new(&reg)) != 0) return failed("spe_registry_new", rc, NULL);
  if ((rc = spe_register(reg, "answer", answer, &seventeen, &msg)) != 0 ||
      (rc = spe_register(reg, "sum", sum, NULL, &msg)) != 0 ||
      (rc = spe_register(reg, "scale", scale, NULL, &msg)) != 0) {
    spe_registry_free(reg);
    return failed("spe_register", rc, msg);
  }

  /* 2. The executor. Open it early, before this program starts threads of its
   * own: under process isolation, spe_open() forks the fork server. Opening
   * recovers the store: jobs left unfinished by an earlier run go on. */
  char url[4200];
  snprintf(url, sizeof url, "sqlite:%s", state_path);
  spe_options opt;
  spe_options_init(&opt);
  opt.workers = 2;
  opt.store_url = url;
  opt.functions = reg;
  opt.log = print_log;
  opt.log_level = SPE_LOG_WARN;
  spe_executor *ex = NULL;
  rc = spe_open(&ex, &opt, &msg);
  spe_registry_free(reg);
  if (rc != 0) return failed("spe_open", rc, msg);

  /* 3. Submit the job: it is validated (an invalid one is refused with a
   * message naming the task and field) and stored before this returns. */
  char id[SPE_ID_SIZE];
  rc = spe_submit_text(ex, JOB, strlen(JOB), id, &msg);
  if (rc != 0) {
    spe_close(ex);
    return failed("spe_submit_text", rc, msg);
  }
  printf("submitted job %s\n", id);

  /* 4. Follow its events, then start it. */
  struct watch w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  spe_subscription *sub = NULL;
  if ((rc = spe_subscribe(ex, id, print_event, &w, &sub)) != 0) {
    spe_close(ex);
    return failed("spe_subscribe", rc, NULL);
  }
  if ((rc = spe_start(ex, id, &msg)) != 0) {
    spe_close(ex); /* also releases the subscription */
    return failed("spe_start", rc, msg);
  }

  /* 5. Wait for the end of the job (at most a minute), then for its last
   * event, which is delivered on the library's thread a moment later. */
  rc = spe_wait(ex, id, 60000);
  if (rc != 0) {
    spe_close(ex);
    return failed("spe_wait", rc, NULL);
  }
  pthread_mutex_lock(&w.lock);
  while (!w.finished) pthread_cond_wait(&w.finished_cond, &w.lock);
  pthread_mutex_unlock(&w.lock);
  spe_unsubscribe(sub);

  /* 6. The job's result: every task's status, result or error. */
  json_t *job = NULL;
  rc = spe_job_get(ex, id, &job, &msg);
  if (rc != 0) {
    spe_close(ex);
    return failed("spe_job_get", rc, msg);
  }
  char *text = json_dumps(job, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  printf("%s\n", text ? text : "(out of memory)");
  free(text);
  int succeeded = strcmp(json_string_value(json_object_get(job, "status")), "succeeded") == 0;
  json_decref(job);

  /* 7. Close: running work stops, what is unfinished stays in the store. */
  spe_close(ex);
  return succeeded ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 2) {
    fprintf(stderr, "usage: %s [STATE.db]\n", argv[0]);
    return 2;
  }
  if (argc == 2) return run(argv[1]);

  char dir[] = "/tmp/spe-embed-XXXXXX";
  if (mkdtemp(dir) == NULL) {
    perror("embed: mkdtemp");
    return 2;
  }
  char path[sizeof dir + 16];
  snprintf(path, sizeof path, "%s/state.db", dir);
  int status = run(path);
  remove_folder(dir);
  return status;
}
