/*
** host.c -- the `host` device: this machine, measured on the spot.
**
** `-d host` (any command that takes a device) reads <configs>/devices/host.yaml.
** When that file is missing, or was measured on another CPU or thread count
** (its "host-signature" line), qsr measures the machine -- copy bandwidth
** (STREAM-style, read + write), the fp32 FMA peak of a vector microkernel,
** the thread pool's dispatch cost, cores, last-level cache, memory -- and
** writes the file, so later runs reuse it. Delete it to measure again.
** Efficiencies are left to `qsr calibrate` (host.calibrated.yaml).
*/
#include "cli/cli.h"
#include "kernels/cpu/kbench.h"
#include "spec/spec.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void qsr_cli_cpu_desc(char *buf, size_t n, int threads) {
  char line[512], model[256] = "unknown CPU";
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    char *c = strchr(line, ':');
    if (c && !strncmp(line, "model name", 10)) {
      snprintf(model, sizeof model, "%s", c + 2);
      model[strcspn(model, "\n")] = 0;
      break;
    }
  }
  if (f) fclose(f);
  snprintf(buf, n, "%s (%d threads)", model, threads);
}

static int signature_matches(const char *path, const char *sig) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[512];
  int ok = 0;
  while (!ok && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!strncmp(line, "# host-signature: ", 18)) ok = !strcmp(line + 18, sig);
  }
  fclose(f);
  return ok;
}

static int measure_host(const char *path, const char *sig, int threads, char **err) {
  qsr_pool *pool = qsr_pool_new(threads);
  if (!pool) return qsr_errf(err, QSR_ERR_NOMEM, "host: cannot start %d threads", threads);
  fprintf(stderr, "qsr: measuring this machine for device 'host' (copy bandwidth, FMA peak, dispatch) -> %s\n", path);
  double copy = qsr_kbench_copy_gbps(pool), fma = qsr_kbench_fma_gflops(pool), disp = qsr_kbench_dispatch_us(pool);
  qsr_pool_free(pool);
  if (!(copy > 0) || !(fma > 0)) return qsr_errf(err, QSR_ERR_NOMEM, "host: measurement buffers could not be allocated");
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  double mem_gb = pages > 0 && psz > 0 ? (double)pages * psz / 1e9 : 8;
  long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
  double llc_mb = llc > 0 ? llc / 1e6 : 32;
  char tmp[1024], when[32];
  time_t now = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return qsr_errf(err, QSR_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
  fprintf(f,
          "# This machine, measured by qsr %s at %s (cli/host.c); delete this file to measure again.\n"
          "# host-signature: %s\n"
          "# [M] measured here on the spot; [OS] read from sysconf; [E] estimate (no power sensor is read).\n"
          "device:\n"
          "  name: host\n"
          "  kind: cpu\n"
          "  memory_gb: %.3f            # [OS] physical pages x page size\n"
          "  usable_gb: %.3f            # 80%% of memory_gb: the OS, page cache and qsr itself keep the rest -- default\n"
          "  bw_gbps: %.2f              # [M] copy of 256 MiB, read + write bytes / median time, all threads (STREAM-style)\n"
          "  l2_mb: %.1f                # [OS] last-level cache\n"
          "  units: %d                  # [OS] threads used (online CPUs)\n"
          "  peak_tflops:\n"
          "    fp32: %.5f              # [M] 8 independent 8-wide FMA chains per thread, all threads (kbench fma_peak)\n"
          "    # no fp16 arithmetic or matrix units: fp16 work runs on the fp32 FMA path\n"
          "  launch_us: %.3f            # [M] one empty parallel step of the thread pool (dispatch + join)\n"
          "  sync_us: %.3f              # [M] same figure: a phase ends with one pool join\n"
          "  tdp_w: %.0f                 # [E] 15 W per thread, for energy figures only\n"
          "  idle_w: %.0f                # [E] a third of tdp_w\n",
          QSR_VERSION, when, sig, mem_gb, 0.8 * mem_gb, copy, llc_mb, threads, fma / 1e3, disp, disp,
          15.0 * threads, 5.0 * threads);
  int bad = ferror(f);
  if (fclose(f) || bad) { remove(tmp); return qsr_errf(err, QSR_ERR_IO, "%s: write failed", tmp); }
  if (rename(tmp, path)) {
    int rc = qsr_errf(err, QSR_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    remove(tmp);
    return rc;
  }
  fprintf(stderr, "qsr: host: copy %.1f GB/s, fp32 FMA %.1f GFLOP/s, dispatch %.2f us, %d threads\n", copy, fma,
          disp, threads);
  return QSR_OK;
}

int qsr_cli_device(const char *name, struct qsr_device *dev, char *path, size_t cap, char **err) {
  int rc;
  if (!strcmp(name, "host")) {
    snprintf(path, cap, "%s/devices/host.yaml", qsr_spec_config_dir());
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    char sig[384];
    qsr_cli_cpu_desc(sig, sizeof sig, threads);
    if (!signature_matches(path, sig) && (rc = measure_host(path, sig, threads, err))) return rc;
  } else if ((rc = qsr_spec_resolve("devices", name, path, cap, err))) {
    return rc;
  }
  return qsr_device_load(path, dev, err);
}
