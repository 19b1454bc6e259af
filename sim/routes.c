/*
** routes.c -- expert routing traces (see routes.h): replay of a recorded CSV,
** or synthesis from per-layer popularity and token-to-token locality.
**
** Synthesis. Model layer l reads file layer floor(l * file_layers / layers).
** For each token the k slots of a layer are filled in order:
**   reuse  with probability rho: one of the previous token's experts that this
**          token has not taken yet, uniformly;
**   fresh  otherwise: a draw from the layer's draw weights w among the experts
**          not taken yet (alias table, gsl_ran_discrete; a collision is drawn
**          again, which is the renormalised draw).
**
** Draw weights. Drawing top_k without replacement in proportion to the file's
** shares s under-represents the hot experts (Mixtral: up to 0.014 of share),
** so w is fitted at init to make each expert's chance of being among the top_k
** exactly top_k * s_i (inclusion() below; fixed point w_i *= top_k s_i / inc_i).
** A call with k < top_k uses the same w: its experts are the first k draws of
** a top_k draw, which favours the popular ones as a router keeping its k best.
**
** Locality. The expected overlap (share of a token's k experts that the
** previous token chose too) is rho + (1 - rho) h, h the chance that a fresh
** draw lands on one of the previous token's experts still free. h has no
** closed form (it depends on the stationary law of the chosen sets) but moves
** little with rho, so rho is fitted by the fixed point
**   rho <- (overlap - h(rho)) / (1 - h(rho)),
** h measured on a seeded stream of FIT_TOKENS simulated tokens, the same
** stream at every step (common random numbers), each fresh slot counting its
** conditional hit probability rather than the 0/1 hit (lower variance).
** Reuse pulls the shares towards uniform (the reused expert follows s, a
** fresh first draw the more skewed w): the same steps also divide w by the
** stream's share / s, smoothed over the experts (fit_layer). Without a
** summary rho = 0 and none of this runs.
**
** Sequence state, the caller's block of qsr_routes_state_size() bytes:
**   struct seq_hdr | int32 prev[layers * top_k] | mt19937 state
** The gsl_rng in the header points at the state behind it; the pointer is set
** again on every call, so a block may be copied or moved.
*/
#include "sim/routes.h"

#include "util/err.h"

#include <errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTES_MAX_K 64       /* top_k bound: stack arrays in the draw */
#define FIT_TOKENS 20000      /* simulated tokens per layer for rho */
#define FIT_BURN 200          /* tokens before measuring (stationary sets) */
#define FIT_STEPS 16          /* fixed-point steps at most */
#define FIT_RHO_TOL 1e-4      /* well below the overlap noise of a stream */
#define FIT_SHARE_TOL 1e-3    /* relative, smoothed */
#define FIT_W_STEPS 200       /* weight fixed-point steps at most */
#define FIT_W_TOL 1e-10       /* max relative inclusion error */
#define QUAD_PANELS 12        /* geometric panels of the race integral */
#define QUAD_NODES 10         /* Gauss-Legendre nodes per panel */
#define REDRAWS 32            /* collisions before the exact renormalised draw */

struct slayer {
  gsl_ran_discrete_t *tab;   /* alias table over w; owned */
  double *w;                 /* draw weights, experts, sum 1; in r->w */
  double rho;                /* chance that a slot reuses a previous-token expert */
  double inv_rho;            /* 1 / rho (0 when rho = 0) */
  double overlap;            /* measured consecutive-token overlap; < 0 none */
};

struct qsr_routes {
  int recorded;              /* 1: replay of rec[] */
  int layers;                /* model MoE layers */
  int experts;               /* experts per layer */
  int top_k;                 /* model's k */
  char desc[1024];           /* qsr_routes_desc */
  double *pop;               /* layers x experts, rows sum to 1 */
  /* synthesised */
  int file_layers;
  int *fl_of;                /* model layer -> file layer index */
  struct slayer *sl;         /* file_layers */
  double *w;                 /* file_layers x experts draw weights */
  uint64_t seed;
  /* recorded */
  int64_t n_tokens;
  int32_t *rec;              /* n_tokens x layers x top_k, filled up to top_k */
  /* state block layout */
  size_t off_prev, off_rng, state_bytes;
};

struct seq_hdr {
  uint64_t cursor;           /* recorded: next token (mod n_tokens) */
  int prev_k;                /* synthesised: experts per layer in prev[]; 0 = none yet */
  gsl_rng rng;               /* .state -> the mt19937 state in this block */
};

/* ---------------------------------------------------------------- helpers */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* mt19937 in GSL takes 32 bits of seed: mix the 64-bit inputs down to them. */
static unsigned long seed32(uint64_t seed, uint64_t domain, uint64_t id) {
  return (unsigned long)(splitmix64(seed ^ splitmix64(domain ^ splitmix64(id))) >> 32);
}

static size_t round_up(size_t n) {
  size_t a = _Alignof(max_align_t);
  return (n + a - 1) / a * a;
}

static inline int has(const int *a, int n, int e) {
  for (int i = 0; i < n; i++)
    if (a[i] == e) return 1;
  return 0;
}

