/* test_checkpoint.c - written next. */
#include "tw_test.h"
int main(void) { return 1; }
