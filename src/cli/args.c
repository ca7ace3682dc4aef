#include "cli/args.h"

#include "spe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_init(struct arg_iter *it, const char *cmd, int argc, char **argv, int first) {
  it->cmd = cmd;
  it->argc = argc;
  it->argv = argv;
  it->i = first;
  it->operands_only = 0;
}

int args_usage_error(const char *cmd, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s (see \"%s --help\")\n", cmd, buf, cmd);
  return 2;
}

static const struct opt_spec *find_long(const struct opt_spec *specs, const char *name,
                                        size_t len) {
  for (const struct opt_spec *s = specs; s->long_name != NULL; s++)
    if (strlen(s->long_name) == len && memcmp(s->long_name, name, len) == 0) return s;
  return NULL;
}

static const struct opt_spec *find_short(const struct opt_spec *specs, char c) {
  for (const struct opt_spec *s = specs; s->long_name != NULL; s++)
    if (s->short_name != 0 && s->short_name == c) return s;
  return NULL;
}

/* Take the option's value: the text after '=' if there was one, else the next
 * argument. */
static int take_value(struct arg_iter *it, const struct opt_spec *s, const char *inline_value,
                      const char *shown, const char **value) {
  if (!s->takes_value) {
    if (inline_value != NULL)
      return args_usage_error(it->cmd, "option %s takes no value", shown), ARGS_ERROR;
    *value = NULL;
    return s->id;
  }
  if (inline_value != NULL) {
    *value = inline_value;
    return s->id;
  }
  if (it->i >= it->argc)
    return args_usage_error(it->cmd, "option %s needs a value", shown), ARGS_ERROR;
  *value = it->argv[it->i++];
  return s->id;
}

int args_next(struct arg_iter *it, const struct opt_spec *specs, const char **value) {
  if (it->i >= it->argc) return ARGS_END;
  const char *a = it->argv[it->i++];
  if (it->operands_only || a[0] != '-' || a[1] == '\0') {
    *value = a;
    return ARGS_OPERAND;
  }
  if (strcmp(a, "--") == 0) {
    it->operands_only = 1;
    return args_next(it, specs, value);
  }
  if (a[1] == '-') {
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct opt_spec *s = find_long(specs, name, len);
    if (s == NULL) {
      args_usage_error(it->cmd, "unknown option \"%.*s\"", (int)(len + 2), a);
      return ARGS_ERROR;
    }
    char shown[64];
    snprintf(shown, sizeof shown, "%.*s", (int)(len + 2 < sizeof shown ? len + 2 : sizeof shown - 1), a);
    return take_value(it, s, eq != NULL ? eq + 1 : NULL, shown, value);
  }
  /* A short option: "-h", or "-w4" / "-w 4" for one that takes a value. */
  const struct opt_spec *s = find_short(specs, a[1]);
  if (s == NULL) {
    args_usage_error(it->cmd, "unknown option \"%s\"", a);
    return ARGS_ERROR;
  }
  if (a[2] != '\0' && !s->takes_value) {
    args_usage_error(it->cmd, "unknown option \"%s\"", a);
    return ARGS_ERROR;
  }
  return take_value(it, s, a[2] != '\0' ? a + 2 : NULL, a, value);
}

int args_parse_workers(const char *s, int *out) {
  if (strcmp(s, "unbound") == 0) {
    *out = SPE_WORKERS_UNBOUND;
    return 0;
  }
  /* Digits only: strtol alone would accept " 4", "+4" and "4abc". */
  if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s)) return -1;
  errno = 0;
  long v = strtol(s, NULL, 10);
  if (v < 1 && errno == 0) return -1;
  if (errno != 0 || v > ARGS_MAX_WORKERS) return -2;
  *out = (int)v;
  return 0;
}

int args_log_level(const char *cmd, const char *option, int *level, int *asked) {
  const char *name = option, *from = "--log-level";
  if (name == NULL) {
    name = getenv("SPE_LOG");
    from = "SPE_LOG";
    if (name != NULL && name[0] == '\0') name = NULL;
  }
  *level = SPE_LOG_INFO;
  *asked = name != NULL;
  if (name != NULL && args_parse_log_level(name, level) != 0)
    return args_usage_error(cmd, "%s: unknown level \"%s\" (expected error, warn, info or "
                            "debug)", from, name);
  return -1;
}

int args_parse_log_level(const char *s, int *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  static const int levels[] = {SPE_LOG_ERROR, SPE_LOG_WARN, SPE_LOG_INFO, SPE_LOG_DEBUG};
  for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = levels[i];
      return 0;
    }
  if (strcmp(s, "warning") == 0) {
    *out = SPE_LOG_WARN;
    return 0;
  }
  return -1;
}

int args_parse_duration_ms(const char *s, int *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno != 0 || v < 0) return -1;
  double scale = 1000; /* a bare number is seconds */
  if (strcmp(end, "ms") == 0) scale = 1;
  else if (strcmp(end, "s") == 0 || *end == '\0') scale = 1000;
  else if (strcmp(end, "m") == 0) scale = 60000;
  else return -1;
  double ms = v * scale;
  if (ms > 86400000.0) return -1; /* a day is plenty for a grace period */
  *out = (int)(ms + 0.5);
  return 0;
}

int args_parse_count(const char *s, int min, int max, int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || errno != 0 || v < min || v > max) return -1;
  *out = (int)v;
  return 0;
}

int args_parse_age_ms(const char *s, int64_t *out) {
  static const struct {
    const char *unit;
    int64_t ms;
  } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}, {"", 1000}};
  size_t digits = strspn(s, "0123456789");
  if (digits == 0 || digits > 12) return -1;
  long long v = strtoll(s, NULL, 10);
  for (size_t i = 0; i < sizeof units / sizeof *units; i++)
    if (strcmp(s + digits, units[i].unit) == 0) {
      if (v > 100LL * 365 * 86400000 / units[i].ms) return -1;
      *out = (int64_t)v * units[i].ms;
      return 0;
    }
  return -1;
}