/* Splits line in place at commas; trims blanks and the line end. Returns the
** number of fields; stores the first max. */
static int split_csv(char *line, char **f, int max) {
  int n = 0;
  char *p = line;
  for (;;) {
    char *c = strchr(p, ',');
    if (c) *c = 0;
    while (*p == ' ' || *p == '\t') p++;
    char *e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) *--e = 0;
    if (n < max) f[n] = p;
    n++;
    if (!c) break;
    p = c + 1;
  }
  return n;
}

static int col_of(char **f, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(f[i], name)) return i;
  return -1;
}

static int parse_ll(const char *s, long long *v) {
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (end == s || *end || errno) return -1;
  *v = x;
  return 0;
}

static int parse_dbl(const char *s, double *v) {
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(x)) return -1;
  *v = x;
  return 0;
}

static int blank(const char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
  return *s == 0;
}

static void skip_bom(char *s) {
  if ((unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb && (unsigned char)s[2] == 0xbf)
    memmove(s, s + 3, strlen(s + 3) + 1);
}

static int check_model(int layers, int experts, int top_k, char **err) {
  if (layers < 1) return qsr_errf(err, QSR_ERR_CONFIG, "routes: layers %d < 1", layers);
  if (experts < 1) return qsr_errf(err, QSR_ERR_CONFIG, "routes: experts %d < 1", experts);
  if (top_k < 1 || top_k > experts || top_k > ROUTES_MAX_K)
    return qsr_errf(err, QSR_ERR_CONFIG, "routes: top_k %d outside 1..%d", top_k,
                    experts < ROUTES_MAX_K ? experts : ROUTES_MAX_K);
  return QSR_OK;
}

static qsr_routes *routes_new(int layers, int experts, int top_k) {
  qsr_routes *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->layers = layers;
  r->experts = experts;
  r->top_k = top_k;
  r->pop = calloc((size_t)layers * (size_t)experts, sizeof *r->pop);
  if (!r->pop) {
    free(r);
    return NULL;
  }
  return r;
}

void qsr_routes_free(qsr_routes *r) {
  if (!r) return;
  if (r->sl)
    for (int i = 0; i < r->file_layers; i++) gsl_ran_discrete_free(r->sl[i].tab);
  free(r->sl);
  free(r->w);
  free(r->fl_of);
  free(r->rec);
  free(r->pop);
  free(r);
}

int qsr_routes_recorded(const qsr_routes *r) { return r->recorded; }
const char *qsr_routes_desc(const qsr_routes *r) { return r->desc; }
int qsr_routes_layers(const qsr_routes *r) { return r->layers; }
int qsr_routes_experts(const qsr_routes *r) { return r->experts; }

const double *qsr_routes_popularity(const qsr_routes *r, int layer) {
  QSR_ASSERT(layer >= 0 && layer < r->layers);
  return r->pop + (size_t)layer * (size_t)r->experts;
}

/* ------------------------------------------------------------ the draw */

/* Exact renormalised draw from w among the experts not in taken[0..j)
** (uniform among them when they all weigh 0). */
static int draw_scan(const double *w, int n, gsl_rng *rng, const int *taken, int j) {
  double sum = 0;
  for (int e = 0; e < n; e++)
    if (!has(taken, j, e)) sum += w[e];
  if (sum > 0) {
    double u = gsl_rng_uniform(rng) * sum;
    int last = -1;
    for (int e = 0; e < n; e++) {
      if (has(taken, j, e) || w[e] <= 0) continue;
      last = e;
      if ((u -= w[e]) < 0) return e;
    }
    return last;                             /* rounding */
  }
  int pick = (int)gsl_rng_uniform_int(rng, (unsigned long)(n - j));
  for (int e = 0; e < n; e++)
    if (!has(taken, j, e) && pick-- == 0) return e;
  QSR_ASSERT(0);
  return -1;
}

/* What the fit measures on a simulated stream (see fit_layer). */
struct fitacc {
  double hit;                /* sum over fresh slots after a token of their chance to land on a free
                                previous-token expert */
  double fresh;              /* the number of those slots */
  double glob;               /* sum over fresh slots of 1 / (1 - w(taken)): each expert e was
                                expected w_e times this often... */
  double *corr;              /* experts: ...less w_e / (1 - w(taken)) for each slot it was already
                                taken at; plus 1 / (free previous experts) at each reuse slot it
                                was a candidate of. Expected count = w_e glob + corr[e]. */
};

/* Fills out[0..k) for one layer given the previous token's pv[0..pk).
** acc: NULL, or (fitting) the conditional expectations of the slots. */
static void draw_layer(const struct slayer *L, int n, gsl_rng *rng, const int32_t *pv, int pk, int k, int *out,
                       struct fitacc *acc) {
  for (int j = 0; j < k; j++) {
    int e = -1;
    if (L->rho > 0 && pk > 0) {
      double u = gsl_rng_uniform(rng);
      if (u < L->rho) {
        int avail[ROUTES_MAX_K], na = 0;
        for (int a = 0; a < pk; a++)
          if (!has(out, j, pv[a])) avail[na++] = pv[a];
        if (na) {
          int i = (int)(u * L->inv_rho * na);  /* u / rho is uniform on [0,1) again */
          e = avail[i < na ? i : na - 1];
          if (acc)
            for (int a = 0; a < na; a++) acc->corr[avail[a]] += 1.0 / na;
        }
      }
    }
    if (e < 0) {
      int exact = 0;
      if (acc) {
        double taken = 0, free_prev = 0;
        for (int a = 0; a < j; a++) taken += L->w[out[a]];
        if ((exact = 1 - taken > 1e-12)) {
          double g = 1 / (1 - taken);
          acc->glob += g;
          for (int a = 0; a < j; a++) acc->corr[out[a]] -= L->w[out[a]] * g;
          if (pk > 0) {
            for (int a = 0; a < pk; a++)
              if (!has(out, j, pv[a])) free_prev += L->w[pv[a]];
            acc->hit += free_prev * g;
            acc->fresh += 1;
          }
        }
      }
      for (int t = 0; t < REDRAWS; t++) {
        int d = (int)gsl_ran_discrete(rng, L->tab);
        if (!has(out, j, d)) {
          e = d;
          break;
        }
      }
      if (e < 0) e = draw_scan(L->w, n, rng, out, j);
      if (acc && !exact) acc->corr[e] += 1;   /* only weightless experts were left */
    }
    out[j] = e;
  }
}

void qsr_routes_token(qsr_routes *r, void *state, int k, int *ids) {
  QSR_ASSERT(k >= 1 && k <= r->top_k);
  struct seq_hdr *h = state;
  const int K = r->top_k, L = r->layers;
  if (r->recorded) {
    int64_t t = (int64_t)(h->cursor % (uint64_t)r->n_tokens);
    const int32_t *src = r->rec + (size_t)t * (size_t)L * (size_t)K;
    for (int l = 0; l < L; l++)
      for (int j = 0; j < k; j++) ids[l * k + j] = src[l * K + j];
    h->cursor++;
    return;
  }
  h->rng.state = (char *)state + r->off_rng;
  int32_t *prev = (int32_t *)((char *)state + r->off_prev);
  for (int l = 0; l < L; l++) {
    int *out = ids + l * k;
    int32_t *pv = prev + l * K;
    draw_layer(&r->sl[r->fl_of[l]], r->experts, &h->rng, pv, h->prev_k, k, out, NULL);
    for (int j = 0; j < k; j++) pv[j] = out[j];
  }
  h->prev_k = k;
}

size_t qsr_routes_state_size(const qsr_routes *r) { return r->state_bytes; }

void qsr_routes_seq_init(qsr_routes *r, void *state, uint64_t seq_id) {
  struct seq_hdr *h = state;
  memset(h, 0, sizeof *h);
  if (r->recorded) {
    /* spread the sequences over the trace; 2654435761 is prime (Knuth) */
    h->cursor = (uint64_t)((seq_id % (uint64_t)r->n_tokens) * 2654435761ULL % (uint64_t)r->n_tokens);
    return;
  }
  h->rng.type = gsl_rng_mt19937;
  h->rng.state = (char *)state + r->off_rng;
  gsl_rng_set(&h->rng, seed32(r->seed, 1, seq_id));
}

/* ------------------------------------------------------ fitting (synth) */

/* Inclusion probabilities of successive sampling: k draws without
** replacement, each in proportion to w among the experts left. With
** exponential clocks T_i ~ Exp(w_i) the k drawn are the first k to ring, so
**   inc_i = int_0^inf w_i exp(-w_i t) P(fewer than k others rang by t) dt,
** the probability a Poisson-binomial over the others (prefix x suffix counts,
** truncated below k). Experts of weight 0 never ring. The integrand decays at
** least as fast as exp(-m t), m the sum of the n' - k + 1 smallest nonzero
** weights (that many must still be waiting), so it is cut at 37 / m and
** integrated by Gauss-Legendre on panels halving towards 0 (the rates spread
** over orders of magnitude). Needs n' > k. */
static void inclusion(const double *w, int n, int k, const gsl_integration_glfixed_table *gl, double *inc,
                      double *scr) {
  double *pre = scr, *suf = pre + (size_t)(n + 1) * (size_t)k, *ex = suf + (size_t)(n + 1) * (size_t)k;
  double *q = ex + n, *srt = q + n;
  int nz = 0;
  for (int i = 0; i < n; i++) {
    inc[i] = 0;
    if (w[i] > 0) srt[nz++] = w[i];
  }
  /* smallest nz - k + 1 weights: partial selection is overkill for n <= 256 */
  for (int i = 1; i < nz; i++)
    for (int j = i; j > 0 && srt[j - 1] > srt[j]; j--) {
      double x = srt[j];
      srt[j] = srt[j - 1];
      srt[j - 1] = x;
    }
  double m = 0;
  for (int i = 0; i < nz - k + 1; i++) m += srt[i];
  double T = 37.0 / m;
  for (int p = 0; p < QUAD_PANELS; p++) {
    double lo = p ? T * ldexp(1, p - QUAD_PANELS) : 0, hi = T * ldexp(1, p + 1 - QUAD_PANELS);
    for (int g = 0; g < QUAD_NODES; g++) {
      double t, wt;
      gsl_integration_glfixed_point(lo, hi, (size_t)g, &t, &wt, gl);
      for (int j = 0; j < n; j++) {
        ex[j] = w[j] > 0 ? exp(-w[j] * t) : 1;
        q[j] = w[j] > 0 ? -expm1(-w[j] * t) : 0;
      }
      for (int c = 0; c < k; c++) pre[c] = suf[(size_t)n * k + c] = c == 0;
      for (int j = 0; j < n; j++) {
        const double *s = pre + (size_t)j * k;
        double *d = pre + (size_t)(j + 1) * k;
        d[0] = s[0] * ex[j];
        for (int c = 1; c < k; c++) d[c] = s[c] * ex[j] + s[c - 1] * q[j];
      }
      for (int j = n - 1; j >= 0; j--) {
        const double *s = suf + (size_t)(j + 1) * k;
        double *d = suf + (size_t)j * k;
        d[0] = s[0] * ex[j];
        for (int c = 1; c < k; c++) d[c] = s[c] * ex[j] + s[c - 1] * q[j];
      }
      for (int i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        const double *pa = pre + (size_t)i * k, *sb = suf + (size_t)(i + 1) * k;
        double g_i = 0, cum = 0;
        /* sum over a + b < k of pa[a] sb[b]: cum = sb[0..k-1-a] */
        for (int b = 0; b < k; b++) cum += sb[b];
        for (int a = 0; a < k; a++) {
          g_i += pa[a] * cum;
          cum -= sb[k - 1 - a];
        }
        inc[i] += wt * w[i] * ex[i] * g_i;
      }
    }
  }
}

/* Draw weights w (sum 1) for shares s (sum 1) such that drawing k without
** replacement includes expert i with probability k s_i. Where that cannot be
** (k s_i > 1, or no more than k experts with a share) w = s. Returns the
** number of fixed-point steps. */
static int fit_weights(const double *s, int n, int k, double *w, double *scr) {
  int nz = 0, feasible = 1;
  for (int i = 0; i < n; i++) {
    w[i] = s[i];
    nz += s[i] > 0;
    if (k * s[i] > 1 - 1e-9) feasible = 0;
  }
  if (k == 1 || nz <= k || !feasible) return 0;
  gsl_integration_glfixed_table *gl = gsl_integration_glfixed_table_alloc(QUAD_NODES);
  QSR_ASSERT(gl);
  double *inc = scr;
  int it;
  for (it = 1; it <= FIT_W_STEPS; it++) {
    inclusion(w, n, k, gl, inc, scr + n);
    double worst = 0, sum = 0;
    for (int i = 0; i < n; i++) {
      if (s[i] <= 0) continue;
      double target = k * s[i], rel = fabs(inc[i] / target - 1);
      if (rel > worst) worst = rel;
      w[i] *= target / inc[i];
      sum += w[i];
    }
    for (int i = 0; i < n; i++) w[i] /= sum;
    if (worst < FIT_W_TOL) break;
  }
  gsl_integration_glfixed_table_free(gl);
  return it;
}

/* Weighted least-squares polynomial of degree <= 2 through (x_e, y_e) with
** weights x_e over the n entries with x_e > 0; the degree drops where fewer
** distinct x are given. Writes the fitted y to fit[e] (1 where x_e = 0). */
static void smooth_ratio(const double *x, const double *y, int n, double *fit) {
  double mx = 0, sw = 0, sx2 = 0;
  int nd = 0;
  for (int e = 0; e < n; e++)
    if (x[e] > 0) {
      mx += x[e] * x[e];
      sw += x[e];
    }
  mx /= sw;                                  /* weighted mean of x */
  for (int e = 0; e < n; e++)
    if (x[e] > 0) sx2 += x[e] * (x[e] - mx) * (x[e] - mx);
  double sd = sqrt(sx2 / sw);
  for (int e = 0; e < n && nd < 3; e++) {    /* distinct x, up to 3 */
    int seen = 0;
    for (int f = 0; f < e; f++) seen |= x[f] > 0 && fabs(x[f] - x[e]) <= 1e-12 * x[e];
    nd += x[e] > 0 && !seen;
  }
  int m = nd < 3 ? nd : 3;                   /* coefficients */
  double A[3][4] = {{0}};
  for (int e = 0; e < n; e++) {
    if (x[e] <= 0) continue;
    double z = sd > 0 ? (x[e] - mx) / sd : 0, p[3] = {1, z, z * z};
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < m; j++) A[i][j] += x[e] * p[i] * p[j];
      A[i][m] += x[e] * p[i] * y[e];
    }
  }
  for (int i = 0; i < m; i++) {              /* Gauss-Jordan; SPD, no pivoting needed */
    double d = A[i][i];
    for (int j = i; j <= m; j++) A[i][j] /= d;
    for (int r = 0; r < m; r++) {
      if (r == i) continue;
      double f = A[r][i];
      for (int j = i; j <= m; j++) A[r][j] -= f * A[i][j];
    }
  }
  for (int e = 0; e < n; e++) {
    double z = sd > 0 ? (x[e] - mx) / sd : 0, p[3] = {1, z, z * z}, v = 0;
    for (int i = 0; i < m; i++) v += A[i][m] * p[i];
    fit[e] = x[e] > 0 ? v : 1;
  }
}

