#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "support/exec_util.h"

#include "base/clock.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int xu_count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

void xu_await_done(struct loop *lp, const int *done, int timeout_ms) {
  int64_t deadline = spe__mono_ms() + timeout_ms;
  while (!*done) {
    assert_true(spe__mono_ms() < deadline);
    assert_true(spe__loop_poll(lp, 200) >= 0);
  }
}

json_t *xu_empty_input(void) {
  static json_t *empty;
  if (empty == NULL) empty = json_object();
  return empty;
}

int xu_under_valgrind(void) {
  const char *p = getenv("LD_PRELOAD");
  return p != NULL && strstr(p, "vgpreload") != NULL;
}
