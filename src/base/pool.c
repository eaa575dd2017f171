/* pool.c - written next. */
#include "twin/twin.h"
