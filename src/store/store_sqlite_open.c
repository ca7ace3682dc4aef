/*
 * Opening and closing the SQLite store, in an order that never harms a file
 * that is not ours or that another process owns:
 *
 *  1. Take the lock (store_sqlite_lock.c). It comes before SQLite touches
 *     anything, so that two owners never meet in the database.
 *  2. A missing or empty PATH: build a new store in PATH.new and rename it into
 *     place, so that PATH is either absent or a whole store, whenever we die.
 *  3. Read the file's first 100 bytes ourselves: SQLite's magic, our
 *     application id, a schema not newer than ours, a length that matches the
 *     header. A foreign file is refused here, before SQLite could write a
 *     byte of it or create a -wal or -shm beside it.
 *  4. Open it read-only in SQLite and check what the header alone cannot show
 *     when a WAL holds newer pages: the schema version and the meta row.
 *  5. Open it read-write: WAL, synchronous=FULL, foreign keys; migrate an
 *     older schema; prepare the statements; find the last event's seq.
 *  6. Open the reader, a second, read-only connection for API threads
 *     (store_sqlite_query.c), on the schema now current.
 *
 * Closing closes the reader, finalizes the statements, closes the writer
 * (SQLite then checkpoints the WAL into the file and removes -wal and -shm),
 * empties the lock file and releases the lock.
 */
#include "store/store_sqlite.h"

#include "base/msg.h"
#include "spe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OPEN_FLAGS SQLITE_OPEN_NOMUTEX /* one thread at a time uses a store */

/* ---- small helpers ---- */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  sqlite3_finalize(st);
  return rc;
}

/* The first column of the first row as text into buf ("" when none). */
static int query_text(sqlite3 *db, const char *sql, char *buf, size_t size) {
  sqlite3_stmt *st = NULL;
  buf[0] = '\0';
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (t) snprintf(buf, size, "%s", (const char *)t);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
  sqlite3_finalize(st);
  return rc;
}

