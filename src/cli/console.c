#include "cli/console.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t console_lock = PTHREAD_MUTEX_INITIALIZER;
static char status_line[256]; /* what is on screen now; "" for nothing */
static pthread_once_t tty_once = PTHREAD_ONCE_INIT;
static int tty;
static int out_fd = STDERR_FILENO; /* where lines go */
static int first_error;            /* errno of the first failed write, 0 */

static void detect_tty(void) { tty = isatty(out_fd); }

void console_set_fd(int fd) { out_fd = fd; }

int console_error(void) {
  pthread_mutex_lock(&console_lock);
  int e = first_error;
  pthread_mutex_unlock(&console_lock);
  return e;
}

int console_is_tty(void) {
  pthread_once(&tty_once, detect_tty);
  return tty;
}

/* Write all of buf, retrying short writes. Errors on stderr cannot be reported
 * anywhere; the first one is kept for console_error(). Under console_lock. */
static void write_all(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(out_fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (first_error == 0) first_error = errno;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

/* "\r" then "erase to end of line": the terminal's cursor is back at column 0
 * of an empty line. */
static const char erase[] = "\r\033[K";

void console_line(const char *line) {
  size_t len = strlen(line);
  int tty_now = console_is_tty();
  /* erase + line + "\n" + status, in one buffer and one write. */
  size_t cap = sizeof erase + len + 1 + sizeof status_line;
  char small[1024];
  char *buf = cap <= sizeof small ? small : malloc(cap);
  if (buf == NULL) return;

  pthread_mutex_lock(&console_lock);
  size_t n = 0;
  int has_status = tty_now && status_line[0] != '\0';
  if (has_status) {
    memcpy(buf, erase, sizeof erase - 1);
    n += sizeof erase - 1;
  }
  memcpy(buf + n, line, len);
  n += len;
  buf[n++] = '\n';
  if (has_status) {
    size_t sl = strlen(status_line);
    memcpy(buf + n, status_line, sl);
    n += sl;
  }
  write_all(buf, n);
  pthread_mutex_unlock(&console_lock);
  if (buf != small) free(buf);
}

void console_status(const char *status, int draw) {
  if (!console_is_tty()) return;
  if (status == NULL) status = "";
  char buf[sizeof erase + sizeof status_line];
  pthread_mutex_lock(&console_lock);
  size_t sl = strlen(status);
  if (sl >= sizeof status_line) sl = sizeof status_line - 1;
  memcpy(status_line, status, sl);
  status_line[sl] = '\0';
  if (draw) {
    size_t n = sizeof erase - 1;
    memcpy(buf, erase, n);
    memcpy(buf + n, status_line, sl);
    write_all(buf, n + sl);
  }
  pthread_mutex_unlock(&console_lock);
}
