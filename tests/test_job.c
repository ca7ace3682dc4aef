/*
 * The job model: every invalid job under tests/jobs/invalid/ is refused with the
 * message in its .expect file (one line; exact, or "contains: TEXT" for a
 * substring), every job under tests/jobs/valid/ is accepted, and the parsed
 * model of the valid ones is checked field by field.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job/job.h"
#include "job/job_internal.h"
#include "spe.h"

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = NULL;
  size_t size = 0, cap = 0, n;
  do {
    if (size + 4096 > cap) {
      cap = (cap + 4096) * 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    n = fread(buf + size, 1, cap - size - 1, f);
    size += n;
  } while (n > 0);
  fclose(f);
  buf[size] = '\0';
  *len = size;
  return buf;
}

static char *jobs_path(const char *sub, const char *file) {
  const char *root = getenv("SPE_SOURCE_DIR");
  assert_non_null(root);
  char *path = NULL;
  assert_true(asprintf(&path, "%s/tests/jobs/%s/%s", root, sub, file) > 0);
  return path;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The base names (without .json) of the folder's job files, sorted. */
static size_t list_jobs(const char *sub, char ***out) {
  char *dir_path = jobs_path(sub, "");
  DIR *dir = opendir(dir_path);
  assert_non_null(dir);
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    size_t len = strlen(de->d_name);
    if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
    names = realloc(names, (n + 1) * sizeof *names);
    names[n++] = strndup(de->d_name, len - 5);
  }
  closedir(dir);
  free(dir_path);
  qsort(names, n, sizeof *names, compare_names);
  *out = names;
  return n;
}

static struct job_def *parse_file(const char *sub, const char *name, int *rc, char **msg) {
  char *file = NULL;
  assert_true(asprintf(&file, "%s.json", name) > 0);
  char *path = jobs_path(sub, file);
  size_t len;
  char *text = read_file(path, &len);
  assert_non_null(text);
  struct job_def *def = (struct job_def *)0x1;
  *rc = spe__job_parse_text(text, len, &def, msg);
  free(text);
  free(path);
  free(file);
  return def;
}

/* Whether `msg` is what the one line of `expect` asks for. */
static int message_matches(const char *msg, char *expect) {
  expect[strcspn(expect, "\n")] = '\0';
  static const char contains[] = "contains: ";
  if (strncmp(expect, contains, strlen(contains)) == 0)
    return strstr(msg, expect + strlen(contains)) != NULL;
  return strcmp(msg, expect) == 0;
}

static void test_invalid_jobs(void **state) {
  char **names;
  size_t n = list_jobs("invalid", &names), failures = 0;
  /* The folder is there and holds every case of the issue (and more). */
  assert_true(n >= 70);
  for (size_t k = 0; k < n; k++) {
    char *file = NULL;
    assert_true(asprintf(&file, "%s.expect", names[k]) > 0);
    char *path = jobs_path("invalid", file);
    size_t len;
    char *expect = read_file(path, &len);
    if (expect == NULL) {
      print_error("%s: no %s\n", names[k], file);
      failures++;
    } else {
      int rc;
      char *msg = NULL;
      struct job_def *def = parse_file("invalid", names[k], &rc, &msg);
      if (rc != SPE_EJOB || def != NULL || msg == NULL) {
        print_error("%s: rc %d, def %p, msg %s\n", names[k], rc, (void *)def, msg ? msg : "(none)");
        failures++;
      } else if (!message_matches(msg, expect) || strchr(msg, '\n') != NULL) {
        print_error("%s:\n  got:  %s\n  want: %s\n", names[k], msg, expect);
        failures++;
      }
      spe__job_free(def == (struct job_def *)0x1 ? NULL : def);
      free(msg);
    }
    free(expect);
    free(path);
    free(file);
    free(names[k]);
  }
  free(names);
  assert_int_equal(failures, 0);
}

static void test_valid_jobs(void **state) {
  char **names;
  size_t n = list_jobs("valid", &names), failures = 0;
  assert_true(n >= 5);
  for (size_t k = 0; k < n; k++) {
    int rc;
    char *msg = (char *)"unchanged";
    struct job_def *def = parse_file("valid", names[k], &rc, &msg);
    if (rc != 0 || def == NULL || msg != NULL) {
      print_error("%s: rc %d: %s\n", names[k], rc, msg ? msg : "(no message)");
      failures++;
      if (rc != 0) free(msg);
    }
    spe__job_free(def);
    free(names[k]);
  }
  free(names);
  assert_int_equal(failures, 0);
}