static int is_damage(int rc) {
  return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* `cannot open state store URL: detail`, or `... is damaged: detail`. */
static int open_failed(struct sqlite_store *ss, int rc, const char *detail, char **msg) {
  if (is_damage(rc))
    spe__msg_set(msg, "state store %s is damaged: %s", ss->url, detail);
  else
    spe__msg_set(msg, "cannot open state store %s: %s", ss->url, detail);
  return SPE_ESTORE;
}

static int not_ours(struct sqlite_store *ss, char **msg) {
  spe__msg_set(msg, "state store %s is not an SPE state store", ss->url);
  return SPE_ESTORE;
}

static int too_new(struct sqlite_store *ss, int64_t version, char **msg) {
  spe__msg_set(msg, "state store %s was written by a newer SPE (schema %lld, this build knows %d)",
               ss->url, (long long)version, spe__store_sqlite_schema->nsteps);
  return SPE_ESTORE;
}

/* The folder holding `path`, or NULL for the current one. */
static char *parent_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return NULL;
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static void fsync_path(const char *path, int flags) {
  int fd = open(path, flags | O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* ---- 2. a new store ---- */

static void remove_db_files(const char *db) {
  static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    char *p = spe__msg_new("%s%s", db, suffixes[i]);
    if (p) unlink(p);
    free(p);
  }
}

/* A log of a database beside a missing or empty PATH: SQLite would replay it
 * into the new store, and it may be all there is of someone's database. */
static int check_leftovers(struct sqlite_store *ss, char **msg) {
  static const char *const suffixes[] = {"-wal", "-journal"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    char *p = spe__msg_new("%s%s", ss->path, suffixes[i]);
    struct stat st;
    int there = p != NULL && stat(p, &st) == 0 && st.st_size > 0;
    if (there)
      spe__msg_set(msg,
                   "cannot create state store %s: %s, the log of a database, is there "
                   "without the database (move it away first)",
                   ss->url, p);
    free(p);
    if (there) return SPE_ESTORE;
  }
  return 0;
}

/* Build the store in PATH.new (ours: we hold the lock), then rename it to PATH. */
static int create_store(struct sqlite_store *ss, char **msg) {
  int ret = check_leftovers(ss, msg);
  if (ret != 0) return ret;
  char *tmp = spe__msg_new("%s.new", ss->path);
  if (tmp == NULL) return SPE_ENOMEM;
  remove_db_files(tmp); /* left by a crash in this very function */
  sqlite3 *db = NULL;
  char *err = NULL;
  char mode[16] = "";
  int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | OPEN_FLAGS,
                           NULL);
  if (rc == SQLITE_OK) rc = spe__store_sqlite_create_schema(db, &err);
  /* WAL is recorded in the file's header: set it now, while the file is new. */
  if (rc == SQLITE_OK) rc = query_text(db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
  if (rc == SQLITE_OK && strcmp(mode, "wal") != 0) rc = SQLITE_CANTOPEN;
  if (rc != SQLITE_OK && err == NULL)
    err = strdup(mode[0] && strcmp(mode, "wal") != 0 ? "cannot use WAL" : sqlite3_errmsg(db));
  sqlite3_close_v2(db);
  if (rc == SQLITE_OK) {
    fsync_path(tmp, 0);
    if (rename(tmp, ss->path) != 0) {
      rc = SQLITE_CANTOPEN;
      err = spe__msg_new("cannot rename %s to %s: %s", tmp, ss->path, strerror(errno));
    }
  }
  if (rc == SQLITE_OK) {
    char *dir = parent_of(ss->path);
    fsync_path(dir ? dir : ".", O_DIRECTORY);
    free(dir);
    spe__log(&ss->log, SPE_LOG_INFO, "created state store %s (schema %d)", ss->url,
             spe__store_sqlite_schema->nsteps);
  } else {
    remove_db_files(tmp);
    spe__msg_set(msg, "cannot create state store %s: %s", ss->url, err ? err : "out of memory");
  }
  free(err);
  free(tmp);
  return rc == SQLITE_OK ? 0 : SPE_ESTORE;
}

/* ---- 3. the header, read by hand ---- */

/* The SQLite file header (https://sqlite.org/fileformat.html): magic at 0,
 * page size at 16, change counter at 24, size in pages at 28, user_version at
 * 60, application_id at 68, "version valid for" at 92. */
static int check_header(struct sqlite_store *ss, off_t size, int *has_wal, char **msg) {
  unsigned char h[100];
  int fd = open(ss->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return open_failed(ss, SQLITE_CANTOPEN, strerror(errno), msg);
  ssize_t n = pread(fd, h, sizeof h, 0);
  close(fd);
  if (n < 16 || memcmp(h, "SQLite format 3", 16) != 0) return not_ours(ss, msg);
  if (n < (ssize_t)sizeof h) {
    spe__msg_set(msg, "state store %s is damaged: the file is %zd bytes long", ss->url, n);
    return SPE_ESTORE;
  }
  if (be32(h + 68) != SPE_SQLITE_APPLICATION_ID) return not_ours(ss, msg);
  int64_t version = (int32_t)be32(h + 60);
  if (version > spe__store_sqlite_schema->nsteps) return too_new(ss, version, msg);

  /* Without a WAL the file must hold every page its header counts; shorter is a
   * truncated file, which SQLite would only notice page by page. */
  char *wal = spe__msg_new("%s-wal", ss->path);
  struct stat wst;
  *has_wal = wal == NULL || (stat(wal, &wst) == 0 && wst.st_size > 0);
  free(wal);
  int64_t page_size = (h[16] << 8 | h[17]) == 1 ? 65536 : (h[16] << 8 | h[17]);
  int64_t want = (int64_t)be32(h + 28) * page_size;
  if (!*has_wal && be32(h + 92) == be32(h + 24) && want > 0 && (int64_t)size < want) {
    spe__msg_set(msg,
                 "state store %s is damaged: the file is %lld bytes long, its header says %lld",
                 ss->url, (long long)size, (long long)want);
    return SPE_ESTORE;
  }
  return 0;
}

/* ---- 4. what SQLite sees, read-only ---- */

/* "file:PATH?immutable=1", the path percent-encoded as a URI needs. An
 * absolute path gets an empty authority ("file:///tmp/x"), so that a path
 * starting with "//" is not taken for a host. */
static char *immutable_uri(const char *path) {
  static const char hex[] = "0123456789ABCDEF";
  size_t len = strlen(path);
  char *uri = malloc(len * 3 + sizeof "file://?immutable=1");
  if (uri == NULL) return NULL;
  char *o = uri + sprintf(uri, path[0] == '/' ? "file://" : "file:");
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("/._-~", *p) != NULL) {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  strcpy(o, "?immutable=1");
  return uri;
}

/* Without a WAL, the file is all there is, and SQLite reads it as immutable:
 * no lock, no -wal or -shm created beside a file not yet known to be whole.
 * With a WAL (an owner died before its checkpoint), the WAL must be read. */
static int verify(struct sqlite_store *ss, int has_wal, int64_t *version, char **msg) {
  sqlite3 *db = NULL;
  int64_t app = 0;
  char format[64] = "";
  char *uri = has_wal ? NULL : immutable_uri(ss->path);
  if (!has_wal && uri == NULL) return SPE_ENOMEM;
  int rc = sqlite3_open_v2(uri ? uri : ss->path, &db,
                           SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | OPEN_FLAGS, NULL);
  free(uri);
  if (rc == SQLITE_OK) rc = query_int(db, "PRAGMA application_id", &app);
  if (rc == SQLITE_OK) rc = query_int(db, "PRAGMA user_version", version);
  int ret = 0;
  if (rc != SQLITE_OK)
    ret = open_failed(ss, rc, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), msg);
  else if (app != SPE_SQLITE_APPLICATION_ID)
    ret = not_ours(ss, msg);
  else if (*version > spe__store_sqlite_schema->nsteps)
    ret = too_new(ss, *version, msg);
  else {
    rc = query_text(db, "SELECT value FROM meta WHERE key = 'format'", format, sizeof format);
    if (is_damage(rc))
      ret = open_failed(ss, rc, sqlite3_errmsg(db), msg);
    else if (rc != SQLITE_OK || strcmp(format, SPE_SQLITE_FORMAT) != 0)
      ret = not_ours(ss, msg); /* no meta table, or another format */
  }
  sqlite3_close_v2(db);
  return ret;
}

/* ---- 5. the connection we keep ---- */

static int connect(struct sqlite_store *ss, int64_t version, char **msg) {
  char mode[16] = "";
  int rc = sqlite3_open_v2(ss->path, &ss->db, SQLITE_OPEN_READWRITE | OPEN_FLAGS, NULL);
  if (rc != SQLITE_OK)
    return open_failed(ss, rc, ss->db ? sqlite3_errmsg(ss->db) : sqlite3_errstr(rc), msg);
  /* We are the only writer (the lock says so), but not the only connection:
   * the store's own reader (store_sqlite_query.c) and any outside reader (the
   * sqlite3 shell) hold WAL read locks, and a writer that restarts the WAL or
   * checkpoints can meet one for a moment: SQLITE_BUSY then is a wait, not a
   * failure. A commit that still cannot proceed after 5 s fails as before. */
  sqlite3_busy_timeout(ss->db, 5000);
  rc = query_text(ss->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
  if (rc == SQLITE_OK && strcmp(mode, "wal") != 0)
    return open_failed(ss, SQLITE_CANTOPEN, "cannot use WAL", msg);
  /* The WAL is checkpointed into the file every 10,000 pages (40 MiB with
   * 4 KiB pages) instead of SQLite's 1,000: a busy round writes thousands of
   * rows, and checkpointing after nearly every commit copied the same index
   * pages again and again on the committer (bench_functions durable, 8 runs
   * each, alternated: median 52,000 -> 59,600 tasks/s). The WAL is as
   * durable either way; a recovery reads a longer one. */
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(ss->db,
                      "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                      " PRAGMA wal_autocheckpoint = 10000;",
                      NULL, NULL, NULL);
  if (rc == SQLITE_OK && ss->max_pages > 0) {
    char sql[64];
    int64_t ignored;
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)ss->max_pages);
    rc = query_int(ss->db, sql, &ignored);
  }
  if (rc != SQLITE_OK) return open_failed(ss, rc, sqlite3_errmsg(ss->db), msg);

  if (version < spe__store_sqlite_schema->nsteps) {
    char *err = NULL;
    rc = spe__store_sqlite_migrate(ss->db, (int)version, &err);
    if (rc != SQLITE_OK) {
      spe__msg_set(msg, "cannot migrate state store %s from schema %lld to %d: %s", ss->url,
                   (long long)version, spe__store_sqlite_schema->nsteps,
                   err ? err : sqlite3_errstr(rc));
      free(err);
      return SPE_ESTORE;
    }
    spe__log(&ss->log, SPE_LOG_INFO, "migrated state store %s from schema %lld to %d", ss->url,
             (long long)version, spe__store_sqlite_schema->nsteps);
  }

  rc = spe__store_sqlite_prepare_write(ss);
  if (rc == SQLITE_OK) rc = spe__store_sqlite_prepare_read(ss);
  /* Numbering goes on from the last event the store holds. */
  if (rc == SQLITE_OK)
    rc = query_int(ss->db, SPE_SQLITE_SELECT_LAST_SEQ, &ss->last_seq);
  if (rc != SQLITE_OK) return open_failed(ss, rc, sqlite3_errmsg(ss->db), msg);
  return 0;
}

static void free_store(struct sqlite_store *ss) {
  /* The reader first: the writer must be the last connection, so that its
   * close checkpoints the WAL and removes it. */
  spe__store_sqlite_reader_close(ss);
  sqlite3_stmt *stmts[] = {ss->begin,        ss->commit,        ss->rollback,
                           ss->upsert_job,   ss->upsert_task,   ss->insert_event,
                           ss->prune_events, ss->prune_tasks,   ss->prune_jobs,
                           ss->keep_last_seq, ss->select_unfinished};
  for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++) sqlite3_finalize(stmts[i]);
  spe__store_sqlite_loader_free(&ss->recovery);
  if (ss->db != NULL && sqlite3_close(ss->db) != SQLITE_OK)
    spe__log(&ss->log, SPE_LOG_ERROR, "state store %s: close failed: %s", ss->url,
             sqlite3_errmsg(ss->db));
  /* Only now that the connection is closed (and the WAL checkpointed) may
   * another process take the store. */
  spe__store_sqlite_unlock(ss);
  free(ss->json_a.p);
  free(ss->json_b.p);
  free(ss->had_seq);
  free(ss->path);
  free(ss->url);
  free(ss);
}

