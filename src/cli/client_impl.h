/* Inside the client: the connection, shared by client_http.c and client_sse.c. */
#ifndef SPE_CLI_CLIENT_IMPL_H
#define SPE_CLI_CLIENT_IMPL_H

#include "cli/client.h"

#include <curl/curl.h>

#ifndef SPE_VERSION
#define SPE_VERSION "0.0.0"
#endif

/* How long connecting may take (a Unix socket answers at once, or never). */
#define CLIENT_CONNECT_TIMEOUT_MS 10000
/* A connection on which nothing arrives for this long is taken as dead. The
 * server's event stream sends a keep-alive comment far more often, and every
 * other answer is quick. */
#define CLIENT_STALL_SECONDS 60

struct client {
  const char *cmd;          /* "spe start": the prefix of messages */
  char *address;            /* as given: "unix:PATH" or "http://HOST:PORT" */
  char *socket_path;        /* the Unix socket, or NULL for TCP */
  char *base_url;           /* "http://localhost" for a socket, else the address */
  struct curl_slist *auth;  /* the Authorization header, or NULL */
  CURL *curl;               /* one handle for every request of the command */
  char errbuf[CURL_ERROR_SIZE];
};

/* The request headers: Accept: `accept`, the token's, then `extra`
 * (NULL-terminated; may be NULL). NULL when out of memory. */
struct curl_slist *client__headers(const struct client *c, const char *accept,
                                   const char *const *extra);

/* Reset the handle for a request of `path` (from "/v1..." on) with `headers`
 * (kept by the caller until the transfer ends). Returns 0 or -1. */
int client__prepare(struct client *c, const char *path, struct curl_slist *headers);

/* Print why the transfer failed; returns 3. */
int client__transfer_failed(struct client *c, CURLcode rc);

/* Print the server's error answer (`body`, may be NULL); returns 2 for a 4xx
 * status, else 3. */
int client__http_failed(struct client *c, long status, const char *body, size_t len,
                        const char *what);

#endif
