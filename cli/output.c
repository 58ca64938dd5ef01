/*
 * output.c - the stdout of `shmbus consume -g`, which knows which records
 * reached it.
 *
 * A group consumer commits only what it printed.  Printing goes through
 * stdio's buffer, so "printed" means: its bytes were taken by write(2).
 * The stream is a stdio stream over a cookie that counts the bytes
 * write(2) took; each record printed is queued with the byte count at its
 * end (bytes written + bytes still buffered), and leaves the queue as
 * delivered once the count written passes it.  When the reader goes away
 * (EPIPE: `consume -g G | head -1`), the records that reached the pipe
 * before are known exactly, and consume.c commits them.  The queue holds
 * at most the records in the buffer (64 KiB), one per byte at worst.
 */
#include "cli.h"

#include <errno.h>
#include <stdio_ext.h>
#include <string.h>
#include <unistd.h>

#define OUT_BUF (1 << 16)

static ssize_t out_write(void *cookie, const char *buf, size_t size)
{
	struct output *o = cookie;
	size_t done = 0;

	while (done < size) {
		ssize_t n = write(o->fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			o->err = n < 0 ? errno : EIO;
			break;
		}
		done += (size_t)n;
		o->written += (uint64_t)n;
	}
	return (ssize_t)done; /* short: stdio marks the stream failed */
}

int output_open(struct output *o, int fd, uint32_t nparts)
{
	static const cookie_io_functions_t io = { .write = out_write };

	memset(o, 0, sizeof *o);
	o->fd = fd;
	o->nparts = nparts;
	o->delivered = nparts ? calloc(nparts, sizeof *o->delivered) : NULL;
	o->buf = malloc(OUT_BUF); /* glibc sizes a buffer it allocates itself as it likes */
	o->f = fopencookie(o, "w", io);
	if (!o->f || !o->buf || (nparts && !o->delivered)) {
		output_close(o);
		return -ENOMEM;
	}
	setvbuf(o->f, o->buf, _IOFBF, OUT_BUF);
	__fsetlocking(o->f, FSETLOCKING_BYCALLER); /* one thread prints: no lock per putc */
	return 0;
}

int output_grow(struct output *o, uint32_t nparts)
{
	uint64_t *d;

	if (!o->nparts || nparts <= o->nparts)
		return 0;
	d = realloc(o->delivered, nparts * sizeof *d);
	if (!d)
		return -ENOMEM;
	memset(d + o->nparts, 0, (nparts - o->nparts) * sizeof *d);
	o->delivered = d;
	o->nparts = nparts;
	return 0;
}

void output_settle(struct output *o)
{
	while (o->len && o->q[o->head].end <= o->written) {
		const struct output_rec *r = &o->q[o->head];

		o->delivered[r->partition] = r->next;
		o->head = (o->head + 1) % o->cap;
		o->len--;
	}
}

static int grow(struct output *o)
{
	size_t cap = o->cap ? o->cap * 2 : 1024;
	struct output_rec *q = malloc(cap * sizeof *q);

	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < o->len; i++)
		q[i] = o->q[(o->head + i) % o->cap];
	free(o->q);
	o->q = q;
	o->cap = cap;
	o->head = 0;
	return 0;
}

int output_record(struct output *o, const struct shmbus_message *m)
{
	if (!o->nparts || m->partition < 0 || (uint32_t)m->partition >= o->nparts)
		return 0;
	output_settle(o);
	if (o->len == o->cap && grow(o) < 0)
		return -ENOMEM;
	o->q[(o->head + o->len) % o->cap] = (struct output_rec){
		.partition = (uint32_t)m->partition, .next = m->offset + 1,
		.end = o->written + __fpending(o->f),
	};
	o->len++;
	output_settle(o);
	return 0;
}

int output_flush(struct output *o)
{
	int rc = fflush(o->f) == 0 && !ferror(o->f) ? 0 : -(o->err ? o->err : EIO);

	output_settle(o);
	return rc;
}

void output_forget(struct output *o)
{
	if (o->delivered)
		memset(o->delivered, 0, o->nparts * sizeof *o->delivered);
}

void output_close(struct output *o)
{
	if (o->f)
		fclose(o->f); /* after a failure, what is left is dropped */
	free(o->buf);
	free(o->q);
	free(o->delivered);
	memset(o, 0, sizeof *o);
}
