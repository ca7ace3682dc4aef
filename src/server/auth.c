/*
 * Bearer tokens on the TCP listener: "Authorization: Bearer TOKEN".
 *
 * The comparison takes the same time wherever the first differing byte is,
 * so that the time of a refusal tells nothing about how much of a guess was
 * right. (It does depend on the length of what the client sent, which the
 * client knows anyway.)
 */
#include "server/server_impl.h"

#include "base/msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 1 when a (length an) equals the token, in time that depends on an only. */
static int same_token(const struct server *s, const char *a, size_t an) {
  volatile unsigned char diff = (unsigned char)(an != s->token_len);
  for (size_t i = 0; i < an; i++) {
    unsigned char t = i < s->token_len ? (unsigned char)s->token[i] : 0;
    diff |= (unsigned char)a[i] ^ t;
  }
  return diff == 0;
}

int auth_ok(const struct server *s, struct MHD_Connection *c) {
  if (s->token == NULL) return 0;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) return 0;
  const char *t = h + 7;
  while (*t == ' ') t++;
  size_t n = strlen(t);
  while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
  return same_token(s, t, n);
}

int server_read_token(const char *path, char **token, char **msg) {
  *token = NULL;
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    spe__msg_set(msg, "cannot read the token file %s: %s", path, strerror(errno));
    return -1;
  }
  char buf[4097];
  size_t n = fread(buf, 1, sizeof buf, f);
  int failed = ferror(f);
  fclose(f);
  if (failed || n == sizeof buf) {
    spe__msg_set(msg, "%s: %s", path, failed ? "cannot read the token file"
                                              : "the token is longer than 4096 bytes");
    return -1;
  }
  /* One line; the final newline (and any trailing blanks) are not part of it. */
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                   buf[n - 1] == '\t'))
    n--;
  buf[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if (buf[i] <= ' ' || buf[i] == 0x7f) {
      spe__msg_set(msg, "%s: the token must be one word of visible characters", path);
      return -1;
    }
  if (n < 16) {
    spe__msg_set(msg, "%s: the token is %zu characters; at least 16 are needed", path, n);
    return -1;
  }
  *token = strdup(buf);
  if (*token == NULL) {
    spe__msg_set(msg, "out of memory");
    return -1;
  }
  return 0;
}
