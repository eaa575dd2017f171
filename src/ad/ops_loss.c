/* ops_loss.c - written next. */
#include "ad_int.h"
