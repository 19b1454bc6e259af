/*
** cmd_simulate.c -- `qsr simulate`: replay a request trace through the
** serving simulator (sim/serve) on one device, model and design.
**
** Every combination of the comma lists given to --policy, --adapt and
** --rate-scale is one simulation; with --fluctuation each also runs without
** it to get the throughput retention. --find-max-rate bisects the rate
** scale for the highest load that still meets the SLOs. Results print as a
** table or JSON and go to SQLite (simulations, sim_requests, sim_timeline).
*/
#include "cli/cli.h"
#include "sim/serve.h"
#include "spec/spec.h"
#include "store/simstore.h"
#include "store/store.h"
#include "util/err.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SETS 64
#define MAX_LIST 16
#define REQ_BATCH 4096

static void usage(FILE *f) {
  fprintf(f,
    "usage: qsr simulate -d DEVICE -m MODEL [-c DESIGN] [--set key=value]... --trace FILE|synthetic:SPEC\n"
    "                    [options]\n\n"
    "Replays a request trace through a discrete-event serving simulation whose every iteration is\n"
    "costed by the cost model, and reports TTFT, TPOT, end-to-end latency, throughput and goodput.\n\n"
    "requests\n"
    "  --trace T            a trace file (Azure 2023 CSV, plain CSV, Mooncake JSONL; docs/simulate.md)\n"
    "                       or synthetic:poisson|gamma,rate=R[,cv=C,n=N,prompt=D,output=D,seed=S]\n"
    "  --rate-scale X[,Y]   multiply the arrival rate (a list sweeps the load); default 1\n"
    "  --limit N            only the first N requests\n"
    "  --find-max-rate      bisect the rate scale for the highest load meeting the SLOs (--slo-target)\n"
    "serving\n"
    "  --policy P[,P]       batching: static | continuous (default) | chunked\n"
    "  --max-batch N        sequences per iteration (default 256, as vLLM; free KV memory limits it too)\n"
    "  --chunk N            chunked: tokens per iteration (default 512)\n"
    "  --slo-ttft-ms X      time-to-first-token SLO (default none)\n"
    "  --slo-tpot-ms X      time-per-output-token SLO (default none)\n"
    "  --slo-target F       share of requests that must meet the SLOs for --find-max-rate (default 0.9)\n"
    "  --prefix-cache N     reuse prompt KV of N prefix blocks (Mooncake hash_ids; 0 = off)\n"
    "experts (MoE models)\n"
    "  --routing FILE       expert routing: a statistics file (layer,expert,count,...; a *-layer-summary.csv\n"
    "                       beside it adds token locality) from which a trace is synthesised, or a\n"
    "                       recorded token,layer,expert CSV\n"
    "  --routing-summary F  the layer summary to use (default: the one beside --routing, if any)\n"
    "  --expert-cache N     resident experts per layer (default: all if they fit, else as many as fit)\n"
    "  --cache P            lru (default) | lfu | pinned (the most popular, fixed)\n"
    "  --tier T             host | nvme | flash: where the other experts live (default the fastest)\n"
    "  --miss M             fetch (default) | lowbit (fetch a --miss-bits copy) | cpu (compute on the\n"
    "                       host CPU when cheaper than moving it)\n"
    "  --miss-bits B        lowbit: bits of the lower-tier copy (default 2)\n"
    "  --cpu-device D       miss cpu: the host CPU (default host: this machine, measured)\n"
    "  --overlap            expert transfers overlap compute (default: serial)\n"
    "resources and adaptation\n"
    "  --fluctuation F      a resource trace (configs/fluctuation/F.yaml or a path); adds retention\n"
    "  --adapt A[,A]        static (default) | pressure | token-aware\n"
    "  --level 'k=v;k=v'    an adaptation level: the design with these keys changed (repeat, cheapest\n"
    "                       last); level 0 is the design itself\n"
    "  --residency R        copies (default: each precision stored) | nested (bit-planes: memory of the\n"
    "                       widest, fewer planes read at lower levels)\n"
    "output\n"
    "  -o DB                SQLite output (default results/simulate.db); -o none writes nothing\n"
    "  --name LABEL         label of the runs in the database\n"
    "  --sample-dt S        time-series period in simulated seconds (default 1)\n"
    "  --seed N             seed of per-token draws and synthesised routing (default 1)\n"
    "  --quality NAME       quality profile (default: default; none disables the proxy)\n"
    "  --json               machine-readable summary\n"
    "  --quiet              no notes on stderr\n");
}

