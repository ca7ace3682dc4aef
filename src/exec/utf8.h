/*
 * Turning bytes a process wrote into JSON strings. Jansson accepts only valid
 * UTF-8, but a command may write anything (binary data, Latin-1 file names), and
 * that must not fail the task: invalid sequences are replaced by U+FFFD.
 */
#ifndef SPE_EXEC_UTF8_H
#define SPE_EXEC_UTF8_H

#include <jansson.h>
#include <stddef.h>

/* The length of the longest prefix of s[0..n) that is well-formed UTF-8 (n when
 * all of it is). */
size_t spe__utf8_valid_len(const char *s, size_t n);

/* A new JSON string holding s[0..n), where each maximal ill-formed subsequence
 * (Unicode's "substitution of maximal subparts") is replaced by U+FFFD. NUL bytes
 * are kept. Returns NULL only when out of memory. */
json_t *spe__json_string_lossy(const char *s, size_t n);

#endif
