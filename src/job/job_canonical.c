/*
 * The canonical text of a job description: compact JSON with sorted keys, the
 * exact text json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) gives. Two
 * descriptions that differ only in key order or white space get the same text,
 * which is how a job to resume is recognised (SPEC §5) and what the store keeps
 * to rebuild the job on recovery. Array order is kept: it carries meaning.
 *
 * Why not json_dumps itself: for a 100,000-task job it takes about 0.1 s, a
 * quarter of the validation budget, mostly in per-character UTF-8 decoding and
 * a sort buffer per object. This writer copies runs of plain bytes at once and
 * sorts the few keys of an object on the stack. Numbers other than integers are
 * rare in a job and are written by jansson itself, so their formatting cannot
 * drift. tests/test_job.c compares the two writers on random documents.
 */
#include "job/job_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "spe.h"

/* Deeper documents are refused: jansson's own parser stops at the same depth
 * (SPE_MAX_JSON_DEPTH), and a document built through the API could even
 * contain itself. */
enum { MAX_DEPTH = SPE_MAX_JSON_DEPTH, STACK_KEYS = 16 };
#ifdef JSON_PARSER_MAX_DEPTH
_Static_assert(SPE_MAX_JSON_DEPTH == JSON_PARSER_MAX_DEPTH,
               "docs/limits.md gives jansson's parsing depth as SPE_MAX_JSON_DEPTH");
#endif

struct out {
  char *buf;
  size_t len, cap;
  int rc; /* the first error: SPE_ENOMEM or SPE_EJOB */
  const char *why; /* for SPE_EJOB */
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->rc < 0) return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap * 2 > o->len + n + 1 ? o->cap * 2 : o->len + n + 1;
    char *buf = realloc(o->buf, cap);
    if (buf == NULL) {
      o->rc = SPE_ENOMEM;
      return;
    }
    o->buf = buf;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

/* Bytes in a valid UTF-8 sequence starting at s[0] (a byte >= 0x80), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_length(const unsigned char *s, size_t avail) {
  size_t n;
  uint32_t cp;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) n = 2, cp = s[0] & 0x1f;
  else if (s[0] >= 0xe0 && s[0] <= 0xef) n = 3, cp = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4) n = 4, cp = s[0] & 0x07;
  else return 0;
  if (n > avail) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((s[k] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[k] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* A JSON string: runs of plain bytes copied at once; `"`, `\` and control
 * characters escaped as jansson escapes them. */
static void put_string(struct out *o, const char *str, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0, k = 0;
  put(o, "\"", 1);
  while (k < len) {
    unsigned char c = s[k];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      k++;
      continue;
    }
    if (c >= 0x80) {
      size_t n = utf8_length(s + k, len - k);
      if (n == 0) {
        o->rc = SPE_EJOB;
        o->why = "the job description holds a string that is not valid UTF-8";
        return;
      }
      k += n;
      continue;
    }
    put(o, str + run, k - run);
    char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
    size_t elen = 2;
    switch (c) {
      case '"': case '\\': break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        elen = 6;
    }
    put(o, esc, elen);
    run = ++k;
  }
  put(o, str + run, len - run);
  put(o, "\"", 1);
}

struct member {
  const char *key;
  size_t len;
  json_t *value;
};

/* Byte order; a key that is a prefix of another comes first. */
static int member_before(const struct member *a, const struct member *b) {
  int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
  return c != 0 ? c < 0 : a->len < b->len;
}

static int compare_members(const void *a, const void *b) {
  return member_before(a, b) ? -1 : member_before(b, a) ? 1 : 0;
}

static void put_value(struct out *o, json_t *v, int depth);

static void put_object(struct out *o, json_t *obj, int depth) {
  size_t n = json_object_size(obj);
  struct member stack[STACK_KEYS], *m = stack;
  if (n > STACK_KEYS && (m = malloc(n * sizeof *m)) == NULL) {
    o->rc = SPE_ENOMEM;
    return;
  }
  size_t k = 0;
  const char *key;
  size_t len;
  json_t *value;
  json_object_keylen_foreach(obj, key, len, value) {
    m[k++] = (struct member){key, len, value};
  }
  if (n > STACK_KEYS) {
    qsort(m, n, sizeof *m, compare_members);
  } else { /* insertion sort: objects here have a handful of keys */
    for (size_t i = 1; i < n; i++) {
      struct member cur = m[i];
      size_t j = i;
      for (; j > 0 && member_before(&cur, &m[j - 1]); j--) m[j] = m[j - 1];
      m[j] = cur;
    }
  }
  put(o, "{", 1);
  for (k = 0; k < n && o->rc == 0; k++) {
    if (k > 0) put(o, ",", 1);
    put_string(o, m[k].key, m[k].len);
    put(o, ":", 1);
    put_value(o, m[k].value, depth + 1);
  }
  put(o, "}", 1);
  if (m != stack) free(m);
}

/* Reals through jansson, so that their digits are exactly json_dumps's. */
static void put_real(struct out *o, json_t *v) {
  char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (text == NULL) {
    o->rc = SPE_ENOMEM;
    return;
  }
  put(o, text, strlen(text));
  free(text);
}

static void put_value(struct out *o, json_t *v, int depth) {
  if (depth > MAX_DEPTH) {
    o->rc = SPE_EJOB;
    o->why = "the job description is nested too deeply";
    return;
  }
  char num[32];
  switch (json_typeof(v)) {
    case JSON_OBJECT: put_object(o, v, depth); break;
    case JSON_ARRAY:
      put(o, "[", 1);
      for (size_t k = 0; k < json_array_size(v) && o->rc == 0; k++) {
        if (k > 0) put(o, ",", 1);
        put_value(o, json_array_get(v, k), depth + 1);
      }
      put(o, "]", 1);
      break;
    case JSON_STRING: put_string(o, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER:
      put(o, num, (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
      break;
    case JSON_REAL: put_real(o, v); break;
    case JSON_TRUE: put(o, "true", 4); break;
    case JSON_FALSE: put(o, "false", 5); break;
    case JSON_NULL: put(o, "null", 4); break;
  }
}

int spe__job_canonical_text(json_t *doc, size_t size_hint, char **text, size_t *len,
                            const char **why) {
  struct out o = {.cap = size_hint > 64 ? size_hint : 64};
  o.buf = malloc(o.cap);
  if (o.buf == NULL) return SPE_ENOMEM;
  put_value(&o, doc, 0);
  if (o.rc < 0) {
    free(o.buf);
    if (why != NULL) *why = o.why;
    return o.rc;
  }
  o.buf[o.len] = '\0';
  /* The text of a large job is megabytes: do not keep a growth buffer's slack. */
  char *fitted = realloc(o.buf, o.len + 1);
  *text = fitted != NULL ? fitted : o.buf;
  *len = o.len;
  return 0;
}

int spe__job_canonicalize(struct job_parse *p, json_t *doc) {
  const char *why = NULL;
  int rc = spe__job_canonical_text(doc, p->size_hint, &p->def->canonical,
                                   &p->def->canonical_len, &why);
  if (rc == SPE_ENOMEM) return spe__job_nomem(p);
  if (rc < 0) return spe__job_error(p, JOB_LEVEL, "%s", why);
  return 0;
}
