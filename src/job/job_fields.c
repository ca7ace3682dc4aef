/* Checks shared by the job and its tasks: unknown fields, strings, `env`. */
#include "job/job_internal.h"

#include <string.h>

#include "spe.h"

int spe__job_has_nul(const json_t *string) {
  return memchr(json_string_value(string), '\0', json_string_length(string)) != NULL;
}

static int is_known(const char *key, size_t len, const char *const *known) {
  for (; *known != NULL; known++) {
    if (strlen(*known) == len && memcmp(*known, key, len) == 0) return 1;
  }
  return 0;
}

int spe__job_check_fields(struct job_parse *p, int64_t task, json_t *obj,
                          const char *const *known) {
  const char *key;
  size_t len;
  json_t *value;
  json_object_keylen_foreach(obj, key, len, value) {
    if (!is_known(key, len, known)) {
      struct job_quoted q;
      return spe__job_error(p, task, "unknown field %s", spe__job_quote(&q, key, len));
    }
  }
  return 0;
}

int spe__job_get_string(struct job_parse *p, int64_t task, json_t *obj,
                        const char *field, int nonempty, char **out) {
  *out = NULL;
  json_t *v = json_object_get(obj, field);
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
  char *s = spe__job_strings_alloc(p->def->strings, klen + 1 + vlen + 1);
  if (s == NULL) return spe__job_nomem(p);
  memcpy(s, key, klen);
  s[klen] = '=';
  memcpy(s + klen + 1, json_string_value(value), vlen);
  s[klen + 1 + vlen] = '\0';
  *out = s;
  return 0;
}

int spe__job_get_env(struct job_parse *p, int64_t task, json_t *obj, char ***out) {
  *out = NULL;
  json_t *env = json_object_get(obj, "env");
  if (env == NULL) return 0;
  if (!json_is_object(env))
    return spe__job_error(p, task, "\"env\" must be an object of strings");
  size_t n = json_object_size(env);
  if (n == 0) return 0;
  char **vars = spe__job_strings_alloc(p->def->strings, (n + 1) * sizeof *vars);
  if (vars == NULL) return spe__job_nomem(p);
  size_t k = 0;
  const char *key;
  size_t klen;
  json_t *value;
  json_object_keylen_foreach(env, key, klen, value) {
    int rc = env_entry(p, task, key, klen, value, &vars[k++]);
    if (rc < 0) return rc;
  }
  vars[k] = NULL;
  *out = vars;
  return 0;
}
