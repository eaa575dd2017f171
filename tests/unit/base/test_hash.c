/* test_hash.c - written next. */
#include "tw_test.h"
int main(void);
int main(void) { return 1; }
