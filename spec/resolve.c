/*
** resolve.c -- names to spec files.
*/
#include "spec/spec.h"
#include "util/err.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *qsr_spec_config_dir(void) {
  static char dir[PATH_MAX];
  const char *env = getenv("QSR_CONFIG_DIR");
  if (env && *env) return env;
  if (is_dir("configs")) return "configs";
  ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 16);
  if (n > 0) {
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash) {
      strcpy(slash + 1, "configs");
      if (is_dir(dir)) return dir;
    }
  }
  return "configs";
}

int qsr_spec_resolve(const char *kind, const char *name, char *out, size_t cap, char **err) {
  size_t n = strlen(name);
  if (!n) return qsr_errf(err, QSR_ERR_USAGE, "empty %s name", kind);
  if (strchr(name, '/') || (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"))) {
    if ((size_t)snprintf(out, cap, "%s", name) >= cap) return qsr_errf(err, QSR_ERR_USAGE, "%s: path too long", name);
  } else if ((size_t)snprintf(out, cap, "%s/%s/%s.yaml", qsr_spec_config_dir(), kind, name) >= cap) {
    return qsr_errf(err, QSR_ERR_USAGE, "%s: name too long", name);
  }
  if (access(out, R_OK) != 0) {
    if (strchr(name, '/')) return qsr_errf(err, QSR_ERR_IO, "%s: no such file", out);
    char kind1[32];
    snprintf(kind1, sizeof kind1, "%s", kind);
    size_t kl = strlen(kind1);
    if (kl > 1 && kind1[kl - 1] == 's') kind1[kl - 1] = '\0';
    return qsr_errf(err, QSR_ERR_IO, "unknown %s '%s' (no %s; `qsr list %s` shows the known ones)", kind1, name, out, kind);
  }
  return QSR_OK;
}
