/*
 * Every limit of SPE in one place: what it bounds, its value, and why that
 * value. docs/limits.md is the same table as a user sees it (the message at the
 * limit, whether it can be changed); keep the two in step.
 *
 * A limit is there so that an input too big for the machine, or for a later
 * step that would refuse it less clearly (the kernel's execve(), the store),
 * meets one clear refusal up front, naming the limit and the offending thing,
 * before anything is stored or run. Each is checked where the thing enters:
 *   - job descriptions: the job model (src/job), through struct job_limits, so
 *     that spe_validate_text(), every submit and `spe run` refuse the same jobs
 *     with the same message (SPE_ELIMIT, exit status 2 in `spe run`);
 *   - job files: `spe run` and `spe validate` before reading them (src/cli);
 *   - unfinished jobs: the engine's submit (src/engine/engine.c);
 *   - a running command's output: the command executor (src/exec).
 * A job read back from the store on recovery is held to no limit: it was
 * accepted once, and a stricter build must not lose it.
 */
#ifndef SPE_BASE_LIMITS_H
#define SPE_BASE_LIMITS_H

#include <stddef.h>

/* ---- Job descriptions (src/job; not settable) ----------------------------- */

/* The bytes of one job description: a job file, the text given to
 * spe_submit_text()/spe_submit_ex()/spe_validate_text(), or the canonical text
 * of a document given to spe_submit_json(). 64 MiB is far beyond any job people
 * write (a 100,000-task job is a few MiB) and bounds what one request can make
 * the library hold: the parsed document takes several times the text. */
#define SPE_MAX_JOB_BYTES ((size_t)64 * 1024 * 1024)

/* Tasks in one job. A task costs a few hundred bytes of model, run state and
 * stored rows beside its text; a million of them is hundreds of MiB, and the
 * engine keeps every job's model in memory while it runs. */
#define SPE_MAX_TASKS 1000000u

/* Dependencies (distinct `enables` entries) in one job: 8 bytes each in the
 * model (both directions), so ten million is 80 MiB. */
#define SPE_MAX_EDGES 10000000u

/* The bytes of a job's or a task's name. Names appear in every event, log line
 * and message; a name is an identifier, not a document. */
#define SPE_MAX_NAME_BYTES 1024u

/* The bytes of one string handed to execve(): a `cmd` (one argument of
 * /bin/sh -c), one `argv` element, one `env` entry as KEY=VALUE. Linux refuses
 * a longer single string (MAX_ARG_STRLEN, 32 pages of 4 KiB, counting the
 * NUL) with E2BIG; refusing it here says which field it is. */
#define SPE_MAX_ARG_STRING_BYTES ((size_t)128 * 1024 - 1)

/* The bytes of one task's command line and extra environment together, counted
 * the way the kernel counts them against ARG_MAX: each string's bytes, its NUL
 * and its pointer (8 bytes). A `cmd` counts with "sh" and "-c"; the job's `env`
 * counts for every task. ARG_MAX is usually 2 MiB (a quarter of the 8 MiB stack
 * limit); 1 MiB leaves the other half to the environment SPE inherits. */
#define SPE_MAX_COMMAND_BYTES ((size_t)1024 * 1024)
/* What one string costs in that count beside its bytes: its NUL and pointer. */
#define SPE_ARG_OVERHEAD_BYTES ((size_t)1 + sizeof(char *))

/* Variables in one `env` object (the job's or a task's). */
#define SPE_MAX_ENV_VARS 1024u

/* How deeply a JSON document may nest: jansson's parser stops at this depth
 * (JSON_PARSER_MAX_DEPTH), and the canonical text of a document built through
 * the API is held to the same. A job's own objects take 3 levels, so an `arg`
 * may nest 2045 deep. A command's stdout nested deeper is not parsed: the
 * result is then stdout as a string (SPEC §2). */
#define SPE_MAX_JSON_DEPTH 2048

/* ---- Executor (settable through spe_options) ------------------------------ */

/* The default of spe_options.max_unfinished_jobs: jobs submitted or running in
 * one executor at once. Each keeps its model and run state in memory until it
 * finishes; past this many, a submit is refused (SPE_ELIMIT) instead of letting
 * a flood of submits exhaust memory. Recovered jobs count too, but recovery
 * itself is never refused. */
#define SPE_DEFAULT_MAX_UNFINISHED_JOBS ((size_t)100000)

/* The default of spe_options.max_result_bytes: a command's stdout (its result)
 * larger than this fails the attempt (kind "error"). The result is held in
 * memory, stored, and sent to every downstream task and subscriber. */
#define SPE_DEFAULT_MAX_RESULT ((size_t)16 * 1024 * 1024)

/* The default of spe_options.function_memory_limit: the address space
 * (RLIMIT_AS) of one worker process of process isolation. A function that leaks
 * or runs away with memory then fails its own task (its allocations fail, and
 * it crashes or reports the failure) long before the machine runs short. 4 GiB
 * is far above what a task function should need while leaving room for the
 * address space a program's libraries map without using it. */
#define SPE_DEFAULT_FUNCTION_MEMORY ((size_t)4 * 1024 * 1024 * 1024)

/* ---- Queries (spe_jobs_list, spe_events_since; not settable) --------------- */

/* Jobs in one page of spe_jobs_list: at most this many, this many when the
 * caller says 0. A page is built in memory (and, for the memory store, by the
 * engine thread): a bound keeps one call short; more come with the cursor. */
#define SPE_MAX_LIST_JOBS 1000u
#define SPE_DEFAULT_LIST_JOBS 100u

/* Events in one answer of spe_events_since, and its default. A replay costs
 * about 2 µs per event (parsing the stored JSON) and holds the store's reader
 * for its duration: 10,000 keep it near 20 ms; a client pages through more. */
#define SPE_MAX_REPLAY_EVENTS 10000u
#define SPE_DEFAULT_REPLAY_EVENTS 1000u

/* ---- Commands (src/exec; not settable) ------------------------------------ */

/* The stderr kept in a failed attempt's error: its last this many bytes. Enough
 * for the message that explains a failure; stderr is read and dropped as it
 * comes, so a task may write any amount. */
#define SPE_STDERR_KEEP 4096

#endif
