#include "cli/job_file.h"

#include "base/limits.h"
#include "spe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Read all of f, at most `limit` bytes, into a NUL-terminated buffer. Returns
 * 0, an errno value, or EFBIG when f holds more than `limit` bytes: a pipe
 * gives no size up front, and reading it whole could take any amount of
 * memory. `size_hint`: the expected size (0: unknown), at most `limit`. */
static int read_all(FILE *f, size_t limit, size_t size_hint, char **out, size_t *len) {
  size_t cap = size_hint + 2 > 64 * 1024 ? size_hint + 2 : 64 * 1024, n = 0;
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
    if (n > limit) {
      free(buf);
      return EFBIG;
    }
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

/* The job file size limit (SPE_MAX_JOB_BYTES, docs/limits.md) is checked here,
 * before reading a regular file, so that a huge file is refused at once and by
 * its size; other files (a pipe) are read up to the limit. The library would
 * refuse the text all the same. `size` 0: unknown, only known to be larger. */
static int too_big(const char *path, uint64_t size) {
  if (size == 0)
    fprintf(stderr, "spe: %s: job file is more than %zu bytes; the limit is %zu\n", path,
            (size_t)SPE_MAX_JOB_BYTES, (size_t)SPE_MAX_JOB_BYTES);
  else
    fprintf(stderr, "spe: %s: job file is %llu bytes; the limit is %zu\n", path,
            (unsigned long long)size, (size_t)SPE_MAX_JOB_BYTES);
  return -1;
}

static int read_path(const char *path, char **text, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
  if (f == NULL) {
    fprintf(stderr, "spe: %s: cannot read: %s\n", path, strerror(errno));
    return -1;
  }
  struct stat st;
  uint64_t size = 0; /* a regular file's size, else 0 */
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) size = (uint64_t)st.st_size;
  int err = size > SPE_MAX_JOB_BYTES ? EFBIG : read_all(f, SPE_MAX_JOB_BYTES, size, text, len);
  if (f != stdin) fclose(f);
  if (err == EFBIG) return too_big(path, size > SPE_MAX_JOB_BYTES ? size : 0);
  if (err != 0) {
    fprintf(stderr, "spe: %s: cannot read: %s\n", path, strerror(err));
    return -1;
  }
  return 0;
}

int job_file_read(const char *path, char **text, size_t *len) {
  return read_path(path, text, len);
}

int job_file_load(struct job_file *jf, const char *path) {
  memset(jf, 0, sizeof *jf);
  jf->path = path;
  if (read_path(path, &jf->text, &jf->len) != 0) return -1;
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
