/*
 * testpoint.c - the hook of the test points (testpoint.h); it exists in
 * the tests' build alone.
 */
#include "testpoint.h"

#ifdef SHMBUS_TESTPOINTS
void (*shm_testpoint_hook)(const char *name);
#endif
