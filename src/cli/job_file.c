#include "cli/job_file.h"

#include "spe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read all of f into a NUL-terminated buffer. Returns 0 or an errno value. */
static int read_all(FILE *f, char **out, size_t *len) {
  size_t cap = 64 * 1024, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL) return ENOMEM;
  for (;;) {
    if (cap - n < 2) {
      char *bigger = realloc(buf, cap * 2);
      if (bigger == NULL) {
        free(buf);
        return ENOMEM;
      }
      buf = bigger;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) {
        int err = errno != 0 ? errno : EIO;
        free(buf);
        return err;
      }
      break;
    }
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

static int read_path(const char *path, char **text, size_t *len) {
  if (strcmp(path, "-") == 0) return read_all(stdin, text, len);
  FILE *f = fopen(path, "re");
  if (f == NULL) return errno;
  int err = read_all(f, text, len);
  fclose(f);
  return err;
}

int job_file_load(struct job_file *jf, const char *path) {
  memset(jf, 0, sizeof *jf);
  jf->path = path;
  int err = read_path(path, &jf->text, &jf->len);
  if (err != 0) {
    fprintf(stderr, "spe: %s: cannot read: %s\n", path, strerror(err));
    return -1;
  }
  char *msg = NULL;
  int rc = spe_validate_text(jf->text, jf->len, &jf->levels, &msg);
  if (rc != 0) {
    fprintf(stderr, "spe: %s: %s\n", path, msg != NULL ? msg : spe_strerror(rc));
    free(msg);
    job_file_free(jf);
    return -1;
  }
  size_t i;
  json_t *level;
  json_array_foreach(jf->levels, i, level) jf->ntasks += json_array_size(level);
  return 0;
}

void job_file_free(struct job_file *jf) {
  free(jf->text);
  json_decref(jf->levels);
  jf->text = NULL;
  jf->levels = NULL;
}