static int open_store(struct sqlite_store *ss, char **msg) {
  int rc = spe__store_sqlite_parse_fault(ss, msg);
  if (rc != 0) return rc;

  /* The folder, one level (sqlite:.spe/state.db makes .spe). */
  char *dir = parent_of(ss->path);
  if (dir != NULL) {
    if (mkdir(dir, 0777) == 0) {
      spe__log(&ss->log, SPE_LOG_INFO, "created folder %s for state store %s", dir, ss->url);
    } else if (errno != EEXIST) {
      spe__msg_set(msg, "cannot create the folder %s for state store %s: %s", dir, ss->url,
                   strerror(errno));
      rc = SPE_ESTORE;
    }
    free(dir);
    if (rc != 0) return rc;
  }

  if ((rc = spe__store_sqlite_lock(ss, msg)) != 0) return rc;

  struct stat st;
  int exists = stat(ss->path, &st) == 0;
  if (!exists && errno != ENOENT)
    return open_failed(ss, SQLITE_CANTOPEN, strerror(errno), msg);
  if (exists && S_ISDIR(st.st_mode))
    return open_failed(ss, SQLITE_CANTOPEN, "it is a folder", msg);
  if (!exists || st.st_size == 0) { /* an empty file is a new store too */
    if ((rc = create_store(ss, msg)) != 0) return rc;
    if (stat(ss->path, &st) != 0) return open_failed(ss, SQLITE_CANTOPEN, strerror(errno), msg);
  }

  int64_t version = 0;
  int has_wal = 0;
  if ((rc = check_header(ss, st.st_size, &has_wal, msg)) != 0) return rc;
  if ((rc = verify(ss, has_wal, &version, msg)) != 0) return rc;
  if ((rc = connect(ss, version, msg)) != 0) return rc;
  char *err = NULL;
  int src = spe__store_sqlite_reader_open(ss, &err);
  if (src != SQLITE_OK) {
    rc = open_failed(ss, src, err ? err : sqlite3_errstr(src), msg);
    free(err);
    return rc;
  }
  ss->base.keeps_events = 1;

  int64_t unfinished = 0;
  query_int(ss->db, "SELECT count(*) FROM jobs WHERE status IN ('submitted', 'running')",
            &unfinished);
  spe__log(&ss->log, SPE_LOG_INFO,
           "opened state store %s (schema %d, %lld unfinished jobs, last event %lld)", ss->url,
           spe__store_sqlite_schema->nsteps, (long long)unfinished, (long long)ss->last_seq);
  return 0;
}

int spe__store_sqlite_open(struct store **out, const char *where, const struct logger *lg,
                           char **msg) {
  *out = NULL;
  if (where[0] == '\0') {
    spe__msg_set(msg, "the sqlite store needs a path: sqlite:PATH");
    return SPE_EURL;
  }
  struct sqlite_store *ss = calloc(1, sizeof *ss);
  if (ss == NULL) return SPE_ENOMEM;
  ss->base.ops = &spe__store_sqlite_ops;
  ss->lock_fd = -1;
  if (lg) ss->log = *lg;
  ss->path = strdup(where);
  ss->url = spe__msg_new("sqlite:%s", where);
  int rc = ss->path && ss->url ? open_store(ss, msg) : SPE_ENOMEM;
  if (rc != 0) {
    free_store(ss);
    return rc;
  }
  *out = &ss->base;
  return 0;
}

void spe__store_sqlite_close(struct store *st) {
  if (st != NULL) free_store((struct sqlite_store *)st);
}
