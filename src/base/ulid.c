#include "base/ulid.h"

#include "base/clock.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t ulid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint8_t last_rand[10];

static void fill_random(uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n <= 0) {
      /* getrandom cannot fail for small requests once the pool is ready; fall
       * back to the clock so that an id is still unique within this process. */
      uint64_t t = spe__mono_ns();
      for (; got < len; got++, t >>= 3) buf[got] ^= (uint8_t)t;
      return;
    }
    got += (size_t)n;
  }
}

void spe__ulid_new(char out[SPE_ULID_LEN + 1]) {
  uint8_t bytes[16];
  int64_t ms = spe__now_ms();

  pthread_mutex_lock(&ulid_lock);
  if (ms <= last_ms) {
    /* Same millisecond (or the clock went back): keep the time, increment the
     * random part so that ids still sort in creation order. */
    ms = last_ms;
    for (int i = 9; i >= 0 && ++last_rand[i] == 0; i--) {
    }
  } else {
    last_ms = ms;
    fill_random(last_rand, sizeof last_rand);
  }
  for (int i = 0; i < 6; i++) bytes[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
  memcpy(bytes + 6, last_rand, 10);
  pthread_mutex_unlock(&ulid_lock);

  /* 128 bits as 26 base32 digits, most significant first (the first digit
   * holds the top 3 bits). */
  for (int i = 0; i < SPE_ULID_LEN; i++) {
    int bit = 128 - 5 * (SPE_ULID_LEN - i); /* may be negative for the first */
    unsigned v = 0;
    for (int b = 0; b < 5; b++) {
      int pos = bit + b;
      v <<= 1;
      if (pos >= 0) v |= (bytes[pos / 8] >> (7 - pos % 8)) & 1u;
    }
    out[i] = crockford[v];
  }
  out[SPE_ULID_LEN] = '\0';
}
