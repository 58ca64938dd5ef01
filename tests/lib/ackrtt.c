/*
 * ackrtt.c - a send's round trip, plain or acks=mirrors (ackrtt.h).
 */
#include "ackrtt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double quantile_us(const uint64_t *sorted, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n + 0.999999);

	i = i ? i - 1 : 0;
	return (double)sorted[i < n ? i : n - 1] / 1000.0;
}

void tu_rtt_measure(shmbus *bus, const char *topic, int32_t partition, enum shmbus_acks acks,
		    size_t n, size_t value_len, struct tu_rtt *ret)
{
	SHMBUS_OPTS(shmbus_producer_opts, o, .acks = acks, .ack_timeout_ms = 5000);
	uint64_t *ns = calloc(n ? n : 1, sizeof *ns);
	char *value = calloc(1, value_len ? value_len : 1);
	struct shmbus_record r = { .value = value, .value_len = value_len };
	shmbus_producer *p = NULL;
	int rc;

	memset(ret, 0, sizeof *ret);
	rc = ns && value ? shmbus_producer_new(bus, topic, &o, &p) : -ENOMEM;
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		int64_t t0 = now_ns();

		rc = shmbus_producer_send(p, partition, &r, NULL);
		ns[i] = (uint64_t)(now_ns() - t0);
	}
	if (rc < 0) {
		ret->err = rc;
	} else if (n) {
		qsort(ns, n, sizeof *ns, by_value);
		ret->n = n;
		ret->p50_us = quantile_us(ns, n, 0.50);
		ret->p99_us = quantile_us(ns, n, 0.99);
		ret->max_us = (double)ns[n - 1] / 1000.0;
	}
	shmbus_producer_free(p);
	free(value);
	free(ns);
}
