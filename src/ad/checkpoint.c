/* checkpoint.c - written next. */
#include "ad_int.h"