static struct job_def *valid(const char *name) {
  int rc;
  char *msg = NULL;
  struct job_def *def = parse_file("valid", name, &rc, &msg);
  if (rc != 0) print_error("%s: %s\n", name, msg);
  assert_int_equal(rc, 0);
  return def;
}

static uint32_t task(const struct job_def *def, const char *name) {
  int64_t i = spe__job_find_task(def, name);
  assert_true(i >= 0);
  return (uint32_t)i;
}

/* The names of the successors (or predecessors) of a task, space-separated. */
static char *neighbours(const struct job_def *def, const uint32_t *off, const uint32_t *adj,
                        const char *name) {
  static char buf[256];
  uint32_t i = task(def, name);
  buf[0] = '\0';
  for (uint32_t e = off[i]; e < off[i + 1]; e++) {
    if (e > off[i]) strcat(buf, " ");
    strcat(buf, def->tasks[adj[e]].name);
  }
  return buf;
}

#define SUCC(def, name) neighbours(def, (def)->succ_off, (def)->succ, name)
#define PRED(def, name) neighbours(def, (def)->pred_off, (def)->pred, name)

static void test_spec_example(void **state) {
  struct job_def *def = valid("etl");
  assert_string_equal(def->name, "nightly-etl");
  assert_int_equal(def->ntasks, 4);
  assert_int_equal(def->nedges, 4);
  assert_string_equal(SUCC(def, "fetch"), "count check");
  assert_string_equal(SUCC(def, "report"), "");
  assert_string_equal(PRED(def, "report"), "count check");
  assert_string_equal(PRED(def, "count"), "fetch");
  assert_string_equal(PRED(def, "fetch"), "");
  /* `priority` first, then file order. */
  assert_int_equal(def->npriority, 1);
  assert_int_equal(def->priority[0], task(def, "check"));
  assert_int_equal(def->rank[task(def, "check")], 0);
  assert_int_equal(def->rank[task(def, "fetch")], 1);
  assert_int_equal(def->rank[task(def, "count")], 2);
  assert_int_equal(def->rank[task(def, "report")], 3);
  struct task_def *fetch = &def->tasks[task(def, "fetch")];
  assert_int_equal(fetch->body, TASK_CMD);
  assert_string_equal(fetch->cmd, "curl -fsS https://example.org/data.csv -o data.csv");
  assert_int_equal(fetch->timeout_ms, 30000);
  struct task_def *check = &def->tasks[task(def, "check")];
  assert_int_equal(check->body, TASK_ARGV);
  assert_null(check->cmd);
  assert_string_equal(check->argv[0], "./validate");
  assert_string_equal(check->argv[1], "data.csv");
  assert_null(check->argv[2]);
  assert_int_equal(check->timeout_ms, 0);
  assert_int_equal(check->retries, 0);
  assert_null(check->env);
  assert_null(check->arg);
  assert_null(def->env);
  assert_null(def->cwd);
  assert_int_equal(spe__job_find_task(def, "nope"), -1);
  spe__job_free(def);
}

static void test_every_field(void **state) {
  struct job_def *def = valid("every_field");
  assert_string_equal(def->description, "uses every field of SPEC section 1");
  assert_string_equal(def->cwd, "/tmp");
  assert_string_equal(def->env[0], "STAGE=test");
  assert_string_equal(def->env[1], "EMPTY=");
  assert_null(def->env[2]);
  /* Duplicates in `priority` and `enables` are kept once. */
  assert_int_equal(def->npriority, 2);
  assert_int_equal(def->rank[task(def, "c")], 0);
  assert_int_equal(def->rank[task(def, "b")], 1);
  assert_int_equal(def->rank[task(def, "a")], 2);
  assert_int_equal(def->rank[task(def, "d")], 3);
  assert_string_equal(SUCC(def, "a"), "b c");
  assert_string_equal(PRED(def, "d"), "c");
  assert_int_equal(def->nedges, 3);

  struct task_def *a = &def->tasks[task(def, "a")];
  assert_int_equal(a->body, TASK_ARGV);
  assert_string_equal(a->argv[1], "%s\n");
  assert_string_equal(a->argv[2], "");
  assert_null(a->argv[3]);
  assert_int_equal(a->timeout_ms, 0); /* "infinity" */
  assert_int_equal(a->retries, 3);
  assert_string_equal(a->env[0], "GREETING=hello = world");
  assert_string_equal(a->env[1], "X=1");
  assert_null(a->env[2]);
  assert_string_equal(a->cwd, "sub dir");
  assert_string_equal(a->description, "first");

  struct task_def *b = &def->tasks[task(def, "b")];
  assert_int_equal(b->body, TASK_EXEC);
  assert_string_equal(b->cmd, "double");
  assert_int_equal(b->timeout_ms, 1500);
  json_t *want = json_loads("{\"factor\": 2, \"list\": [1, null, \"x\"]}", 0, NULL);
  assert_true(json_equal(b->arg, want));
  json_decref(want);

  struct task_def *c = &def->tasks[task(def, "c")];
  assert_true(json_is_null(c->arg)); /* present and null, unlike an absent arg */
  assert_null(def->tasks[task(def, "d")].arg);
  spe__job_free(def);
}