/* Locality of one layer (see the file comment): rho, and w corrected for
** what the reuse does to the shares s. Each step runs the same seeded
** stream with the current (rho, w), sets rho from the measured h, and
** divides w by the ratio (the stream's expected share) / s smoothed as a
** quadratic in s: the reuse favours experts by their popularity alone (by
** symmetry, equal shares are treated alike), and the smoothing keeps the
** stream's noise out of w (for 64 experts it is as large as the effect).
** Stops when rho moves less than FIT_RHO_TOL and the smoothed ratio is
** within FIT_SHARE_TOL of 1. */
static double fit_layer(struct slayer *L, const double *s, int n, int k, double overlap, uint64_t seed, int fl,
                        int32_t *pv, double *corr) {
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  QSR_ASSERT(rng);
  int out[ROUTES_MAX_K];
  /* start: independent tokens overlap sum_i inc_i^2 / k, inc_i = k s_i */
  double h = 0;
  for (int e = 0; e < n; e++) h += s[e] * s[e] * k;
  double rho = overlap > h ? (overlap - h) / (1 - h) : 0;
  for (int step = 0; step < FIT_STEPS; step++) {
    L->rho = rho;
    L->inv_rho = rho > 0 ? 1 / rho : 0;
    gsl_rng_set(rng, seed32(seed, 2, (uint64_t)fl));
    memset(corr, 0, (size_t)n * sizeof *corr);
    struct fitacc acc = {.corr = corr};
    int pk = 0;
    for (int t = 0; t < FIT_BURN + FIT_TOKENS; t++) {
      draw_layer(L, n, rng, pv, pk, k, out, t >= FIT_BURN ? &acc : NULL);
      for (int j = 0; j < k; j++) pv[j] = out[j];
      pk = k;
    }
    h = acc.fresh > 0 ? acc.hit / acc.fresh : 0;
    double next = overlap > h ? (overlap - h) / (1 - h) : 0;
    if (next > 0.999) next = 0.999;
    double worst = 0, sum = 0, slots = (double)k * FIT_TOKENS;
    double *ratio = corr + n, *fit = ratio + n;
    for (int e = 0; e < n; e++) ratio[e] = s[e] > 0 ? (L->w[e] * acc.glob + corr[e]) / slots / s[e] : 1;
    smooth_ratio(s, ratio, n, fit);
    for (int e = 0; e < n; e++) {
      double f = fit[e] < 0.5 ? 0.5 : fit[e] > 2 ? 2 : fit[e];   /* damp: x2 a step at most */
      if (fabs(f - 1) > worst) worst = fabs(f - 1);
      L->w[e] /= f;
      sum += L->w[e];
    }
    for (int e = 0; e < n; e++) L->w[e] /= sum;
    gsl_ran_discrete_free(L->tab);
    L->tab = gsl_ran_discrete_preproc((size_t)n, L->w);
    QSR_ASSERT(L->tab);
    int done = fabs(next - rho) < FIT_RHO_TOL && worst < FIT_SHARE_TOL;
    rho = next;
    if (done) break;
  }
  gsl_rng_free(rng);
  L->rho = rho;
  L->inv_rho = rho > 0 ? 1 / rho : 0;
  return rho;
}

