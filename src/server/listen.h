/*
 * The listening sockets of the server, bound by us and handed to
 * libmicrohttpd (MHD_OPTION_LISTEN_SOCKET), so that we decide the details MHD
 * does not: a Unix socket's mode and folder, what to do with an old socket
 * file, and which TCP address is meant.
 */
#ifndef SPE_SERVER_LISTEN_H
#define SPE_SERVER_LISTEN_H

#include <stddef.h>

/* Create, bind and listen on a Unix socket at `path`, mode 0600 from the
 * start (the umask is narrowed around bind()). Its folder is created with mode
 * 0700 if it is missing (one level). An existing socket file on which a server
 * answers is refused ("another server is listening on ..."); one on which
 * nobody answers is left over from a crash and replaced; any other file is
 * refused and never removed. Returns the descriptor (close-on-exec), or -1
 * with *msg set. */
int listen_unix(const char *path, char **msg);

/* Bind and listen on "HOST:PORT" ("[::1]:8080" for an IPv6 address; port 0
 * picks a free one). Returns the descriptor, or -1 with *msg set. `shown`
 * (size `shown_size`) receives the bound address as a URL, e.g.
 * "http://127.0.0.1:8080", with the real port. */
int listen_tcp(const char *host_port, char *shown, size_t shown_size, char **msg);

#endif
