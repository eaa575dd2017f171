/* mlp.c - written next. */
#include "twin/sim.h"
