/* ops_reduce.c - written next. */
#include "ad_int.h"
