/* The stdout buffer and the stderr ring of a running command. */
#include "exec/cmd_internal.h"
#include "exec/utf8.h"
#include "spe.h"

#include <stdlib.h>
#include <string.h>

void spe__ring_append(struct err_ring *r, const char *p, size_t n) {
  /* Only the last KEEP bytes of this piece can survive. */
  if (n > SPE_STDERR_KEEP) {
    r->total += n - SPE_STDERR_KEEP;
    p += n - SPE_STDERR_KEEP;
    n = SPE_STDERR_KEEP;
  }
  size_t at = (size_t)(r->total % SPE_STDERR_KEEP);
  size_t first = SPE_STDERR_KEEP - at < n ? SPE_STDERR_KEEP - at : n;
  memcpy(r->data + at, p, first);
  memcpy(r->data, p + first, n - first);
  r->total += n;
}

json_t *spe__ring_string(const struct err_ring *r) {
  if (r->total == 0) return NULL;
  char tail[SPE_STDERR_KEEP];
  size_t n;
  if (r->total <= SPE_STDERR_KEEP) {
    n = (size_t)r->total;
    memcpy(tail, r->data, n);
  } else {
    size_t start = (size_t)(r->total % SPE_STDERR_KEEP);
    memcpy(tail, r->data + start, SPE_STDERR_KEEP - start);
    memcpy(tail + SPE_STDERR_KEEP - start, r->data, start);
    n = SPE_STDERR_KEEP;
  }
  /* When the cut fell inside a multi-byte character, drop its orphaned
   * continuation bytes rather than show a replacement character for them. */
  size_t skip = 0;
  if (r->total > SPE_STDERR_KEEP)
    while (skip < 3 && skip < n && ((unsigned char)tail[skip] & 0xC0) == 0x80) skip++;
  return spe__json_string_lossy(tail + skip, n - skip);
}
