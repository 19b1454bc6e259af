/*
** cli.h -- the qsr command: one function per subcommand.
** Each returns the process exit status (0 ok, 1 runtime error, 2 usage).
*/
#ifndef QSR_CLI_H
#define QSR_CLI_H

#include <stdio.h>

int qsr_cmd_list(int argc, char **argv);
int qsr_cmd_predict(int argc, char **argv);

/* Prints "qsr: msg" on stderr, frees msg, returns the exit status for rc. */
int qsr_cli_fail(int rc, char *msg);
/* Writes s as a JSON string literal. */
void qsr_json_str(FILE *f, const char *s);

#define QSR_VERSION "0.1.0"

#endif
