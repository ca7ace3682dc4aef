/* The `spe` program's subcommands and the constants they share. */
#ifndef SPE_CLI_CLI_H
#define SPE_CLI_CLI_H

/* The state store `spe run` uses when --state is not given. The only place
 * this default is written down (docs/cli.md quotes it). */
#define CLI_DEFAULT_STATE_URL "sqlite:.spe/state.db"

/* The socket `spe serve` listens on and its clients look for by default
 * (docs/server.md): $XDG_RUNTIME_DIR/spe.sock when XDG_RUNTIME_DIR is an
 * absolute path, else .spe/spe.sock. Malloc'd (NULL: out of memory). */
char *cli_default_socket_path(void);

#ifndef SPE_VERSION
#define SPE_VERSION "0.0.0"
#endif

/* Each takes the arguments from the subcommand's name on (argv[0] is "run")
 * and returns the program's exit status. */
int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* The clients of `spe serve` (client_*.c). */
int cmd_submit(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_result(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_prune(int argc, char **argv);

#endif
