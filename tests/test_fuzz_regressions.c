/*
 * The fuzz targets' properties without libFuzzer: every file of
 * fuzz/corpus/<target>/ (the seeds) and fuzz/regressions/<target>/ (inputs a
 * fuzzer once found to break something) goes through the target's check
 * function (fuzz/fuzz_<target>.c, built into this program without its entry
 * point). So an input that once crashed, leaked or broke a property is
 * checked by every run of the suite, under the sanitizers and valgrind too.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fuzz.h"

typedef void (*check_fn)(const uint8_t *data, size_t size);

/* The input being checked, for the failure message. */
static char current[1024];

static void fail_here(const char *msg) { fail_msg("%s: %s", current, msg); }

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  struct stat st;
  assert_int_equal(fstat(fileno(f), &st), 0);
  /* Exactly the file's bytes, no terminator, as libFuzzer passes them: under
   * AddressSanitizer a read one byte past the end is caught here too. */
  uint8_t *buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
  assert_non_null(buf);
  *len = fread(buf, 1, (size_t)st.st_size, f);
  assert_int_equal(*len, (size_t)st.st_size);
  fclose(f);
  return buf;
}

/* Check every file of fuzz/<kind>/<target>/; returns how many there were
 * (0 when the folder does not exist). */
static size_t check_folder(const char *kind, const char *target, check_fn check) {
  const char *root = getenv("SPE_SOURCE_DIR");
  assert_non_null(root);
  char dir_path[512];
  snprintf(dir_path, sizeof dir_path, "%s/fuzz/%s/%s", root, kind, target);
  DIR *dir = opendir(dir_path);
  if (dir == NULL) return 0;
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    if (de->d_name[0] == '.') continue;
    names = realloc(names, (n + 1) * sizeof *names);
    assert_non_null(names);
    names[n++] = strdup(de->d_name);
  }
  closedir(dir);
  qsort(names, n, sizeof *names, compare_names);
  for (size_t i = 0; i < n; i++) {
    snprintf(current, sizeof current, "%s/%s", dir_path, names[i]);
    size_t len;
    uint8_t *data = read_file(current, &len);
    check(data, len);
    free(data);
    free(names[i]);
  }
  free(names);
  return n;
}

static void check_target(const char *target, check_fn check) {
  spe__fuzz_fail_handler = fail_here;
  size_t seeds = check_folder("corpus", target, check);
  check_folder("regressions", target, check);
  /* The seeds are what a CI run starts from: they must be there. */
  assert_true(seeds >= 10);
}

static void test_job(void **state) { check_target("job", spe__fuzz_job_check); }
static void test_plan(void **state) { check_target("plan", spe__fuzz_plan_check); }
static void test_recovery(void **state) { check_target("recovery", spe__fuzz_recovery_check); }
static void test_http(void **state) { check_target("http", spe__fuzz_http_check); }

int main(void) {
  /* The recovery target's scratch store and the http target's socket go
   * into the test folder. */
  const char *tmp = getenv("SPE_TEST_TMP");
  if (tmp != NULL) {
    mkdir(tmp, 0777);
    setenv("SPE_FUZZ_TMP", tmp, 1);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_job),
      cmocka_unit_test(test_plan),
      cmocka_unit_test(test_recovery),
      cmocka_unit_test(test_http),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
