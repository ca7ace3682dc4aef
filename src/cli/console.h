/*
 * stderr, shared by everything that writes to it during a run: the library's
 * log callback (any thread), the event lines and the progress line (the event
 * delivery thread) and the main thread.
 *
 * On a terminal, a status line (the progress) may sit at the bottom, rewritten
 * in place with "\r". A log line first erases it, then is printed, then the
 * status line is drawn again below it, so that the two never mix. Each line is
 * written with one write(2), so lines from several threads never interleave.
 * One mutex guards the status line and the writes.
 */
#ifndef SPE_CLI_CONSOLE_H
#define SPE_CLI_CONSOLE_H

/* Whether stderr (or the fd of console_set_fd) is a terminal (decided once, at
 * the first call). */
int console_is_tty(void);

/* Print lines on `fd` instead of stderr (`spe watch` prints its event lines on
 * stdout). Call before anything is printed. */
void console_set_fd(int fd);

/* The errno of the first write that failed (0: none), for a caller whose lines
 * are its output and must notice a closed pipe. */
int console_error(void);

/* Print one line (a newline is added) on stderr, keeping the status line below
 * it. Any thread. */
void console_line(const char *line);

/* Replace the status line (terminal only; ignored otherwise). NULL or "" erases
 * it. With `draw` 0 the new text is only kept, to be shown by the next line
 * printed or the next drawing call (this is how redraws are rate-limited
 * without a line ever being followed by a stale status). Any thread. */
void console_status(const char *status, int draw);

#endif