/* ------------------------------------------------------- counts, summary */

struct crow { long long layer, expert; double count; int line; };

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

/* file layer value -> index in the sorted distinct values, or -1 */
static int fl_index(const long long *vals, int n, long long v) {
  const long long *p = bsearch(&v, vals, (size_t)n, sizeof *vals, cmp_ll);
  return p ? (int)(p - vals) : -1;
}

/* Reads the counts CSV into *share (file_layers x experts, rows sum to 1) and
** the sorted distinct layer values *vals. */
static int read_counts(const char *path, int experts, long long **vals_out, int *n_fl, double **share_out, char **err) {
  FILE *f = NULL;
  char *line = NULL, *fld[16];
  size_t cap = 0;
  struct crow *rows = NULL;
  size_t nrows = 0, rcap = 0;
  long long *vals = NULL;
  double *share = NULL;
  int rc = QSR_OK, lineno = 0, nfl = 0;
  long long max_e = -1;
  if (!(f = fopen(path, "r"))) {
    rc = qsr_errf(err, QSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  if (getline(&line, &cap, f) < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: empty file (header layer,expert,count expected)", path);
    goto out;
  }
  lineno = 1;
  skip_bom(line);
  int nh = split_csv(line, fld, 16);
  if (nh > 16) nh = 16;
  int cl = col_of(fld, nh, "layer"), ce = col_of(fld, nh, "expert"), cc = col_of(fld, nh, "count");
  if (cl < 0 || ce < 0 || cc < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: missing column '%s' (header must name layer, expert, count)", path,
                  cl < 0 ? "layer" : ce < 0 ? "expert" : "count");
    goto out;
  }
  int need = (cl > ce ? cl : ce) > cc ? (cl > ce ? cl : ce) : cc;
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    if (blank(line)) continue;
    int nf = split_csv(line, fld, 16);
    if (nf <= need) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expected %d fields, found %d", path, lineno, nh, nf);
      goto out;
    }
    struct crow c = {.line = lineno};
    if (parse_ll(fld[cl], &c.layer)) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer: '%s' is not an integer", path, lineno, fld[cl]);
      goto out;
    }
    if (parse_ll(fld[ce], &c.expert) || c.expert < 0 || c.expert > 65535) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expert: '%s' is not an integer in 0..65535", path, lineno,
                    fld[ce]);
      goto out;
    }
    if (parse_dbl(fld[cc], &c.count) || c.count < 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: count: '%s' is not a number >= 0", path, lineno, fld[cc]);
      goto out;
    }
    if (nrows == rcap) {
      size_t nc = rcap ? 2 * rcap : 1024;
      struct crow *p = realloc(rows, nc * sizeof *p);
      if (!p) {
        rc = qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", path);
        goto out;
      }
      rows = p;
      rcap = nc;
    }
    rows[nrows++] = c;
    if (c.expert > max_e) max_e = c.expert;
  }
  if (!nrows) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: no rows after the header", path);
    goto out;
  }
  if (!(vals = malloc(nrows * sizeof *vals))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  for (size_t i = 0; i < nrows; i++) vals[i] = rows[i].layer;
  qsort(vals, nrows, sizeof *vals, cmp_ll);
  for (size_t i = 0; i < nrows; i++)
    if (!nfl || vals[nfl - 1] != vals[i]) vals[nfl++] = vals[i];
  int ne = (int)max_e + 1;
  if (!(share = malloc((size_t)nfl * (size_t)ne * sizeof *share))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  for (size_t i = 0; i < (size_t)nfl * (size_t)ne; i++) share[i] = -1;
  for (size_t i = 0; i < nrows; i++) {
    double *s = share + (size_t)fl_index(vals, nfl, rows[i].layer) * ne + rows[i].expert;
    if (*s >= 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer %lld expert %lld repeated", path, rows[i].line,
                    rows[i].layer, rows[i].expert);
      goto out;
    }
    *s = rows[i].count;
  }
  for (int l = 0; l < nfl; l++) {
    double *s = share + (size_t)l * ne, sum = 0;
    for (int e = 0; e < ne; e++) {
      if (s[e] < 0) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: layer %lld has no row for expert %d (every expert 0..%d needed)",
                      path, vals[l], e, ne - 1);
        goto out;
      }
      sum += s[e];
    }
    if (sum <= 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: layer %lld has no selections (all counts 0)", path, vals[l]);
      goto out;
    }
    for (int e = 0; e < ne; e++) s[e] /= sum;
  }
  if (ne != experts) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: has %d experts per layer, the model %d", path, ne, experts);
    goto out;
  }
  *vals_out = vals;
  *share_out = share;
  *n_fl = nfl;
  vals = NULL;
  share = NULL;
