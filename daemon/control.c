/* control.c - PLACEHOLDER until the control socket lands (helper). */
#include "shmbusd.h"

int control_init(struct daemon *d)
{
	d->bus->dir.hdr->control_socket[0] = '\0';
	return 0;
}

void control_fini(struct daemon *d)
{
	(void)d;
}
