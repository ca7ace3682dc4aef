/*
 * Text for people: tables whose columns line up, times, durations and short
 * JSON values. Widths count characters, not bytes, so that a job name in UTF-8
 * does not push its row out of line.
 */
#include "cli/client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct table {
  int ncols;
  size_t nrows, cap; /* rows, including the header row */
  char **cells;      /* nrows * ncols strings */
  size_t *widths;    /* per column, in characters */
};

/* Characters in a UTF-8 string: every byte that does not continue one. */
static size_t text_width(const char *s) {
  size_t n = 0;
  for (; *s != '\0'; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

struct table *table_new(int ncols, const char *const *headers) {
  struct table *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->ncols = ncols;
  t->widths = calloc((size_t)ncols, sizeof *t->widths);
  if (t->widths == NULL) {
    free(t);
    return NULL;
  }
  table_add(t, headers);
  return t;
}

void table_add(struct table *t, const char *const *cells) {
  if (t == NULL) return;
  if (t->nrows == t->cap) {
    size_t cap = t->cap == 0 ? 16 : t->cap * 2;
    char **bigger = realloc(t->cells, cap * (size_t)t->ncols * sizeof *bigger);
    if (bigger == NULL) return; /* the row is left out rather than the table */
    t->cells = bigger;
    t->cap = cap;
  }
  char **row = t->cells + t->nrows * (size_t)t->ncols;
  for (int i = 0; i < t->ncols; i++) {
    row[i] = strdup(cells[i] != NULL ? cells[i] : "");
    if (row[i] == NULL) row[i] = strdup("");
    size_t w = row[i] != NULL ? text_width(row[i]) : 0;
    if (w > t->widths[i]) t->widths[i] = w;
  }
  t->nrows++;
}

void table_print_free(struct table *t) {
  if (t == NULL) return;
  for (size_t r = 0; r < t->nrows; r++) {
    char **row = t->cells + r * (size_t)t->ncols;
    for (int i = 0; i < t->ncols; i++) {
      const char *cell = row[i] != NULL ? row[i] : "";
      if (i == t->ncols - 1) {
        printf("%s\n", cell); /* the last column is not padded */
      } else {
        size_t pad = t->widths[i] - text_width(cell) + 2;
        printf("%s%*s", cell, (int)pad, "");
      }
    }
  }
  for (size_t k = 0; k < t->nrows * (size_t)t->ncols; k++) free(t->cells[k]);
  free(t->cells);
  free(t->widths);
  free(t);
}

void client_format_time(int64_t ms, char out[32]) {
  if (ms <= 0) {
    snprintf(out, 32, "-");
    return;
  }
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&secs, &tm);
  strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

void client_format_duration(int64_t from_ms, int64_t to_ms, char out[32]) {
  if (from_ms <= 0 || to_ms <= 0 || to_ms < from_ms) {
    snprintf(out, 32, "-");
    return;
  }
  int64_t ms = to_ms - from_ms, s = ms / 1000;
  if (ms < 60000)
    snprintf(out, 32, "%" PRId64 ".%03d s", s, (int)(ms % 1000));
  else if (s < 3600)
    snprintf(out, 32, "%" PRId64 "m %02ds", s / 60, (int)(s % 60));
  else if (s < 86400)
    snprintf(out, 32, "%" PRId64 "h %02dm", s / 3600, (int)(s / 60 % 60));
  else
    snprintf(out, 32, "%" PRId64 "d %02dh", s / 86400, (int)(s / 3600 % 24));
}

void client_format_json(const json_t *v, char *out, size_t max) {
  if (max == 0) return;
  out[0] = '\0';
  if (v == NULL) return;
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (text == NULL) return;
  /* JSON text escapes newlines, so that a multi-line string keeps to its row. */
  size_t n = strlen(text);
  if (n < max) {
    memcpy(out, text, n + 1);
  } else if (max > 4) {
    size_t keep = max - 4;
    /* Cut on a character boundary. */
    while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--;
    memcpy(out, text, keep);
    memcpy(out + keep, "...", 4);
  }
  free(text);
}

int client_print_text(const char *line) {
  if (line == NULL || puts(line) == EOF || fflush(stdout) != 0) {
    perror("spe: standard output");
    return CLIENT_EXIT_SERVER;
  }
  return 0;
}

int client_print_json(const json_t *v) {
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  int rc = client_print_text(text);
  free(text);
  return rc;
}
