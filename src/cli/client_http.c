/*
 * The connection to `spe serve` and one request on it: libcurl's easy
 * interface, one handle per command, reused for every request so that they
 * share one connection (libcurl keeps it alive between transfers).
 *
 * Addresses: "unix:PATH" connects to a Unix socket (CURLOPT_UNIX_SOCKET_PATH;
 * the URL's host is then only a name, "localhost"); "http://HOST:PORT" over
 * TCP. A token file adds "Authorization: Bearer TOKEN" to every request.
 *
 * The streaming requests of client_sse.c set up the handle with
 * client__prepare() too, then install their own write callback.
 */
#include "base/buf.h"
#include "cli/client.h"
#include "cli/client_impl.h"
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reply body larger than this is not an answer of this API. */
#define REPLY_MAX ((size_t)256 << 20)

static int global_ready;

/* Split the address into a socket path or a base URL. Returns 0 or prints the
 * error and returns 2. */
static int parse_address(struct client *c) {
  const char *a = c->address;
  if (strncmp(a, "unix:", 5) == 0 && a[5] != '\0') {
    if (strlen(a + 5) > 107) {
      fprintf(stderr, "%s: --server \"%s\": the socket path is longer than 107 bytes\n",
              c->cmd, a);
      return CLIENT_EXIT_USAGE;
    }
    c->socket_path = strdup(a + 5);
    c->base_url = strdup("http://localhost");
  } else if (strncmp(a, "http://", 7) == 0 && a[7] != '\0' && a[7] != '/') {
    size_t n = strlen(a);
    while (n > 7 && a[n - 1] == '/') n--;
    c->base_url = strndup(a, n);
  } else {
    fprintf(stderr, "%s: --server \"%s\": expected unix:PATH or http://HOST:PORT\n", c->cmd, a);
    return CLIENT_EXIT_USAGE;
  }
  if (c->base_url == NULL || (strncmp(a, "unix:", 5) == 0 && c->socket_path == NULL)) {
    fprintf(stderr, "%s: out of memory\n", c->cmd);
    return CLIENT_EXIT_SERVER;
  }
  return 0;
}

/* Read the token by the server's own rule (server_read_token(): one word of
 * visible characters, at least 16, a final newline allowed), so that a file
 * is accepted or refused alike by `spe serve` and its clients, and make the
 * Authorization header. Returns 0 or prints the error and returns 2. */
static int load_token(struct client *c, const char *path) {
  char *token = NULL, *msg = NULL;
  if (server_read_token(path, &token, &msg) != 0) {
    fprintf(stderr, "%s: %s\n", c->cmd, msg != NULL ? msg : "out of memory");
    free(msg);
    return CLIENT_EXIT_USAGE;
  }
  size_t len = strlen(token);
  size_t n = len + sizeof "Authorization: Bearer ";
  char *header = malloc(n);
  if (header != NULL) {
    snprintf(header, n, "Authorization: Bearer %s", token);
    c->auth = curl_slist_append(NULL, header);
    explicit_bzero(header, n);
    free(header);
  }
  explicit_bzero(token, len);
  free(token);
  return c->auth != NULL ? 0 : CLIENT_EXIT_SERVER;
}

int client_open(struct client **out, const char *cmd, const struct client_opts *o) {
  *out = NULL;
  if (!global_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      fprintf(stderr, "%s: cannot initialise libcurl\n", cmd);
      return CLIENT_EXIT_SERVER;
    }
    global_ready = 1;
  }
  struct client *c = calloc(1, sizeof *c);
  if (c == NULL) return CLIENT_EXIT_SERVER;
  c->cmd = cmd;
  c->address = o->server != NULL ? strdup(o->server) : client_default_server();
  c->curl = curl_easy_init();
  int rc = c->address == NULL || c->curl == NULL ? CLIENT_EXIT_SERVER : parse_address(c);
  if (rc == 0 && o->token_file != NULL) rc = load_token(c, o->token_file);
  if (rc != 0) {
    if (rc == CLIENT_EXIT_SERVER && c->curl == NULL) fprintf(stderr, "%s: out of memory\n", cmd);
    client_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

void client_close(struct client *c) {
  if (c == NULL) return;
  if (c->curl != NULL) curl_easy_cleanup(c->curl);
  curl_slist_free_all(c->auth);
  free(c->address);
  free(c->socket_path);
  free(c->base_url);
  free(c);
}

const char *client_cmd(const struct client *c) { return c->cmd; }

struct curl_slist *client__headers(const struct client *c, const char *accept,
                                   const char *const *extra) {
  struct curl_slist *h = NULL, *next;
  char accept_line[128];
  snprintf(accept_line, sizeof accept_line, "Accept: %s", accept);
  /* No "Expect: 100-continue" for large bodies: the server reads the body
   * anyway, and the wait for its "100" only costs a round trip. */
  const char *fixed[] = {"Expect:", accept_line};
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
    if ((next = curl_slist_append(h, fixed[i])) == NULL) goto oom;
    h = next;
  }
  for (const struct curl_slist *a = c->auth; a != NULL; a = a->next) {
    if ((next = curl_slist_append(h, a->data)) == NULL) goto oom;
    h = next;
  }
  for (; extra != NULL && *extra != NULL; extra++) {
    if ((next = curl_slist_append(h, *extra)) == NULL) goto oom;
    h = next;
  }
  return h;
oom:
  curl_slist_free_all(h);
  return NULL;
}