static void test_canonical_form(void **state) {
  struct job_def *a = valid("canonical_a"), *b = valid("canonical_b"), *c = valid("etl");
  assert_string_equal(a->canonical, b->canonical);
  assert_int_equal(a->canonical_len, strlen(a->canonical));
  assert_string_equal(a->canonical,
                      "{\"name\":\"same\",\"priority\":[\"y\"],\"tasks\":[{\"cmd\":\"echo 1\","
                      "\"enables\":[\"y\"],\"name\":\"x\"},{\"argv\":[\"cat\"],\"env\":{\"A\":"
                      "\"1\",\"B\":\"2\"},\"name\":\"y\"}]}");
  assert_string_not_equal(a->canonical, c->canonical);
  /* The canonical text is itself a valid job with the same canonical text. */
  struct job_def *again;
  assert_int_equal(spe__job_parse_text(a->canonical, a->canonical_len, &again, NULL), 0);
  assert_string_equal(again->canonical, a->canonical);
  spe__job_free(again);
  spe__job_free(a);
  spe__job_free(b);
  spe__job_free(c);
}

/* parse_json borrows the document: the job keeps nothing of it. */
static void test_parse_json_copies(void **state) {
  json_t *doc = json_pack("{s:s, s:[{s:s, s:s, s:{s:i}}]}", "name", "j", "tasks", "name", "f",
                          "exec", "fn", "arg", "n", 1);
  struct job_def *def;
  char *msg = NULL;
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), 0);
  json_object_set_new(json_object_get(json_array_get(json_object_get(doc, "tasks"), 0), "arg"),
                      "n", json_integer(2));
  json_decref(doc);
  assert_int_equal(json_integer_value(json_object_get(def->tasks[0].arg, "n")), 1);
  spe__job_free(def);
}

/* A key with a NUL byte (possible through the jansson API) is not "name". */
static void test_key_with_nul(void **state) {
  json_t *doc = json_pack("{s:s, s:[{s:s, s:s}]}", "name", "j", "tasks", "name", "f", "cmd", "x");
  json_t *t = json_array_get(json_object_get(doc, "tasks"), 0);
  json_object_setn_new(t, "cmd\0x", 5, json_string("y"));
  struct job_def *def;
  char *msg = NULL;
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), SPE_EJOB);
  assert_string_equal(msg, "task \"f\": unknown field \"cmd\\u0000x\"");
  assert_null(def);
  free(msg);
  json_decref(doc);
}

/* Neighbouring tasks that call one function share one copy of its name;
 * others keep their own, and a name with a NUL is refused all the same. */
static void test_exec_names_shared(void **state) {
  static const char text[] =
      "{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"exec\":\"f\"},"
      "{\"name\":\"b\",\"exec\":\"f\"},{\"name\":\"c\",\"exec\":\"ff\"},"
      "{\"name\":\"d\",\"cmd\":\"ff\"},{\"name\":\"e\",\"exec\":\"ff\"}]}";
  struct job_def *def = NULL;
  assert_int_equal(spe__job_parse_text(text, strlen(text), &def, NULL), 0);
  assert_ptr_equal(def->tasks[0].cmd, def->tasks[1].cmd);
  assert_string_equal(def->tasks[1].cmd, "f");
  assert_string_equal(def->tasks[2].cmd, "ff");
  assert_ptr_not_equal(def->tasks[2].cmd, def->tasks[4].cmd); /* a cmd between */
  assert_string_equal(def->tasks[4].cmd, "ff");
  spe__job_free(def);

  json_t *doc = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s%}]}", "name", "j", "tasks", "name",
                          "a", "exec", "f", "name", "b", "exec", "f\0g", (size_t)3);
  char *msg = NULL;
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), SPE_EJOB);
  assert_string_equal(msg, "task \"b\": \"exec\" must not contain a NUL character");
  free(msg);
  json_decref(doc);
}

