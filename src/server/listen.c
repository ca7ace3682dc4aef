#include "server/listen.h"

#include "base/msg.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 512

/* Create the socket's folder (one level) if it is missing: private, since
 * whoever may write in it may replace the socket. */
static int make_folder(const char *path, char **msg) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path) return 0;
  size_t n = (size_t)(slash - path);
  char *dir = strndup(path, n);
  if (dir == NULL) {
    spe__msg_set(msg, "out of memory");
    return -1;
  }
  int rc = 0;
  struct stat st;
  if (stat(dir, &st) != 0) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      spe__msg_set(msg, "cannot create the socket's folder %s: %s", dir, strerror(errno));
      rc = -1;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    spe__msg_set(msg, "%s is not a folder", dir);
    rc = -1;
  }
  free(dir);
  return rc;
}

/* Whether a server answers on the socket file at `addr`. */
static int someone_listens(const struct sockaddr_un *addr) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int live = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
  close(fd);
  return live;
}

/* Deal with whatever is at the path already. Returns 0 when the path is free
 * (or was freed), -1 with *msg set when it must not be touched. */
static int clear_old_socket(const char *path, const struct sockaddr_un *addr, char **msg) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    spe__msg_set(msg, "cannot check %s: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISSOCK(st.st_mode)) {
    spe__msg_set(msg, "%s exists and is not a socket; not replacing it", path);
    return -1;
  }
  if (someone_listens(addr)) {
    spe__msg_set(msg, "another server is listening on %s", path);
    return -1;
  }
  /* Left by a server that did not stop cleanly: nobody answers on it. */
  if (unlink(path) != 0 && errno != ENOENT) {
    spe__msg_set(msg, "cannot remove the stale socket %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int listen_unix(const char *path, char **msg) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof addr.sun_path) {
    spe__msg_set(msg, "socket path \"%s\" is %zu bytes; the limit is %zu", path, len,
                 sizeof addr.sun_path - 1);
    return -1;
  }
  memcpy(addr.sun_path, path, len + 1);
  if (make_folder(path, msg) != 0 || clear_old_socket(path, &addr, msg) != 0) return -1;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    spe__msg_set(msg, "cannot create a socket: %s", strerror(errno));
    return -1;
  }
  /* The file is created by bind() with the umask applied: narrowing it makes
   * the socket 0600 from its first moment, with no window in which another
   * user could connect. (The program has no other thread yet that creates
   * files.) */
  mode_t old = umask(0177);
  int rc = bind(fd, (const struct sockaddr *)&addr, sizeof addr);
  int bind_errno = errno;
  umask(old);
  if (rc != 0) {
    spe__msg_set(msg, "cannot bind %s: %s", path, strerror(bind_errno));
    close(fd);
    return -1;
  }
  if (chmod(path, 0600) != 0 || listen(fd, BACKLOG) != 0) {
    spe__msg_set(msg, "cannot listen on %s: %s", path, strerror(errno));
    unlink(path);
    close(fd);
    return -1;
  }
  return fd;
}

/* Split "HOST:PORT" or "[V6]:PORT" into host[] and port[]. */
static int split_host_port(const char *s, char *host, size_t host_size, char *port,
                           size_t port_size) {
  const char *colon;
  const char *h = s;
  size_t hl;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (end == NULL || end[1] != ':') return -1;
    h = s + 1;
    hl = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL) return -1;
    hl = (size_t)(colon - s);
  }
  const char *p = colon + 1;
  if (hl == 0 || hl >= host_size || *p == '\0' || strlen(p) >= port_size ||
      strspn(p, "0123456789") != strlen(p) || atol(p) > 65535)
    return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  strcpy(port, p);
  return 0;
}

/* The bound address as a URL. */
static void show_address(int fd, char *shown, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
      getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    snprintf(shown, size, "http://?");
    return;
  }
  if (ss.ss_family == AF_INET6)
    snprintf(shown, size, "http://[%s]:%s", host, port);
  else
    snprintf(shown, size, "http://%s:%s", host, port);
}

int listen_tcp(const char *host_port, char *shown, size_t shown_size, char **msg) {
  char host[256], port[8];
  if (split_host_port(host_port, host, sizeof host, port, sizeof port) != 0) {
    spe__msg_set(msg, "--listen: expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), "
                      "got \"%s\"", host_port);
    return -1;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0) {
    spe__msg_set(msg, "--listen %s: %s", host_port, gai_strerror(gai));
    return -1;
  }
  int fd = -1, err = 0;
  for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0) {
      err = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    spe__msg_set(msg, "cannot listen on %s: %s", host_port, strerror(err));
    return -1;
  }
  show_address(fd, shown, shown_size);
  return fd;
}
