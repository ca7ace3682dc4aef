/*
 * Validation messages. Each is one line that names the task and the field, so
 * names and keys are JSON-escaped (a name may hold a quote or a newline) and cut
 * to a readable length.
 */
#include "job/job_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/msg.h"
#include "spe.h"

enum { SHOWN_BYTES = 200 };

static char *escape_into(char *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t shown = len > SHOWN_BYTES ? SHOWN_BYTES : len;
  for (size_t k = 0; k < shown; k++) {
    unsigned char c = (unsigned char)s[k];
    if (c == '"' || c == '\\') {
      *out++ = '\\';
      *out++ = (char)c;
    } else if (c == '\n') {
      *out++ = '\\';
      *out++ = 'n';
    } else if (c == '\t') {
      *out++ = '\\';
      *out++ = 't';
    } else if (c < 0x20 || c == 0x7f) {
      out += sprintf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
    } else {
      *out++ = (char)c;
    }
  }
  if (shown < len) out += sprintf(out, "...");
  *out = '\0';
  return out;
}

const char *spe__job_escape(struct job_quoted *buf, const char *s, size_t len) {
  escape_into(buf->s, s, len);
  return buf->s;
}

const char *spe__job_quote(struct job_quoted *buf, const char *s, size_t len) {
  buf->s[0] = '"';
  char *end = escape_into(buf->s + 1, s, len);
  end[0] = '"';
  end[1] = '\0';
  return buf->s;
}

static int set_error(struct job_parse *p, int64_t task, int rc, const char *fmt, va_list ap) {
  if (p->msg == NULL) return rc;
  char *detail = spe__msg_newv(fmt, ap);
  if (detail == NULL) return rc;
  if (task == JOB_LEVEL) {
    spe__msg_give(p->msg, detail);
    return rc;
  }
  const char *name = p->def->tasks[task].name;
  if (name != NULL) {
    struct job_quoted q;
    spe__msg_set(p->msg, "task %s: %s", spe__job_quote(&q, name, strlen(name)), detail);
  } else {
    spe__msg_set(p->msg, "tasks[%lld]: %s", (long long)task, detail);
  }
  free(detail);
  return rc;
}

int spe__job_error(struct job_parse *p, int64_t task, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = set_error(p, task, SPE_EJOB, fmt, ap);
  va_end(ap);
  return rc;
}

int spe__job_limit_error(struct job_parse *p, int64_t task, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = set_error(p, task, SPE_ELIMIT, fmt, ap);
  va_end(ap);
  return rc;
}

int spe__job_nomem(struct job_parse *p) {
  spe__msg_set(p->msg, "out of memory");
  return SPE_ENOMEM;
}