static int arg_val(int argc, char **argv, int *i, const char *s, const char *l, const char **out) {
  const char *a = argv[*i];
  size_t ll = strlen(l);
  if ((s && !strcmp(a, s)) || !strcmp(a, l)) {
    if (*i + 1 >= argc) return -1;
    *out = argv[++*i];
    return 1;
  }
  if (!strncmp(a, l, ll) && a[ll] == '=') { *out = a + ll + 1; return 1; }
  return 0;
}

static int pick_name(const char *v, const char *const *names, int n, const char *opt, int *out, char **err) {
  for (int i = 0; i < n; i++)
    if (!strcmp(v, names[i])) { *out = i; return QSR_OK; }
  char buf[256] = "";
  for (int i = 0; i < n; i++) {
    strncat(buf, names[i], sizeof buf - strlen(buf) - 1);
    if (i + 1 < n) strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
  }
  return qsr_errf(err, QSR_ERR_USAGE, "%s: '%s' is not one of %s", opt, v, buf);
}

/* Splits a comma list of names into indices. */
static int name_list(const char *v, const char *const *names, int n, const char *opt, int *out, int *nout,
                     char **err) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", v);
  *nout = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (*nout == MAX_LIST) return qsr_errf(err, QSR_ERR_USAGE, "%s: at most %d values", opt, MAX_LIST);
    int rc = pick_name(tok, names, n, opt, &out[*nout], err);
    if (rc) return rc;
    (*nout)++;
  }
  return *nout ? QSR_OK : qsr_errf(err, QSR_ERR_USAGE, "%s: empty list", opt);
}

static int num(const char *v, const char *opt, double lo, double hi, double *out, char **err) {
  char *end;
  double x = strtod(v, &end);
  if (end == v || *end || !(x >= lo && x <= hi))
    return qsr_errf(err, QSR_ERR_USAGE, "%s: '%s' is not a number in [%g, %g]", opt, v, lo, hi);
  *out = x;
  return QSR_OK;
}

/* ---- output sinks ------------------------------------------------------ */

struct sink {
  qsr_store *st;
  int64_t sim_id;
  struct qsr_req_rec *reqs;
  size_t n_reqs;
  struct qsr_sample *samples;
  size_t n_samples, cap_samples;
  int rc;
  char *err;
};

static void flush_reqs(struct sink *k) {
  if (k->st && !k->rc && k->n_reqs)
    k->rc = qsr_store_put_sim_requests(k->st, k->sim_id, k->reqs, k->n_reqs, &k->err);
  k->n_reqs = 0;
}

static void on_request(void *ud, const struct qsr_req_rec *r) {
  struct sink *k = ud;
  if (!k->st) return;
  k->reqs[k->n_reqs++] = *r;
  if (k->n_reqs == REQ_BATCH) flush_reqs(k);
}

static void on_sample(void *ud, const struct qsr_sample *s) {
  struct sink *k = ud;
  if (!k->st || k->rc) return;
  if (k->n_samples == k->cap_samples) {
    size_t cap = k->cap_samples ? 2 * k->cap_samples : 1024;
    struct qsr_sample *p = realloc(k->samples, cap * sizeof *p);
    if (!p) { k->rc = qsr_errf(&k->err, QSR_ERR_NOMEM, "out of memory for the time series"); return; }
    k->samples = p;
    k->cap_samples = cap;
  }
  k->samples[k->n_samples++] = *s;
}

static void json_pct(FILE *f, const char *key, const struct qsr_pct *p) {
  fprintf(f, "    \"%s\": {\"p50\": %.6g, \"p90\": %.6g, \"p99\": %.6g, \"max\": %.6g, \"mean\": %.6g}", key, p->p50,
          p->p90, p->p99, p->max, p->mean);
}

struct run {
  int policy, adapt;
  double rate;
  struct qsr_serve_summary s;
  int64_t sim_id;
  char note[256];
};

