/* ops_elem.c - written next. */
#include "ad_int.h"