out:
  if (f) fclose(f);
  free(line);
  free(rows);
  free(vals);
  free(share);
  return rc;
}

/* Reads consecutive_token_expert_overlap per file layer into ov[nfl]. */
static int read_summary(const char *path, const char *counts, const long long *vals, int nfl, double *ov,
                        char **err) {
  FILE *f = NULL;
  char *line = NULL, *fld[32];
  size_t cap = 0;
  int rc = QSR_OK, lineno = 1;
  for (int l = 0; l < nfl; l++) ov[l] = -1;
  if (!(f = fopen(path, "r"))) {
    rc = qsr_errf(err, QSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  if (getline(&line, &cap, f) < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: empty file", path);
    goto out;
  }
  skip_bom(line);
  int nh = split_csv(line, fld, 32);
  if (nh > 32) nh = 32;
  int cl = col_of(fld, nh, "layer"), co = col_of(fld, nh, "consecutive_token_expert_overlap");
  if (cl < 0 || co < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: missing column '%s'", path,
                  cl < 0 ? "layer" : "consecutive_token_expert_overlap");
    goto out;
  }
  int need = cl > co ? cl : co;
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    if (blank(line)) continue;
    int nf = split_csv(line, fld, 32);
    long long layer;
    double o;
    if (nf <= need) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expected %d fields, found %d", path, lineno, nh, nf);
      goto out;
    }
    if (parse_ll(fld[cl], &layer)) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer: '%s' is not an integer", path, lineno, fld[cl]);
      goto out;
    }
    if (parse_dbl(fld[co], &o) || o < 0 || o > 1) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: consecutive_token_expert_overlap: '%s' is not in [0,1]", path,
                    lineno, fld[co]);
      goto out;
    }
    int i = fl_index(vals, nfl, layer);
    if (i < 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer %lld is not in %s", path, lineno, layer, counts);
      goto out;
    }
    if (ov[i] >= 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer %lld repeated", path, lineno, layer);
      goto out;
    }
    ov[i] = o;
  }
  for (int l = 0; l < nfl; l++)
    if (ov[l] < 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: no row for layer %lld (of %s)", path, vals[l], counts);
      goto out;
    }
