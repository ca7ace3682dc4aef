#include "cli/events_out.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct events_out {
  FILE *f;
  char *path;    /* as given, for messages */
  int is_stdout;
  int err;       /* errno of the first failed write, 0 if none */
};

int events_out_open(struct events_out **out, const char *path) {
  struct events_out *eo = calloc(1, sizeof *eo);
  if (eo == NULL || (eo->path = strdup(path)) == NULL) {
    free(eo);
    fprintf(stderr, "spe: out of memory\n");
    return -1;
  }
  if (strcmp(path, "-") == 0) {
    eo->f = stdout;
    eo->is_stdout = 1;
  } else {
    eo->f = fopen(path, "we");
    if (eo->f == NULL) {
      fprintf(stderr, "spe: --events %s: cannot open: %s\n", path, strerror(errno));
      free(eo->path);
      free(eo);
      return -1;
    }
  }
  *out = eo;
  return 0;
}

void events_out_write(struct events_out *eo, const json_t *event) {
  if (eo == NULL || eo->err != 0) return;
  char *line = json_dumps(event, JSON_COMPACT);
  if (line == NULL) {
    eo->err = ENOMEM;
    return;
  }
  errno = 0;
  if (fputs(line, eo->f) == EOF || fputc('\n', eo->f) == EOF || fflush(eo->f) == EOF)
    eo->err = errno != 0 ? errno : EIO;
  free(line);
}

int events_out_close(struct events_out *eo) {
  if (eo == NULL) return 0;
  if (eo->err == 0 && fflush(eo->f) == EOF) eo->err = errno != 0 ? errno : EIO;
  if (!eo->is_stdout && fclose(eo->f) == EOF && eo->err == 0) eo->err = errno != 0 ? errno : EIO;
  int rc = 0;
  if (eo->err != 0) {
    fprintf(stderr, "spe: --events %s: cannot write: %s\n",
            eo->is_stdout ? "- (standard output)" : eo->path, strerror(eo->err));
    rc = -1;
  }
  free(eo->path);
  free(eo);
  return rc;
}