static void json_run(FILE *f, const struct run *r, int fluct) {
  const struct qsr_serve_summary *s = &r->s;
  fprintf(f, "  {\n    \"policy\": \"%s\", \"adapt\": \"%s\", \"rate_scale\": %.6g,\n", qsr_batching_names[r->policy],
          qsr_adapt_names[r->adapt], r->rate);
  fprintf(f,
          "    \"requests\": %lld, \"rejected\": %lld, \"tokens_in\": %lld, \"tokens_out\": %lld,\n"
          "    \"sim_s\": %.6g, \"throughput_tok_s\": %.6g, \"throughput_req_s\": %.6g, \"goodput_req_s\": %.6g,\n"
          "    \"slo_met_frac\": %.6g,\n",
          (long long)s->requests, (long long)s->rejected, (long long)s->tokens_in, (long long)s->tokens_out, s->sim_s,
          s->throughput_tok_s, s->throughput_req_s, s->goodput_req_s, s->slo_met_frac);
  json_pct(f, "ttft_ms", &s->ttft_ms);
  fputs(",\n", f);
  json_pct(f, "tpot_ms", &s->tpot_ms);
  fputs(",\n", f);
  json_pct(f, "e2e_ms", &s->e2e_ms);
  fputs(",\n", f);
  json_pct(f, "queue_ms", &s->queue_ms);
  fprintf(f,
          ",\n    \"tpot_std_ms\": %.6g, \"e2e_std_ms\": %.6g, \"iterations\": %.0f, \"mean_batch\": %.6g,\n"
          "    \"peak_mem_mb\": %.6g, \"quality_loss\": %.6g, \"prefix_hit_frac\": %.6g,\n",
          s->tpot_std_ms, s->e2e_std_ms, s->iterations, s->mean_batch, s->peak_mem_mb, s->quality_loss,
          s->prefix_hit_frac);
  if (s->expert_cache_hit_rate >= 0)
    fprintf(f, "    \"expert_cache_hit_rate\": %.6g, \"offload_gb\": %.6g, \"cpu_expert_frac\": %.6g,\n",
            s->expert_cache_hit_rate, s->offload_gb, s->cpu_expert_frac);
  if (fluct) fprintf(f, "    \"retention\": %.6g,\n", s->retention);
  fprintf(f, "    \"level_share\": [");
  for (int l = 0; l < s->n_levels; l++) fprintf(f, "%s%.4g", l ? ", " : "", s->level_share[l]);
  fprintf(f, "],\n    \"note\": ");
  qsr_json_str(f, r->note);
  fprintf(f, ",\n    \"sim_id\": %lld\n  }", (long long)r->sim_id);
}

static void print_run_row(const struct run *r, int fluct, int moe, int levels) {
  const struct qsr_serve_summary *s = &r->s;
  printf("  %-10s %-11s %6.3g %7lld %9.1f %8.3f %9.1f %9.1f %9.2f %9.2f %10.1f %5.1f%%", qsr_batching_names[r->policy],
         qsr_adapt_names[r->adapt], r->rate, (long long)s->requests, s->throughput_tok_s, s->goodput_req_s,
         s->ttft_ms.p50, s->ttft_ms.p99, s->tpot_ms.p50, s->tpot_ms.p99, s->e2e_ms.p99, 100 * s->slo_met_frac);
  if (moe && s->expert_cache_hit_rate >= 0) printf(" %6.1f%%", 100 * s->expert_cache_hit_rate);
  if (fluct) printf(" %6.1f%%", 100 * s->retention);
  printf(" %7.4f", s->quality_loss);
  if (levels > 1) {
    printf("  ");
    for (int l = 0; l < s->n_levels; l++) printf("%s%.0f", l ? "/" : "", 100 * s->level_share[l]);
  }
  printf("\n");
}

/* ---- one simulation ---------------------------------------------------- */

struct ctx {
  struct qsr_serve_cfg cfg;
  struct qsr_trace base;        /* as read */
  const char *trace_name, *routing_desc, *fluct_name, *design_name, *name;
  char args[1024];
  qsr_store *st;
  int quiet;
};

