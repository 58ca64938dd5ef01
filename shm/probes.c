/*
 * probes.c - the semaphores of the USDT probes listed in probes.h.
 *
 * One unsigned short per probe, in the ".probes" section where
 * SystemTap's tools look for them.  The kernel raises a probe's semaphore
 * while a uprobe with its reference counter is attached (libbpf's USDT
 * attach does this), so SHMBUS_PROBE_ENABLED() is a load and a branch.
 * Also the helpers that compute a probe's costly arguments, called only
 * while it is traced.
 */
#include "probes.h"

#include "backpressure.h"

#define SHMBUS_PROBE_DEFINE_(name, n, where, ...) \
	__attribute__((section(".probes"))) volatile unsigned short SHMBUS_PROBE_SEMAPHORE_(name);
SHMBUS_PROBE_LIST(SHMBUS_PROBE_DEFINE_)
#undef SHMBUS_PROBE_DEFINE_

long shm_probe_bp_holder(struct part *p)
{
	struct part_bp_holder h;

	return part_bp_holder(p, &h) == 0 ? (long)h.pid : 0;
}
