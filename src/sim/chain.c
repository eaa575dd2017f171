/*
 * chain.c - the spring chain of benchmark B1 (BENCHMARKS.md) as a block: n
 * unit masses in a line, spring i joining mass i-1 (the wall at 0 for
 * i = 0) to mass i, stiffness 100 + 10 cos(0.3 i), rest length 1, drag
 * 0.5 on every mass, starting at x_i = (i+1)(1 + 0.01 sin i) at rest;
 * semi-implicit Euler. A particle system on the chain fast path, so its
 * parameters are the particle block's (stiffness, rest_length,
 * spring_damping, drag, gravity) and so are its ports.
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

int tw_sim_chain1d_block(size_t n, const char *name, tw_block **out,
                         tw_err *err) {
  if (n == 0 || n > ((size_t)1 << 24))
    return tw_err_set(err, TW_EINVAL, "chain1d: %zu masses (1..16777216)", n);
  double *mass = tw_calloc(n, sizeof(double));
  double *pos = tw_calloc(n, sizeof(double));
  double *k = tw_calloc(n, sizeof(double));
  double *rest = tw_calloc(n, sizeof(double));
  double *drag = tw_calloc(n, sizeof(double));
  double *anchor = tw_calloc(n, sizeof(double));
  int32_t *si = tw_calloc(n, sizeof(int32_t));
  int32_t *sj = tw_calloc(n, sizeof(int32_t));
  int rc = TW_OK;
  if (!mass || !pos || !k || !rest || !drag || !anchor || !si || !sj) {
    rc = tw_err_set(err, TW_ENOMEM, "chain1d: out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    mass[i] = 1;
    pos[i] = (double)(i + 1) * (1 + 0.01 * sin((double)i));
    k[i] = 100 + 10 * cos(0.3 * (double)i);
    rest[i] = 1;
    drag[i] = 0.5;
    si[i] = (int32_t)i - 1; /* -1: the wall */
    sj[i] = (int32_t)i;
    anchor[i] = 0;
  }
  tw_particles_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dim = 1;
  spec.n = n;
  spec.mass = mass;
  spec.position = pos;
  spec.nsprings = n;
  spec.spring_i = si;
  spec.spring_j = sj;
  spec.anchor = anchor;
  spec.stiffness = k;
  spec.rest_length = rest;
  spec.drag = drag;
  const tw_dyn_ops *ops;
  void *self;
  rc = tw_sim_particles(&spec, &ops, &self, err);
  if (rc == TW_OK)
    rc = tw_sim_integrated_block(ops, self, TW_SEMI_IMPLICIT,
                                 name != NULL ? name : "chain1d", out, err);
done:
  tw_free(mass);
  tw_free(pos);
  tw_free(k);
  tw_free(rest);
  tw_free(drag);
  tw_free(anchor);
  tw_free(si);
  tw_free(sj);
  return rc;
}
