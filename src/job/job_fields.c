/* Checks shared by the job and its tasks: unknown fields, strings, `env`. */
#include "job/job_internal.h"

#include <string.h>

#include "base/limits.h"
#include "spe.h"

int spe__job_has_nul(const json_t *string) {
  return memchr(json_string_value(string), '\0', json_string_length(string)) != NULL;
}

void spe__job_members(json_t *obj, const char *const *names, size_t n, struct job_members *m) {
  for (size_t k = 0; k < n; k++) m->values[k] = NULL;
  m->unknown = NULL;
  m->unknown_len = 0;
  const char *key;
  size_t len;
  json_t *value;
  json_object_keylen_foreach(obj, key, len, value) {
    size_t k = 0;
    while (k < n && !(strlen(names[k]) == len && memcmp(names[k], key, len) == 0)) k++;
    if (k < n) {
      m->values[k] = value;
    } else if (m->unknown == NULL) {
      m->unknown = key;
      m->unknown_len = len;
    }
  }
}

int spe__job_unknown_field(struct job_parse *p, int64_t task, const struct job_members *m) {
  struct job_quoted q;
  return spe__job_error(p, task, "unknown field %s",
                        spe__job_quote(&q, m->unknown, m->unknown_len));
}

int spe__job_get_string(struct job_parse *p, int64_t task, const char *field, json_t *v,
                        int nonempty, char **out) {
  *out = NULL;
  if (v == NULL) return 0;
  if (!json_is_string(v) || (nonempty && json_string_length(v) == 0))
    return spe__job_error(p, task, "\"%s\" must be a %sstring", field,
                          nonempty ? "non-empty " : "");
  if (spe__job_has_nul(v))
    return spe__job_error(p, task, "\"%s\" must not contain a NUL character", field);
  *out = spe__job_strings_dup(p->def->strings, json_string_value(v), json_string_length(v));
  return *out == NULL ? spe__job_nomem(p) : 0;
}

/* One "KEY=VALUE" string in the store, or an error for a bad key or value. */
static int env_entry(struct job_parse *p, int64_t task, const char *key, size_t klen,
                     json_t *value, char **out) {
  struct job_quoted q;
  if (klen == 0) return spe__job_error(p, task, "\"env\" has an empty variable name");
  if (memchr(key, '=', klen) != NULL || memchr(key, '\0', klen) != NULL)
    return spe__job_error(p, task, "\"env\" variable name %s must not contain '=' or a NUL character",
                          spe__job_quote(&q, key, klen));
  if (!json_is_string(value))
    return spe__job_error(p, task, "\"env\" value of %s must be a string",
                          spe__job_quote(&q, key, klen));
  if (spe__job_has_nul(value))
    return spe__job_error(p, task, "\"env\" value of %s must not contain a NUL character",
                          spe__job_quote(&q, key, klen));
  size_t vlen = json_string_length(value);
  if (klen + 1 + vlen > p->lim->arg_bytes)
    return spe__job_limit_error(p, task, "\"env\" entry %s is %zu bytes (as KEY=VALUE); the "
                                "limit is %zu", spe__job_quote(&q, key, klen), klen + 1 + vlen,
                                p->lim->arg_bytes);
  char *s = spe__job_strings_alloc(p->def->strings, klen + 1 + vlen + 1);
  if (s == NULL) return spe__job_nomem(p);
  memcpy(s, key, klen);
  s[klen] = '=';
  memcpy(s + klen + 1, json_string_value(value), vlen);
  s[klen + 1 + vlen] = '\0';
  *out = s;
  return 0;
}

int spe__job_get_env(struct job_parse *p, int64_t task, json_t *env, char ***out,
                     size_t *bytes) {
  *out = NULL;
  if (bytes != NULL) *bytes = 0;
  if (env == NULL) return 0;
  if (!json_is_object(env))
    return spe__job_error(p, task, "\"env\" must be an object of strings");
  size_t n = json_object_size(env);
  if (n == 0) return 0;
  if (n > p->lim->env_vars)
    return spe__job_limit_error(p, task, "\"env\" has %zu variables; the limit is %u", n,
                                p->lim->env_vars);
  char **vars = spe__job_strings_alloc(p->def->strings, (n + 1) * sizeof *vars);
  if (vars == NULL) return spe__job_nomem(p);
  size_t k = 0;
  const char *key;
  size_t klen;
  json_t *value;
  json_object_keylen_foreach(env, key, klen, value) {
    int rc = env_entry(p, task, key, klen, value, &vars[k++]);
    if (rc < 0) return rc;
    if (bytes != NULL) *bytes += klen + 1 + json_string_length(value) + SPE_ARG_OVERHEAD_BYTES;
  }
  vars[k] = NULL;
  *out = vars;
  return 0;
}

int spe__job_check_name(struct job_parse *p, int64_t task, size_t len) {
  if (len <= p->lim->name_bytes) return 0;
  return spe__job_limit_error(p, task, "\"name\" is %zu bytes; the limit is %zu", len,
                              p->lim->name_bytes);
}