out:
  if (f) fclose(f);
  free(line);
  return rc;
}

int qsr_routes_synth(const char *counts_csv, const char *summary_csv, int layers, int experts, int top_k,
                     uint64_t seed, qsr_routes **out, char **err) {
  qsr_routes *r = NULL;
  long long *vals = NULL;
  double *share = NULL, *ov = NULL, *scr = NULL;
  int32_t *buf = NULL;
  int rc, nfl = 0;
  if (err) *err = NULL;
  *out = NULL;
  if ((rc = check_model(layers, experts, top_k, err))) goto out;
  if ((rc = read_counts(counts_csv, experts, &vals, &nfl, &share, err))) goto out;
  if (summary_csv) {
    if (!(ov = malloc((size_t)nfl * sizeof *ov))) {
      rc = qsr_errf(err, QSR_ERR_NOMEM, "routes: out of memory");
      goto out;
    }
    if ((rc = read_summary(summary_csv, counts_csv, vals, nfl, ov, err))) goto out;
  }
  size_t n = (size_t)experts;
  if (!(r = routes_new(layers, experts, top_k)) || !(r->fl_of = malloc((size_t)layers * sizeof *r->fl_of)) ||
      !(r->sl = calloc((size_t)nfl, sizeof *r->sl)) || !(r->w = malloc((size_t)nfl * n * sizeof *r->w)) ||
      !(scr = malloc((n + (2 * (n + 1) * (size_t)top_k + 3 * n)) * sizeof *scr)) ||
      !(buf = malloc((size_t)top_k * sizeof *buf))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "routes: out of memory");
    goto out;
  }
  r->file_layers = nfl;
  r->seed = seed;
  double sum_rho = 0, sum_ov = 0;
  for (int fl = 0; fl < nfl; fl++) {
    struct slayer *L = &r->sl[fl];
    double *w = r->w + (size_t)fl * n;
    fit_weights(share + (size_t)fl * n, experts, top_k, w, scr);
    L->w = w;
    L->tab = gsl_ran_discrete_preproc(n, w);
    QSR_ASSERT(L->tab);
    L->overlap = ov ? ov[fl] : -1;
    if (ov) {
      sum_rho += fit_layer(L, share + (size_t)fl * n, experts, top_k, ov[fl], seed, fl, buf, scr);
      sum_ov += ov[fl];
    }
  }
  for (int l = 0; l < layers; l++) {
    r->fl_of[l] = (int)((int64_t)l * nfl / layers);
    memcpy(r->pop + (size_t)l * n, share + (size_t)r->fl_of[l] * n, n * sizeof *r->pop);
  }
  if (ov)
    snprintf(r->desc, sizeof r->desc,
             "synthesised from %s popularity + %s locality (locality: overlap %.3f measured, rho %.3f fitted; "
             "means over %d layers)",
             counts_csv, summary_csv, sum_ov / nfl, sum_rho / nfl, nfl);
  else
    snprintf(r->desc, sizeof r->desc, "synthesised from %s popularity (no locality data)", counts_csv);
  r->off_prev = round_up(sizeof(struct seq_hdr));
  r->off_rng = round_up(r->off_prev + (size_t)layers * (size_t)top_k * sizeof(int32_t));
  r->state_bytes = round_up(r->off_rng + gsl_rng_mt19937->size);
  *out = r;
  r = NULL;
