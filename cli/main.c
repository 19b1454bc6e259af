/*
** main.c -- `qsr SUBCOMMAND ...`: dispatch, top-level help, shared helpers.
*/
#include "cli/cli.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} cmds[] = {
  { "list", qsr_cmd_list, "list devices | models | designs | quality | keys" },
  { "predict", qsr_cmd_predict, "predict latency, memory, energy and quality of one design point" },
  { "sweep", qsr_cmd_sweep, "evaluate a design space into SQLite (resumable, shardable)" },
  { "merge", qsr_cmd_merge, "combine shard databases of the same sweep" },
  { "pareto", qsr_cmd_pareto, "Pareto-optimal designs from a results database" },
  { "plot", qsr_cmd_plot, "gnuplot figures: pareto, ablation, breakdown, validation, cdf, timeline" },
  { "deploy", qsr_cmd_deploy, "write (or --check) the deployment config of a chosen design" },
  { "bench", qsr_cmd_bench, "time the C kernels on this machine into a measurements table" },
  { "calibrate", qsr_cmd_calibrate, "fit a device's efficiency parameters to measured kernel calls" },
  { "validate", qsr_cmd_validate, "predicted vs measured on held-out kernel calls" },
  { "import", qsr_cmd_import, "read llama-bench or CSV end-to-end measurements into a measurements table" },
  { "run", qsr_cmd_run, "run a deployment config on this machine's kernels; measured vs predicted" },
  { "simulate", qsr_cmd_simulate, "replay a request trace through a simulated serving engine" },
};

static void usage(FILE *f) {
  fprintf(f,
          "qsr %s -- which mix of quantization (Q), sparse attention (S) and expert routing (R)\n"
          "gives the lowest latency and memory at acceptable quality on a device.\n\n"
          "usage: qsr COMMAND [options]   (qsr COMMAND --help for each)\n\ncommands:\n",
          QSR_VERSION);
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
  fprintf(f,
          "\nexamples:\n"
          "  qsr list devices\n"
          "  qsr predict -d orin-nx-16g -m llama-7b -c configs/designs/ablation-qsr.yaml\n"
          "  qsr predict -d a100-80g -m mixtral-8x7b --set quant.weights.bits=4 --set runtime.batch=16 --json\n"
          "\nspecs are read from $QSR_CONFIG_DIR, ./configs, or configs/ beside the binary.\n");
}

int qsr_cli_fail(int rc, char *msg) {
  fprintf(stderr, "qsr: %s\n", msg ? msg : qsr_errstr(rc));
  free(msg);
  return rc == QSR_ERR_USAGE ? 2 : 1;
}

void qsr_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

int main(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return 2; }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) { printf("qsr %s\n", QSR_VERSION); return 0; }
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "qsr: unknown command '%s' (qsr --help lists them)\n", argv[1]);
  return 2;
}
