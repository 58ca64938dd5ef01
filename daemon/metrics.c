/* metrics.c - PLACEHOLDER until metrics land (helper). */
#include "shmbusd.h"

int metrics_init(struct daemon *d)
{
	(void)d;
	return 0;
}

void metrics_tick(struct daemon *d)
{
	notify_status(d, "%zu partitions", d->table ? d->table->n : 0);
}

void metrics_fini(struct daemon *d)
{
	(void)d;
}
