/*
 * cmd_sim.h - what the `twin sim bench` files share: the B2/B3 runners of
 * cmd_sim_b23.c, which run_bench in cmd_sim.c dispatches to, and the
 * median of the timed repetitions.
 */
#ifndef TWIN_CMD_SIM_H
#define TWIN_CMD_SIM_H

#include "cli.h"

/* Median of v[0..n) (n >= 1); sorts v in place. */
double sim_bench_median(double *v, int n);

/* `twin sim bench mass_spring_simple` (B2) and `... mass_spring` (B3),
 * with the options of cmd_sim_bench. Return a CLI exit code. */
int sim_bench_mass_spring_simple(cli_ctx *cli, const cli_args *args);
int sim_bench_mass_spring(cli_ctx *cli, const cli_args *args);

#endif /* TWIN_CMD_SIM_H */