static int simulate(struct ctx *c, int policy, int adapt, double rate, const struct qsr_fluct *fl, int store,
                    struct run *out, char **err) {
  struct qsr_trace t = c->base;
  int rc = QSR_OK;
  t.req = NULL;
  struct sink k;
  memset(&k, 0, sizeof k);
  /* a scaled copy of the arrivals (blocks are shared, read-only) */
  t.req = malloc((c->base.n ? c->base.n : 1) * sizeof *t.req);
  if (!t.req) return qsr_errf(err, QSR_ERR_NOMEM, "out of memory");
  memcpy(t.req, c->base.req, c->base.n * sizeof *t.req);
  qsr_trace_scale(&t, rate);
  struct qsr_serve_cfg cfg = c->cfg;
  cfg.batching = policy;
  cfg.adapt = adapt;
  cfg.fluct = fl;
  if (store && c->st) {
    k.st = c->st;
    k.reqs = malloc(REQ_BATCH * sizeof *k.reqs);
    if (!k.reqs) { rc = qsr_errf(err, QSR_ERR_NOMEM, "out of memory"); goto out; }
    struct qsr_sim_meta meta = { .name = c->name, .device = cfg.dev->name, .model = cfg.m->name,
                                 .design = c->design_name, .trace = c->trace_name, .routing = c->routing_desc,
                                 .fluctuation = fl ? c->fluct_name : NULL, .policy = qsr_adapt_names[adapt],
                                 .batching = qsr_batching_names[policy], .args = c->args, .rate_scale = rate,
                                 .slo_ttft_ms = cfg.slo_ttft_ms, .slo_tpot_ms = cfg.slo_tpot_ms,
                                 .max_batch = cfg.max_batch };
    if ((rc = qsr_store_begin_sim(c->st, &meta, &k.sim_id, err))) goto out;
  }
  cfg.on_request = on_request;
  cfg.on_sample = on_sample;
  cfg.ud = &k;
  if ((rc = qsr_serve_run(&cfg, &t, &out->s, err))) goto out;
  flush_reqs(&k);
  if (k.rc) { rc = k.rc; *err = k.err; k.err = NULL; goto out; }
  if (k.st && k.n_samples && (rc = qsr_store_put_sim_samples(c->st, k.sim_id, k.samples, k.n_samples, err))) goto out;
  out->policy = policy;
  out->adapt = adapt;
  out->rate = rate;
  out->sim_id = k.st ? k.sim_id : 0;
  snprintf(out->note, sizeof out->note, "%s", cfg.note);
out:
  free(t.req);
  free(k.reqs);
  free(k.samples);
  free(k.err);
  return rc;
}

static int finish_store(struct ctx *c, const struct run *r, char **err) {
  if (!c->st || !r->sim_id) return QSR_OK;
  return qsr_store_finish_sim(c->st, r->sim_id, &r->s, err);
}

/* Meets the SLOs at this rate? */
static int meets(const struct qsr_serve_summary *s, double target) {
  return s->requests > 0 && s->rejected == 0 && s->slo_met_frac >= target;
}

