/*
 * Command-line parsing shared by the subcommands: a small option scanner and
 * the parsers of option values.
 *
 * Options may come before, between or after the operands (`spe run a.json
 * --json b.json`); `--` ends the options; `--name=value` and `--name value` are
 * both accepted, and a lone `-` is an operand (standard input or output).
 * Every error is reported here, on stderr, as one line that names the command,
 * the option and what was expected, with a hint to `--help`.
 */
#ifndef SPE_CLI_ARGS_H
#define SPE_CLI_ARGS_H

#include <stdint.h>

struct opt_spec {
  const char *long_name; /* without the leading "--" */
  char short_name;       /* 0 for none */
  int takes_value;       /* 1: the option needs a value */
  int id;                /* returned by args_next, > 0 */
};

struct arg_iter {
  const char *cmd;   /* "spe run": names the command in error messages */
  int argc;
  char **argv;
  int i;             /* next argument to look at */
  int operands_only; /* set once "--" has been seen */
};

enum { ARGS_OPERAND = 0, ARGS_END = -1, ARGS_ERROR = -2 };

/* Start scanning argv[first..argc). */
void args_init(struct arg_iter *it, const char *cmd, int argc, char **argv, int first);

/* The next item: an option's id (with *value set to its value, or NULL),
 * ARGS_OPERAND (with *value the operand), ARGS_END, or ARGS_ERROR after printing
 * the error. `specs` ends with an entry whose long_name is NULL. */
int args_next(struct arg_iter *it, const struct opt_spec *specs, const char **value);

/* Print "CMD: MESSAGE (see "CMD --help")" on stderr. Returns 2 (bad usage). */
int args_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The largest number `--workers` takes; above it, "unbound" says what is meant. */
#define ARGS_MAX_WORKERS 1000000

/* Parse `--workers`: a positive integer or "unbound" (-> SPE_WORKERS_UNBOUND).
 * Returns 0, -1 when `s` is neither, -2 when it is above ARGS_MAX_WORKERS. */
int args_parse_workers(const char *s, int *out);

/* Parse a duration: a number of seconds, or a number followed by ms, s or m
 * ("500ms", "5", "2.5s", "1m"). Returns 0 or -1. */
int args_parse_duration_ms(const char *s, int *out);

/* Parse an age: a whole number followed by d, h, m, s or ms ("7d", "12h",
 * "30m", "90s", "500ms"; a bare number is seconds), at most 100 years.
 * Returns 0 or -1. */
int args_parse_age_ms(const char *s, int64_t *out);

/* Parse a whole number in [min, max]. Returns 0 or -1. */
int args_parse_count(const char *s, int min, int max, int *out);

/* Parse a log level name (error, warn, info, debug) into SPE_LOG_*. Returns 0,
 * or -1 for an unknown name. */
int args_parse_log_level(const char *s, int *out);

/* The log level a command was asked for: `option` (the --log-level value, or
 * NULL), else $SPE_LOG (unless empty). *level is set to it, or to SPE_LOG_INFO
 * when neither was given, and *asked to whether one was. Returns -1, or the
 * exit status of a usage error naming `cmd` and the unknown level. */
int args_log_level(const char *cmd, const char *option, int *level, int *asked);

#endif