/* A wide job with many names: every name is found, every edge lands right. */
static void test_many_tasks(void **state) {
  enum { N = 5000 };
  json_t *tasks = json_array();
  for (int i = 0; i < N; i++) {
    char name[32], next[32];
    snprintf(name, sizeof name, "task-%d", i);
    snprintf(next, sizeof next, "task-%d", (i * 7 + 3) % N);
    json_t *t = json_pack("{s:s, s:s}", "name", name, "cmd", "true");
    if ((i * 7 + 3) % N > i) json_object_set_new(t, "enables", json_pack("[s]", next));
    json_array_append_new(tasks, t);
  }
  json_t *doc = json_pack("{s:s, s:o}", "name", "wide", "tasks", tasks);
  struct job_def *def;
  assert_int_equal(spe__job_parse_json(doc, &def, NULL), 0);
  assert_int_equal(def->ntasks, N);
  for (uint32_t i = 0; i < N; i++) {
    assert_int_equal(def->rank[i], i);
    for (uint32_t e = def->succ_off[i]; e < def->succ_off[i + 1]; e++)
      assert_int_equal(def->succ[e], (i * 7 + 3) % N);
  }
  assert_int_equal(spe__job_find_task(def, "task-4999"), 4999);
  spe__job_free(def);
  json_decref(doc);
}

/* Strings of every length up to past the string store's second block, so
 * that some string fills a block exactly, wherever it lands: an off-by-one in
 * the store (its terminating NUL one byte past the block) writes out of
 * bounds, which the sanitizer builds and valgrind report. The fuzzer found
 * such a planted bug; the data-driven jobs above never reached a boundary. */
static void test_strings_fill_blocks(void **state) {
  enum { LONGEST = 3200 };
  char *s = malloc(LONGEST + 1);
  assert_non_null(s);
  memset(s, 'x', LONGEST);
  for (int len = 1; len <= LONGEST; len++) {
    s[len] = '\0';
    json_t *doc = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:[s, s]}]}", "name", "j", "tasks",
                            "name", s, "cmd", "c", "name", "b", "argv", "p", s);
    struct job_def *def;
    /* Names this long are past the name limit: this is about the store. */
    assert_int_equal(spe__job_parse_json_limits(doc, &spe__job_limits_none, &def, NULL), 0);
    assert_int_equal(strlen(def->tasks[0].name), len);
    assert_int_equal(strlen(def->tasks[1].argv[1]), len);
    assert_string_equal(def->tasks[0].cmd, "c");
    spe__job_free(def);
    json_decref(doc);
    s[len] = 'x';
  }
  free(s);
}

/* A job_def built by hand (no string store) is freed string by string. */
static void test_free_hand_built(void **state) {
  struct job_def *def = calloc(1, sizeof *def);
  def->name = strdup("hand");
  def->ntasks = 1;
  def->tasks = calloc(1, sizeof *def->tasks);
  def->tasks[0].name = strdup("t");
  def->tasks[0].argv = calloc(2, sizeof(char *));
  def->tasks[0].argv[0] = strdup("true");
  def->tasks[0].arg = json_integer(1);
  spe__job_free(def);
  spe__job_free(NULL);
}

static void test_validate_levels(void **state) {
  const char *text =
      "{\"name\": \"v\", \"tasks\": ["
      "{\"name\": \"d\", \"cmd\": \"x\"},"
      "{\"name\": \"c\", \"cmd\": \"x\", \"enables\": [\"d\"]},"
      "{\"name\": \"b\", \"cmd\": \"x\", \"enables\": [\"d\"]},"
      "{\"name\": \"a\", \"cmd\": \"x\", \"enables\": [\"b\", \"c\"]},"
      "{\"name\": \"e\", \"cmd\": \"x\"}]}";
  json_t *levels = NULL;
  char *msg = NULL;
  assert_int_equal(spe_validate_text(text, strlen(text), &levels, &msg), 0);
  assert_null(msg);
  char *got = json_dumps(levels, JSON_COMPACT);
  assert_string_equal(got, "[[\"a\",\"e\"],[\"c\",\"b\"],[\"d\"]]");
  free(got);
  json_decref(levels);

  const char *bad = "{\"name\": \"v\", \"tasks\": [{\"name\": \"a\", \"cmd\": \"x\", \"enables\": [\"a\"]}]}";
  assert_int_equal(spe_validate_text(bad, strlen(bad), &levels, &msg), SPE_EJOB);
  assert_null(levels);
  assert_string_equal(msg, "dependency cycle: a -> a");
  free(msg);
}

static uint32_t rnd(uint64_t *s) {
  *s = *s * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(*s >> 33);
}

/* Random text from pieces that exercise every escaping rule: plain ASCII,
 * quotes, backslashes, every control character, DEL, NUL, multi-byte UTF-8. */