int qsr_cmd_simulate(int argc, char **argv) {
  const char *dev_name = NULL, *model_name = NULL, *design = NULL, *quality = "default", *trace = NULL;
  const char *routing = NULL, *routing_summary = NULL, *fluct_name = NULL, *db_path = "results/simulate.db";
  const char *cpu_name = "host", *name = NULL;
  const char *sets[MAX_SETS], *levels[QSR_SERVE_LEVELS];
  int nsets = 0, nlevels = 1, json = 0, quiet = 0, find_max = 0;
  int policies[MAX_LIST] = { QSR_BATCHING_CONTINUOUS }, npol = 1;
  int adapts[MAX_LIST] = { QSR_ADAPT_STATIC }, nadapt = 1;
  double rates[MAX_LIST] = { 1 };
  int nrates = 1;
  double limit = 0, slo_target = 0.9, v_num;
  struct ctx c;
  memset(&c, 0, sizeof c);
  struct qsr_serve_cfg *cfg = &c.cfg;
  cfg->max_batch = 256;
  cfg->chunk_tokens = 512;
  cfg->expert_cache = -1;
  cfg->cache_policy = QSR_ECACHE_LRU;
  cfg->tier = -1;
  cfg->miss = QSR_MISS_FETCH;
  cfg->miss_bits = 2;
  cfg->sample_dt_s = 1;
  cfg->seed = 1;
  char *err = NULL;
  int rc = QSR_OK;
  for (int i = 1; i < argc; i++) {
    const char *v;
    int r;
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!strcmp(a, "--json")) { json = 1; continue; }
    if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
    if (!strcmp(a, "--overlap")) { cfg->overlap = 1; continue; }
    if (!strcmp(a, "--find-max-rate")) { find_max = 1; continue; }
#define OPT(S, L) ((r = arg_val(argc, argv, &i, S, L, &v)) < 0 ? (fprintf(stderr, "qsr simulate: %s needs a value\n", a), exit(2), 0) : r)
    if (OPT("-d", "--device")) { dev_name = v; continue; }
    if (OPT("-m", "--model")) { model_name = v; continue; }
    if (OPT("-c", "--config")) { design = v; continue; }
    if (OPT("-q", "--quality")) { quality = v; continue; }
    if (OPT("-t", "--trace")) { trace = v; continue; }
    if (OPT("-o", "--out")) { db_path = v; continue; }
    if (OPT(NULL, "--name")) { name = v; continue; }
    if (OPT(NULL, "--routing")) { routing = v; continue; }
    if (OPT(NULL, "--routing-summary")) { routing_summary = v; continue; }
    if (OPT(NULL, "--fluctuation")) { fluct_name = v; continue; }
    if (OPT(NULL, "--cpu-device")) { cpu_name = v; continue; }
    if (OPT("-s", "--set")) {
      if (nsets == MAX_SETS) return qsr_cli_fail(QSR_ERR_USAGE, strdup("too many --set options"));
      sets[nsets++] = v;
      continue;
    }
    if (OPT(NULL, "--level")) {
      if (nlevels == QSR_SERVE_LEVELS)
        return qsr_cli_fail(QSR_ERR_USAGE, strdup("--level: at most 7 levels besides the design"));
      levels[nlevels++] = v;
      continue;
    }
    if (OPT(NULL, "--policy") || OPT(NULL, "--batching")) {
      if ((rc = name_list(v, qsr_batching_names, QSR_BATCHING_COUNT, "--policy", policies, &npol, &err))) break;
      continue;
    }
    if (OPT(NULL, "--adapt")) {
      if ((rc = name_list(v, qsr_adapt_names, QSR_ADAPT_COUNT, "--adapt", adapts, &nadapt, &err))) break;
      continue;
    }
    if (OPT(NULL, "--rate-scale")) {
      char buf[512];
      snprintf(buf, sizeof buf, "%s", v);
      nrates = 0;
      for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        if (nrates == MAX_LIST) { rc = qsr_errf(&err, QSR_ERR_USAGE, "--rate-scale: at most %d values", MAX_LIST); break; }
        rc = num(tok, "--rate-scale", 1e-6, 1e6, &rates[nrates++], &err);
      }
      if (rc) break;
      continue;
    }
    if (OPT(NULL, "--cache")) {
      if ((rc = pick_name(v, qsr_ecache_policy_names, QSR_ECACHE_COUNT, "--cache", &cfg->cache_policy, &err))) break;
      continue;
    }
    if (OPT(NULL, "--miss")) {
      if ((rc = pick_name(v, qsr_miss_names, QSR_MISS_COUNT, "--miss", &cfg->miss, &err))) break;
      continue;
    }
    if (OPT(NULL, "--tier")) {
      static const char *const tiers[] = { "host", "nvme", "flash" };
      if ((rc = pick_name(v, tiers, 3, "--tier", &cfg->tier, &err))) break;
      continue;
    }
    if (OPT(NULL, "--residency")) {
      static const char *const res[] = { "copies", "nested" };
      if ((rc = pick_name(v, res, 2, "--residency", &cfg->nested, &err))) break;
      continue;
    }
    if (OPT(NULL, "--expert-cache")) {
      if (!strcmp(v, "auto")) { cfg->expert_cache = -1; continue; }
      if ((rc = num(v, "--expert-cache", 0, QSR_MAX_EXPERTS, &v_num, &err))) break;
      cfg->expert_cache = (int)v_num;
      continue;
    }
#define NUMOPT(L, LO, HI, DST)                                              \
  if (OPT(NULL, L)) {                                                       \
    if ((rc = num(v, L, LO, HI, &v_num, &err))) break;                      \
    DST;                                                                    \
    continue;                                                               \
  }
    NUMOPT("--max-batch", 1, 4096, cfg->max_batch = (int)v_num)
    NUMOPT("--chunk", 1, 1 << 20, cfg->chunk_tokens = (int)v_num)
    NUMOPT("--slo-ttft-ms", 0, 1e9, cfg->slo_ttft_ms = v_num)
    NUMOPT("--slo-tpot-ms", 0, 1e9, cfg->slo_tpot_ms = v_num)
    NUMOPT("--slo-target", 0, 1, slo_target = v_num)
    NUMOPT("--prefix-cache", 0, 1e9, cfg->prefix_blocks = (int64_t)v_num)
    NUMOPT("--miss-bits", 1, 8, cfg->miss_bits = (int)v_num)
    NUMOPT("--sample-dt", 1e-3, 1e6, cfg->sample_dt_s = v_num)
    NUMOPT("--seed", 0, 1e18, cfg->seed = (uint64_t)v_num)
    NUMOPT("--limit", 1, 1e12, limit = v_num)
