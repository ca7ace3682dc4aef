/*
 * A command's result from its stdout (SPEC §2): the JSON value when the whole
 * of stdout is exactly one JSON value (whitespace around it allowed), else stdout
 * as a string with one trailing newline ("\n" or "\r\n") removed. Bytes that are
 * not valid UTF-8 become U+FFFD in the string, so that binary output does not
 * fail the task.
 */
#include "exec/cmd_internal.h"
#include "exec/utf8.h"

#include <string.h>

json_t *spe__cmd_result_parse(const char *buf, size_t len) {
  if (len == 0) return json_string("");

  /* A raw NUL byte is never part of JSON text, but jansson takes one at the
   * very end for the end of its input ("3\0" would read as 3): rule it out. */
  if (memchr(buf, '\0', len) == NULL) {
    /* Without JSON_DISABLE_EOF_CHECK jansson insists that nothing but
     * whitespace follows the value, which is the "whole of stdout" rule.
     * JSON_ALLOW_NUL: "\u0000" inside a string is valid JSON. */
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v != NULL) return v;
  }

  if (buf[len - 1] == '\n') {
    len--;
    if (len > 0 && buf[len - 1] == '\r') len--;
  }
  return spe__json_string_lossy(buf, len);
}
