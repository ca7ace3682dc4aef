/*
 * The canonical text of a job description: compact JSON with sorted keys. Two
 * descriptions that differ only in key order or white space get the same text,
 * which is how a job to resume is recognised (SPEC §5) and what the store keeps
 * to rebuild the job on recovery. Array order is kept: it carries meaning (task
 * order is start order among equals).
 */
#include "job/job_internal.h"

#include <stdlib.h>
#include <string.h>

int spe__job_canonicalize(struct job_parse *p, json_t *doc) {
  char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  if (text == NULL) return spe__job_nomem(p);
  size_t len = strlen(text);
  /* The text of a large job is megabytes: do not keep a growth buffer's slack. */
  char *fitted = realloc(text, len + 1);
  p->def->canonical = fitted != NULL ? fitted : text;
  p->def->canonical_len = len;
  return 0;
}
