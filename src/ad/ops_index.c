/* ops_index.c - written next. */
#include "ad_int.h"