#undef NUMOPT
#undef OPT
    fprintf(stderr, "qsr simulate: unknown option '%s'\n", a);
    usage(stderr);
    return 2;
  }
  if (rc) return qsr_cli_fail(rc, err);
  if (!dev_name || !model_name || !trace) {
    fprintf(stderr, "qsr simulate: -d DEVICE, -m MODEL and --trace are required\n");
    usage(stderr);
    return 2;
  }
  c.quiet = quiet;
  char path[PATH_MAX];
  static struct qsr_device dev, cpu;
  static struct qsr_model m;
  static struct qsr_quality q;
  static struct qsr_fluct fl;
  static struct qsr_design_builder b0, bl[QSR_SERVE_LEVELS];
  struct run *runs = NULL;
  int nruns = 0;
  if ((rc = qsr_cli_device(dev_name, &dev, path, sizeof path, &err))) return qsr_cli_fail(rc, err);
  if ((rc = qsr_spec_resolve("models", model_name, path, sizeof path, &err)) || (rc = qsr_model_load(path, &m, &err)))
    return qsr_cli_fail(rc, err);
  int use_q = strcmp(quality, "none") != 0;
  if (use_q && ((rc = qsr_spec_resolve("quality", quality, path, sizeof path, &err)) ||
                (rc = qsr_quality_load(path, &q, &err))))
    return qsr_cli_fail(rc, err);
  qsr_design_begin(&b0, &m);
  if (design && ((rc = qsr_spec_resolve("designs", design, path, sizeof path, &err)) ||
                 (rc = qsr_design_load(&b0, path, &err))))
    return qsr_cli_fail(rc, err);
  for (int i = 0; i < nsets; i++)
    if ((rc = qsr_design_set(&b0, sets[i], &err))) return qsr_cli_fail(rc, err);
  for (int l = 0; l < nlevels; l++) {
    bl[l] = b0;
    if (l) {
      char buf[1024];
      snprintf(buf, sizeof buf, "%s", levels[l]);
      for (char *save = NULL, *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        if ((rc = qsr_design_set(&bl[l], tok, &err))) {
          char *msg = NULL;
          qsr_errf(&msg, rc, "--level %d: %s", l, err);
          free(err);
          return qsr_cli_fail(rc, msg);
        }
      }
    }
    if ((rc = qsr_design_finish(&bl[l], &m, &err))) {
      char *msg = NULL;
      qsr_errf(&msg, rc, "%s: %s", l ? "--level" : design ? design : "design", err);
      free(err);
      return qsr_cli_fail(rc, msg);
    }
    cfg->levels[l] = &bl[l].d;
  }
  cfg->n_levels = nlevels;
  cfg->dev = &dev;
  cfg->m = &m;
  cfg->q = use_q ? &q : NULL;
  if (cfg->miss == QSR_MISS_CPU) {
    if ((rc = qsr_cli_device(cpu_name, &cpu, path, sizeof path, &err))) return qsr_cli_fail(rc, err);
    cfg->cpu = &cpu;
  }
  if (fluct_name && ((rc = qsr_spec_resolve("fluctuation", fluct_name, path, sizeof path, &err)) ||
                     (rc = qsr_fluct_load(path, &fl, &err))))
    return qsr_cli_fail(rc, err);
  /* trace */
  if ((rc = qsr_trace_load(trace, &c.base, &err))) return qsr_cli_fail(rc, err);
  if (limit > 0) qsr_trace_head(&c.base, (size_t)limit);
  /* routing */
  char rdesc[512] = "";
  if (routing) {
    FILE *f = fopen(routing, "r");
    char head[256] = "";
    if (!f) { rc = qsr_errf(&err, QSR_ERR_IO, "%s: cannot open the routing file", routing); goto out; }
    if (!fgets(head, sizeof head, f)) head[0] = 0;
    fclose(f);
    struct qsr_routing r;
    qsr_routing_resolve(&m, &bl[0].d, &r);
    if (!r.on) { rc = qsr_errf(&err, QSR_ERR_CONFIG, "--routing: %s has no experts", m.name); goto out; }
    if (!strncmp(head, "token,layer,expert", 18)) {
      rc = qsr_routes_load_csv(routing, m.layers, r.experts, r.kmax, &cfg->routes, &err);
    } else {
      char sum[PATH_MAX] = "";
      if (routing_summary) snprintf(sum, sizeof sum, "%s", routing_summary);
      else {
        const char *suf = strstr(routing, "-expert-counts.csv");
        if (suf) {
          snprintf(sum, sizeof sum, "%.*s-layer-summary.csv", (int)(suf - routing), routing);
          if (access(sum, R_OK)) sum[0] = 0;
        }
      }
      rc = qsr_routes_synth(routing, sum[0] ? sum : NULL, m.layers, r.experts, r.kmax, cfg->seed, &cfg->routes, &err);
    }
    if (rc) goto out;
    snprintf(rdesc, sizeof rdesc, "%s", qsr_routes_desc(cfg->routes));
  }
  c.trace_name = c.base.source;
  c.routing_desc = routing ? rdesc : NULL;
  c.fluct_name = fluct_name;
  c.design_name = design ? design : "baseline";
  c.name = name;
  {
    size_t o = 0;
    for (int i = 1; i < argc && o + 2 < sizeof c.args; i++)
      o += (size_t)snprintf(c.args + o, sizeof c.args - o, "%s%s", i > 1 ? " " : "", argv[i]);
  }
  if (strcmp(db_path, "none") && (rc = qsr_store_open(db_path, 0, &c.st, &err))) goto out;
  /* the runs */
  int total = npol * nadapt * nrates;
  runs = calloc((size_t)total + 64, sizeof *runs);
  if (!runs) { rc = qsr_errf(&err, QSR_ERR_NOMEM, "out of memory"); goto out; }
  for (int p = 0; p < npol; p++)
    for (int a = 0; a < nadapt; a++)
      for (int ri = 0; ri < nrates; ri++) {
        struct run *r = &runs[nruns];
        if ((rc = simulate(&c, policies[p], adapts[a], rates[ri], fluct_name ? &fl : NULL, 1, r, &err))) goto out;
        if (fluct_name) {
          struct run base;
          memset(&base, 0, sizeof base);
          if ((rc = simulate(&c, policies[p], adapts[a], rates[ri], NULL, 0, &base, &err))) goto out;
          r->s.retention = base.s.throughput_tok_s > 0 ? r->s.throughput_tok_s / base.s.throughput_tok_s : 0;
        }
        if ((rc = finish_store(&c, r, &err))) goto out;
        nruns++;
      }
  double max_rate = -1;
  if (find_max) {  /* bisection on the first policy/adapt; rate in [lo ok, hi not ok] */
    double lo = 0, hi = rates[0];
    struct run tr;
    for (int it = 0; it < 12; it++) {  /* grow until it fails */
      memset(&tr, 0, sizeof tr);
      if ((rc = simulate(&c, policies[0], adapts[0], hi, fluct_name ? &fl : NULL, 0, &tr, &err))) goto out;
      if (!meets(&tr.s, slo_target)) break;
      lo = hi;
      hi *= 2;
    }
    if (lo == hi) max_rate = hi;
    else {
      for (int it = 0; it < 10 && hi - lo > 0.01 * hi; it++) {
        double mid = lo > 0 ? sqrt(lo * hi) : hi / 2;
        if (lo == 0 && mid < 1e-4) break;
        memset(&tr, 0, sizeof tr);
        if ((rc = simulate(&c, policies[0], adapts[0], mid, fluct_name ? &fl : NULL, 0, &tr, &err))) goto out;
        if (meets(&tr.s, slo_target)) lo = mid;
        else hi = mid;
      }
      max_rate = lo;
    }
  }
  /* output */
  int moe = cfg->routes || runs[0].s.expert_cache_hit_rate >= 0;
  double base_rate = 0;
  if (c.base.n > 1 && c.base.req[c.base.n - 1].arrival_s > 0) base_rate = (c.base.n - 1) / c.base.req[c.base.n - 1].arrival_s;
  if (json) {
    FILE *f = stdout;
    if (nruns == 1 && !find_max) {
      json_run(f, &runs[0], fluct_name != NULL);
      fputs("\n", f);
    } else {
      fprintf(f, "{\n\"device\": ");
      qsr_json_str(f, dev.name);
      fprintf(f, ", \"model\": ");
      qsr_json_str(f, m.name);
      fprintf(f, ", \"trace\": ");
      qsr_json_str(f, c.base.source);
      if (find_max)
        fprintf(f, ",\n\"max_rate_scale\": %.6g, \"max_rate_req_s\": %.6g, \"slo_target\": %.6g", max_rate,
                max_rate * base_rate, slo_target);
      fprintf(f, ",\n\"runs\": [\n");
      for (int i = 0; i < nruns; i++) {
        json_run(f, &runs[i], fluct_name != NULL);
        fputs(i + 1 < nruns ? ",\n" : "\n", f);
      }
      fprintf(f, "]\n}\n");
    }
  } else {
    printf("qsr simulate: %s on %s, design %s%s\n", m.name, dev.name, c.design_name, nsets ? " + --set" : "");
    printf("  trace    %s: %zu requests, %.3g req/s at rate scale 1\n", c.base.source, c.base.n, base_rate);
    if (routing) printf("  routing  %s\n", rdesc);
    if (runs[0].note[0]) printf("  note     %s\n", runs[0].note);
    if (fluct_name) printf("  fluct    %s: %s\n", fl.name, fl.desc);
    if (nlevels > 1) printf("  levels   %d (level 0 = the design; %s)\n", nlevels, cfg->nested ? "nested bit-planes" : "stored copies");
    printf("  SLOs     TTFT %s, TPOT %s\n\n", cfg->slo_ttft_ms > 0 ? "set" : "none", cfg->slo_tpot_ms > 0 ? "set" : "none");
    printf("  %-10s %-11s %6s %7s %9s %8s %9s %9s %9s %9s %10s %6s", "policy", "adapt", "rate", "reqs", "tok/s",
           "good/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "E2E p99", "SLO");
    if (moe) printf(" %7s", "hit");
    if (fluct_name) printf(" %7s", "retain");
    printf(" %7s%s\n", "quality", nlevels > 1 ? "  levels %" : "");
    for (int i = 0; i < nruns; i++) print_run_row(&runs[i], fluct_name != NULL, moe, nlevels);
    printf("  (latencies in ms; good/s = requests/s meeting the SLOs; quality = proxy per output token%s)\n",
           nlevels > 1 ? "; levels % = share of iterations at L0/L1/..." : "");
    for (int i = 0; i < nruns; i++) {
      const struct qsr_serve_summary *s = &runs[i].s;
      if (s->rejected) printf("  run %d: %lld requests could never fit their KV cache and were rejected\n", i + 1, (long long)s->rejected);
    }
    const struct qsr_serve_summary *s = &runs[0].s;
    printf("\n  run 1: %lld tokens in, %lld out over %.1f s simulated; %.0f iterations, %.2f decoding per iteration;\n"
           "         peak memory %.0f MB",
           (long long)s->tokens_in, (long long)s->tokens_out, s->sim_s, s->iterations, s->mean_batch, s->peak_mem_mb);
    if (s->prefix_hit_frac > 0) printf("; prefix cache served %.1f%% of prompt tokens", 100 * s->prefix_hit_frac);
    if (s->expert_cache_hit_rate >= 0)
      printf(";\n         expert cache hit rate %.1f%%, %.2f GB moved", 100 * s->expert_cache_hit_rate, s->offload_gb);
    if (cfg->miss == QSR_MISS_CPU) printf(", %.1f%% of misses computed on the CPU", 100 * s->cpu_expert_frac);
    printf("\n");
    if (find_max)
      printf("\n  highest load meeting the SLOs for %.0f%% of requests (%s, %s): rate scale %.3g = %.3g req/s\n",
             100 * slo_target, qsr_batching_names[policies[0]], qsr_adapt_names[adapts[0]], max_rate,
             max_rate * base_rate);
    if (c.st) printf("  stored in %s (simulations, sim_requests, sim_timeline)\n", db_path);
  }
out:
  free(runs);
  qsr_routes_free(cfg->routes);
  qsr_trace_free(&c.base);
  qsr_store_close(c.st);
  if (rc) return qsr_cli_fail(rc, err);
  return 0;
}
