/* Job ids: ULIDs (26 characters of Crockford base32: 48 bits of milliseconds,
 * then 80 random bits). They sort by creation time, which makes "newest first"
 * listings cheap; ids made within one millisecond by one process still sort in
 * creation order (the random part is incremented). */
#ifndef SPE_BASE_ULID_H
#define SPE_BASE_ULID_H

#define SPE_ULID_LEN 26

/* Write a new id and its NUL into out[27]. Thread-safe. */
void spe__ulid_new(char out[SPE_ULID_LEN + 1]);

#endif
