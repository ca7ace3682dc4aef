/* UTF-8 validation and lossy conversion. See utf8.h. */
#include "exec/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Measure the sequence starting at s[0] (n >= 1 bytes available). Returns how
 * many bytes it spans, at least 1, and sets *ok when they form one well-formed
 * character. When they do not, the bytes returned are the maximal subpart to be
 * replaced: the lead byte and the continuation bytes that were still acceptable
 * (Unicode Table 3-7), so a truncated character costs one U+FFFD, not several. */
static size_t utf8_seq(const unsigned char *s, size_t n, int *ok) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
  *ok = 0;
  if (c < 0x80) {
    *ok = 1;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
    if (c == 0xED) hi = 0x9F;      /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;      /* no overlong forms */
    if (c == 0xF4) hi = 0x8F;      /* nothing above U+10FFFF */
  } else {
    return 1; /* a stray continuation byte, C0, C1 or F5..FF */
  }
  size_t i = 1;
  for (; i < len && i < n; i++) {
    unsigned char b = s[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
  }
  *ok = (i == len);
  return i;
}

size_t spe__utf8_valid_len(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    /* Runs of ASCII are the common case: skip them without the table. */
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int ok;
    size_t k = utf8_seq(u + i, n - i, &ok);
    if (!ok) return i;
    i += k;
  }
  return n;
}

json_t *spe__json_string_lossy(const char *s, size_t n) {
  size_t valid = spe__utf8_valid_len(s, n);
  if (valid == n) return json_stringn(s, n);

  /* Each replaced subpart is at least one byte and becomes three. */
  if (n > (SIZE_MAX - 1) / 3) return NULL;
  char *buf = malloc(3 * n + 1);
  if (buf == NULL) return NULL;
  memcpy(buf, s, valid);
  size_t o = valid;
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = valid; i < n;) {
    int ok;
    size_t k = utf8_seq(u + i, n - i, &ok);
    if (ok) {
      memcpy(buf + o, s + i, k);
      o += k;
    } else {
      memcpy(buf + o, "\xEF\xBF\xBD", 3);
      o += 3;
    }
    i += k;
  }
  json_t *j = json_stringn_nocheck(buf, o);
  free(buf);
  return j;
}
