/* clock.c - written next. */
#include "twin/twin.h"