static json_t *random_string(uint64_t *seed, int as_key, json_t *obj, json_t *value) {
  static const char *const pieces[] = {"a", "b", "ab", "Z", "/", " ", "\"", "\\", "\x7f",
                                       "\xc3\xa9", "\xe6\xbc\xa2", "\xf0\x9f\x98\x80", "~"};
  char buf[64];
  size_t len = 0, n = rnd(seed) % 6;
  for (size_t k = 0; k < n; k++) {
    uint32_t r = rnd(seed) % 16;
    if (r < 13) {
      size_t plen = strlen(pieces[r]);
      memcpy(buf + len, pieces[r], plen);
      len += plen;
    } else {
      buf[len++] = (char)(rnd(seed) % 0x20); /* a control character, NUL included */
    }
  }
  if (as_key) {
    json_object_setn_new_nocheck(obj, buf, len, value);
    return NULL;
  }
  return json_stringn(buf, len);
}

static json_t *random_json(uint64_t *seed, int depth) {
  static const double reals[] = {0.1, -2.5, 1.0, 1e300, 123456.789, -0.0, 5e-324};
  uint32_t kind = rnd(seed) % (depth > 3 ? 6 : 8);
  switch (kind) {
    case 0: return json_null();
    case 1: return json_boolean(rnd(seed) % 2);
    case 2: return json_integer((json_int_t)rnd(seed) * (rnd(seed) % 2 ? -1 : 1) *
                                (json_int_t)(rnd(seed) % 2 ? 1 : 4000000000));
    case 3: return json_real(reals[rnd(seed) % 7]);
    case 4:
    case 5: return random_string(seed, 0, NULL, NULL);
    case 6: {
      json_t *a = json_array();
      for (uint32_t k = rnd(seed) % 5; k > 0; k--) json_array_append_new(a, random_json(seed, depth + 1));
      return a;
    }
    default: {
      json_t *o = json_object();
      for (uint32_t k = rnd(seed) % 20; k > 0; k--) random_string(seed, 1, o, random_json(seed, depth + 1));
      return o;
    }
  }
}

/* The canonical writer gives json_dumps's text, byte for byte. */
static void test_canonical_matches_jansson(void **state) {
  uint64_t seed = 1;
  for (int round = 0; round < 2000; round++) {
    json_t *doc = random_json(&seed, 0);
    char *want = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(spe__job_canonical_text(doc, 0, &got, &len, NULL), 0);
    assert_non_null(want);
    if (strlen(want) != len || memcmp(got, want, len) != 0)
      print_error("round %d:\n  json_dumps: %s\n  canonical:  %s\n", round, want, got);
    assert_int_equal(strlen(want), len);
    assert_memory_equal(got, want, len);
    free(got);
    free(want);
    json_decref(doc);
  }
}

/* What only the API can build: a string that is not UTF-8, a document nested
 * deeper than any parser allows. */
static void test_canonical_refusals(void **state) {
  json_t *doc = json_pack("{s:s, s:[{s:s, s:s}]}", "name", "j", "tasks", "name", "f", "exec", "fn");
  json_t *t = json_array_get(json_object_get(doc, "tasks"), 0);
  json_object_set_new(t, "description", json_stringn_nocheck("\xff\xfe", 2));
  struct job_def *def;
  char *msg = NULL;
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), SPE_EJOB);
  assert_string_equal(msg, "the job description holds a string that is not valid UTF-8");
  free(msg);

  json_t *deep = json_array(), *at = deep;
  for (int k = 0; k < 3000; k++) {
    json_t *inner = json_array();
    json_array_append_new(at, inner);
    at = inner;
  }
  json_object_set_new(t, "description", json_string("fine"));
  json_object_set_new(t, "arg", deep);
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), SPE_EJOB);
  assert_string_equal(msg, "the job description is nested too deeply");
  free(msg);
  json_decref(doc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_invalid_jobs),     cmocka_unit_test(test_valid_jobs),
      cmocka_unit_test(test_spec_example),     cmocka_unit_test(test_every_field),
      cmocka_unit_test(test_canonical_form),   cmocka_unit_test(test_parse_json_copies),
      cmocka_unit_test(test_key_with_nul),     cmocka_unit_test(test_many_tasks),
      cmocka_unit_test(test_exec_names_shared),
      cmocka_unit_test(test_strings_fill_blocks),
      cmocka_unit_test(test_free_hand_built),  cmocka_unit_test(test_validate_levels),
      cmocka_unit_test(test_canonical_matches_jansson),
      cmocka_unit_test(test_canonical_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