out:
  qsr_routes_free(r);
  free(vals);
  free(share);
  free(ov);
  free(scr);
  free(buf);
  return rc;
}

/* ------------------------------------------------------------ recorded */

/* Fills the (token, layer) groups with fewer than top_k experts from the
** layer's most popular experts not in the group (ties: lower id). */
static void fill_groups(qsr_routes *r, const uint8_t *cnt, const int *rank) {
  const int K = r->top_k, L = r->layers, E = r->experts;
  for (int64_t t = 0; t < r->n_tokens; t++)
    for (int l = 0; l < L; l++) {
      size_t g = (size_t)t * (size_t)L + (size_t)l;
      int32_t *ids = r->rec + g * (size_t)K;
      int c = cnt[g];
      for (int i = 0; i < E && c < K; i++) {
        int e = rank[(size_t)l * E + i], dup = 0;
        for (int j = 0; j < c; j++) dup |= ids[j] == e;
        if (!dup) ids[c++] = e;
      }
    }
}

struct prank { double pop; int e; };

static int cmp_prank(const void *a, const void *b) {
  const struct prank *x = a, *y = b;
  if (x->pop != y->pop) return x->pop > y->pop ? -1 : 1;
  return x->e < y->e ? -1 : x->e > y->e;
}

int qsr_routes_load_csv(const char *path, int layers, int experts, int top_k, qsr_routes **out, char **err) {
  qsr_routes *r = NULL;
  FILE *f = NULL;
  char *line = NULL, *fld[16];
  size_t cap = 0, tcap = 0;
  uint8_t *cnt = NULL;
  int *rank = NULL;
  struct prank *pr = NULL;
  int rc, lineno = 1;
  if (err) *err = NULL;
  *out = NULL;
  if ((rc = check_model(layers, experts, top_k, err))) goto out;
  if (!(r = routes_new(layers, experts, top_k))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "routes: out of memory");
    goto out;
  }
  r->recorded = 1;
  if (!(f = fopen(path, "r"))) {
    rc = qsr_errf(err, QSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    goto out;
  }
  if (getline(&line, &cap, f) < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: empty file (header token,layer,expert expected)", path);
    goto out;
  }
  skip_bom(line);
  int nh = split_csv(line, fld, 16);
  if (nh > 16) nh = 16;
  int ci[3];
  static const char *const cols[3] = {"token", "layer", "expert"};
  for (int i = 0; i < 3; i++)
    if ((ci[i] = col_of(fld, nh, cols[i])) < 0) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:1: missing column '%s' (header must name token, layer, expert)",
                    path, cols[i]);
      goto out;
    }
  int need = ci[0] > ci[1] ? ci[0] : ci[1];
  if (ci[2] > need) need = ci[2];
  const size_t G = (size_t)layers, K = (size_t)top_k;
  long long tok = -1;  /* token being read */
  int lay = -1, c = 0; /* its current layer and selections read for it */
  while (getline(&line, &cap, f) >= 0) {
    lineno++;
    if (blank(line)) continue;
    int nf = split_csv(line, fld, 16);
    if (nf <= need) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expected %d fields, found %d", path, lineno, nh, nf);
      goto out;
    }
    long long v[3];
    for (int i = 0; i < 3; i++)
      if (parse_ll(fld[ci[i]], &v[i])) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: %s: '%s' is not an integer", path, lineno, cols[i],
                      fld[ci[i]]);
        goto out;
      }
    if (v[1] < 0 || v[1] >= layers) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer %lld out of range 0..%d", path, lineno, v[1], layers - 1);
      goto out;
    }
    if (v[2] < 0 || v[2] >= experts) {
      rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expert %lld out of range 0..%d", path, lineno, v[2], experts - 1);
      goto out;
    }
    if (v[0] != tok) {
      if (v[0] != tok + 1) {
        rc = tok < 0 ? qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: token %lld: token ids must start at 0", path, lineno,
                                v[0])
                     : qsr_errf(err, QSR_ERR_CONFIG,
                                "%s:%d: token %lld after token %lld: token ids must ascend by 1", path, lineno, v[0],
                                tok);
        goto out;
      }
      if (tok >= 0 && lay != layers - 1) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: token %lld has no rows for layer %d", path, lineno, tok, lay + 1);
        goto out;
      }
      tok = v[0];
      lay = -1;
      if ((size_t)tok == tcap) {
        size_t nc = tcap ? 2 * tcap : 256;
        int32_t *p = realloc(r->rec, nc * G * K * sizeof *p);
        uint8_t *q = p ? realloc(cnt, nc * G) : NULL;
        if (p) r->rec = p;
        if (!q) {
          rc = qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", path);
          goto out;
        }
        cnt = q;
        tcap = nc;
      }
    }
    if (v[1] != lay) {
      if (v[1] < lay) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: layer %lld after layer %d in token %lld: rows must be in layer order",
                      path, lineno, v[1], lay, tok);
        goto out;
      }
      if (v[1] > lay + 1) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: token %lld has no rows for layer %d", path, lineno, tok, lay + 1);
        goto out;
      }
      lay = (int)v[1];
      c = 0;
    }
    size_t g = (size_t)tok * G + (size_t)lay;
    int32_t *ids = r->rec + g * K;
    for (int j = 0; j < c && j < top_k; j++)
      if (ids[j] == v[2]) {
        rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: expert %lld repeated for token %lld layer %d", path, lineno, v[2],
                      tok, lay);
        goto out;
      }
    if (c < top_k) {
      ids[c] = (int32_t)v[2];
      r->pop[(size_t)lay * (size_t)experts + (size_t)v[2]] += 1;
    }
    c++;
    cnt[g] = (uint8_t)(c < top_k ? c : top_k);
  }
  if (tok < 0) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s: no rows after the header", path);
    goto out;
  }
  if (lay != layers - 1) {
    rc = qsr_errf(err, QSR_ERR_CONFIG, "%s:%d: token %lld has no rows for layer %d", path, lineno, tok, lay + 1);
    goto out;
  }
  r->n_tokens = tok + 1;
  /* popularity from the trace's own counts; every layer has >= 1 row a token */
  for (int l = 0; l < layers; l++) {
    double *p = r->pop + (size_t)l * (size_t)experts, sum = 0;
    for (int e = 0; e < experts; e++) sum += p[e];
    for (int e = 0; e < experts; e++) p[e] /= sum;
  }
  if (!(rank = malloc(G * (size_t)experts * sizeof *rank)) || !(pr = malloc((size_t)experts * sizeof *pr))) {
    rc = qsr_errf(err, QSR_ERR_NOMEM, "%s: out of memory", path);
    goto out;
  }
  for (int l = 0; l < layers; l++) {
    const double *p = r->pop + (size_t)l * (size_t)experts;
    for (int e = 0; e < experts; e++) pr[e] = (struct prank){p[e], e};
    qsort(pr, (size_t)experts, sizeof *pr, cmp_prank);
    for (int e = 0; e < experts; e++) rank[(size_t)l * (size_t)experts + (size_t)e] = pr[e].e;
  }
  fill_groups(r, cnt, rank);
  snprintf(r->desc, sizeof r->desc, "recorded: %s (%lld tokens)", path, (long long)r->n_tokens);
  r->off_prev = r->off_rng = r->state_bytes = round_up(sizeof(struct seq_hdr));
  *out = r;
  r = NULL;
out:
  if (f) fclose(f);
  free(line);
  free(cnt);
  free(rank);
  free(pr);
  qsr_routes_free(r);
  return rc;
}
