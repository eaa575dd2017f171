/* test_ops_index.c - written next. */
#include "tw_test.h"
int main(void) { return 1; }