int client__prepare(struct client *c, const char *path, struct curl_slist *headers) {
  CURL *h = c->curl;
  curl_easy_reset(h);
  size_t n = strlen(c->base_url) + strlen(path) + 1;
  char *url = malloc(n);
  if (url == NULL) return -1;
  snprintf(url, n, "%s%s", c->base_url, path);
  int bad = curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
  free(url);
  if (c->socket_path != NULL)
    bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path) != CURLE_OK;
  c->errbuf[0] = '\0';
  bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK;
  bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLIENT_CONNECT_TIMEOUT_MS) != CURLE_OK;
  /* A server that stops sending for this long is gone (the event stream sends
   * a keep-alive comment well within it). */
  bad |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)CLIENT_STALL_SECONDS) != CURLE_OK;
  bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK;
  bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "spe/" SPE_VERSION) != CURLE_OK;
  return bad ? -1 : 0;
}

/* Why the transfer failed, for a message: the system's reason when connecting
 * failed (libcurl's text names port 80 even for a Unix socket), else libcurl's. */
static void transfer_reason(struct client *c, CURLcode rc, char *out, size_t cap) {
  long os_errno = 0;
  curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
  if (rc == CURLE_COULDNT_CONNECT && os_errno != 0)
    snprintf(out, cap, "%s", strerror((int)os_errno));
  else
    snprintf(out, cap, "%s", c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc));
  size_t n = strlen(out);
  if (n > 0 && out[n - 1] == '\n') out[n - 1] = '\0';
}

/* Whether a transfer failed because the server could not be reached at all. */
static int is_connect_error(CURLcode rc) {
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
         rc == CURLE_COULDNT_RESOLVE_PROXY;
}

int client__transfer_failed(struct client *c, CURLcode rc) {
  char reason[CURL_ERROR_SIZE + 64];
  transfer_reason(c, rc, reason, sizeof reason);
  if (is_connect_error(rc))
    fprintf(stderr, "%s: cannot reach the server at %s: %s (is `spe serve` running?)\n",
            c->cmd, c->address, reason);
  else
    fprintf(stderr, "%s: the request to the server at %s failed: %s\n", c->cmd, c->address,
            reason);
  return CLIENT_EXIT_SERVER;
}

int client__http_failed(struct client *c, long status, const char *body, size_t len,
                        const char *what) {
  json_t *j = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
  const json_t *err = json_object_get(j, "error");
  const char *message = json_string_value(json_object_get(err, "message"));
  const char *sep = what != NULL ? ": " : "";
  if (what == NULL) what = "";
  if (message != NULL)
    fprintf(stderr, "%s: %s%s%s\n", c->cmd, what, sep, message);
  else
    fprintf(stderr, "%s: %s%sthe server at %s answered HTTP %ld\n", c->cmd, what, sep,
            c->address, status);
  json_decref(j);
  return status >= 400 && status < 500 ? CLIENT_EXIT_USAGE : CLIENT_EXIT_SERVER;
}

/* The body so far, in a struct spe_buf. */
static size_t collect(char *p, size_t size, size_t n, void *ud) {
  struct spe_buf *b = ud;
  size_t add = size * n;
  if (add > REPLY_MAX - b->len) return 0; /* aborts the transfer */
  return spe__buf_append(b, p, add) == 0 ? add : 0;
}

int client_request(struct client *c, const char *method, const char *path, const char *body,
                   size_t body_len, const char *what, struct client_reply *reply) {
  memset(reply, 0, sizeof *reply);
  const char *extra[] = {body != NULL ? "Content-Type: application/json" : NULL, NULL};
  struct curl_slist *headers = client__headers(c, "application/json", extra);
  struct spe_buf got = {0};
  int rc;
  if (headers == NULL || client__prepare(c, path, headers) != 0) {
    fprintf(stderr, "%s: out of memory\n", c->cmd);
    rc = CLIENT_EXIT_SERVER;
    goto done;
  }
  CURL *h = c->curl;
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body != NULL ? body_len : 0));
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
  CURLcode cr = curl_easy_perform(h);
  if (cr != CURLE_OK) {
    rc = client__transfer_failed(c, cr);
    goto done;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    rc = client__http_failed(c, status, got.data, got.len, what);
    goto done;
  }
  rc = 0;
  if (got.len > 0) {
    json_error_t jerr;
    reply->body = json_loadb(got.data, got.len, 0, &jerr);
    if (reply->body == NULL) {
      fprintf(stderr, "%s: the server at %s answered with something that is not JSON: %s\n",
              c->cmd, c->address, jerr.text);
      rc = CLIENT_EXIT_SERVER;
    }
  }
done:
  curl_slist_free_all(headers);
  spe__buf_free(&got);
  if (rc != 0) client_reply_free(reply);
  return rc;
}

void client_reply_free(struct client_reply *r) {
  json_decref(r->body);
  r->body = NULL;
}

char *client_escape(struct client *c, const char *s) {
  char *e = curl_easy_escape(c->curl, s, 0);
  if (e == NULL) return NULL;
  char *copy = strdup(e);
  curl_free(e);
  return copy;
}
