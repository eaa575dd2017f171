/* ops_linalg.c - written next. */
#include "ad_int.h"
