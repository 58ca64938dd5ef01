/*
 * shmbus_scale.c - how shmbus's costs grow: with producers sharing one
 * partition, with readers of one writer, with the length of a partition
 * (seeks) and with the number of partitions.
 *
 *   producers.<1|2>.<send|batch>  one, then two producers (one per CPU)
 *                    appending 64-byte records to one partition, no
 *                    consumer: the aggregate rate, and the claim CAS they
 *                    contend on; the end offset is checked
 *   fanout.<k>       one writer on the first CPU with k = 0, 1, 2, 4
 *                    readers on the second (overwrite topic: readers never
 *                    hold the writer back): the writer's rate, and the
 *                    share of records the readers got before being lapped
 *   seek.offset, seek.time
 *                    shmbus_consumer_seek to a random offset, and
 *                    seek_timestamp to a random time, in a partition of
 *                    1 M (--quick 250 k) records
 *   partitions.<P>   for 1, 100 and 10 000 partitions of 64 KiB rings:
 *                    topic creation, opening (a producer, and a consumer
 *                    assigned to every partition), the first record to and
 *                    from each, deletion; and the memory each partition
 *                    takes: its file's allocated bytes, and the opener's
 *                    resident memory
 */
#include "shmbus_workloads.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMALL 64

static char tp[WL_TOPIC_LEN];

/* ------------------------------------------------------------------ */
/* Producers sharing a partition                                       */

struct prod {
	int n;                     /* producers */
	size_t batch;
	uint64_t count;            /* records each */
};

static int prod_worker(int role, void *arg)
{
	const struct prod *pr = arg;
	struct shmbus_record recs[64];
	uint8_t vals[64][SMALL];
	shmbus_producer *p = NULL;
	shmbus *wb = NULL;
	int rc = wl_worker_bus(&WL, &wb);

	memset(vals, 0x3c, sizeof vals);
	for (int i = 0; i < 64; i++)
		recs[i] = (struct shmbus_record){ .value = vals[i], .value_len = SMALL };
	if (!rc && shmbus_producer_new(wb, tp, NULL, &p))
		rc = workers_fail("producer: %s", shmbus_errmsg());
	if (!rc)
		rc = workers_rendezvous(&WL.sh->ready, (uint32_t)pr->n);
	WL.sh->t_start[role] = mono_ns();
	for (uint64_t done = 0; !rc && done < pr->count;) {
		int sent = pr->batch == 1 ? shmbus_producer_send(p, 0, recs, NULL) :
					    shmbus_producer_send_batch(p, 0, recs, pr->batch);

		if (sent == -EBUSY && !workers_late()) {
			/* the other producer's claim, preempted, is a lap behind */
			WL.sh->lost[role]++;
			sched_yield();
			continue;
		}
		if (sent < 0 || (pr->batch > 1 && sent == 0))
			rc = workers_fail("send: %s", shmbus_errmsg());
		done += pr->batch == 1 ? 1 : (uint64_t)sent;
	}
	WL.sh->t_end[role] = mono_ns();
	shmbus_producer_free(p);
	shmbus_close(wb);
	return rc;
}

static int run_prod(void *arg, double *out)
{
	const struct prod *pr = arg;
	SHMBUS_OPTS(shmbus_partition_info, info);
	int64_t t0, t1;
	int rc;

	if (wl_topic(&WL, tp, "producers", 1, 64ULL << 20, SHMBUS_POLICY_OVERWRITE))
		return -1;
	wl_reset(&WL);
	rc = workers_run(pr->n, B.cpu, prod_worker, arg, 120);
	if (!rc && shmbus_partition_info(WL.bus, tp, 0, &info))
		rc = workers_fail("partition info: %s", shmbus_errmsg());
	if (!rc && info.high != (uint64_t)pr->n * pr->count)
		rc = workers_fail("end offset %llu after %llu records",
				  (unsigned long long)info.high,
				  (unsigned long long)pr->n * pr->count);
	wl_drop(&WL, tp);
	if (rc)
		return -1;
	t0 = WL.sh->t_start[0];
	t1 = WL.sh->t_end[0];
	if (pr->n == 2) {
		t0 = t0 < WL.sh->t_start[1] ? t0 : WL.sh->t_start[1];
		t1 = t1 > WL.sh->t_end[1] ? t1 : WL.sh->t_end[1];
	}
	out[0] = (double)pr->n * (double)pr->count / ((double)(t1 - t0) / 1e9) / 1e6;
	out[1] = (double)(WL.sh->lost[0] + WL.sh->lost[1]);
	return 0;
}

static const struct bmetric m_prod[] = { { "rate", "M msg/s", HIGHER },
					 { "EBUSY retries", "calls", LOWER } };

static void producer_cases(void)
{
	for (int k = 0; k < 4; k++) {
		struct prod pr = { .n = 1 + (k & 1), .batch = k & 2 ? 64 : 1,
				   .count = (k & 2 ? 8000000 : 2000000) / (B.quick ? 4 : 1) };
		char id[64], title[128], note[400];

		snprintf(id, sizeof id, "producers.%d.%s", pr.n, k & 2 ? "batch" : "send");
		snprintf(title, sizeof title, "%d producer%s on one partition, %s", pr.n,
			 pr.n > 1 ? "s" : "", k & 2 ? "send_batch" : "send");
		snprintf(note, sizeof note, "%d process%s (CPU %d%s) appending %llu 64-byte records "
			 "each to one 64 MiB partition (overwrite), %s, no consumer; aggregate rate "
			 "from the first start to the last end; a send refused with -EBUSY (the other "
			 "producer's claim, preempted, a lap behind) is retried and counted", pr.n, pr.n > 1 ? "es" : "", B.cpu[0],
			 pr.n > 1 ? " and the other" : "", (unsigned long long)pr.count,
			 k & 2 ? "send_batch of 64" : "one send per record");
		b_case(id, title, note, m_prod, 2, run_prod, &pr);
	}
}

/* ------------------------------------------------------------------ */
/* Readers of one writer                                               */

struct fan {
	int readers;
	uint64_t count;
};

static int fan_writer(const struct fan *f, shmbus *wb)
{
	uint8_t val[SMALL];
	struct shmbus_record rec = { .value = val, .value_len = SMALL };
	shmbus_producer *p = NULL;
	unsigned aborted = 0;
	int rc = 0;

	memset(val, 0x5c, sizeof val);
	if (shmbus_producer_new(wb, tp, NULL, &p))
		rc = workers_fail("producer: %s", shmbus_errmsg());
	if (!rc)
		rc = workers_rendezvous(&WL.sh->ready, (uint32_t)f->readers + 1);
	WL.sh->t_start[0] = mono_ns();
	for (uint64_t seq = 0; !rc && seq < f->count; seq++) {
		int sent;

		wl_put_seq(val, seq);
		sent = shmbus_producer_send(p, 0, &rec, NULL);
		if (sent == -ECANCELED) {
			/* a reader aborted our claim: this process was off its
			 * CPU past the unblock timeout (the hypervisor can stop
			 * a vCPU that long); the record is sent again */
			if (!aborted++)
				fprintf(stderr, "fanout: a claim was aborted after a stall past "
					"the unblock timeout; sending its record again\n");
			seq--;
		} else if (sent < 0) {
			rc = workers_fail("send: %s", shmbus_errmsg());
		}
	}
	WL.sh->t_end[0] = mono_ns();
	__atomic_store_n(&WL.sh->done, 1, __ATOMIC_RELEASE);
	shmbus_producer_free(p);
	return rc;
}

/* Read until the writer is done and nothing is left. */
static int fan_reader(int role, const struct fan *f, shmbus *wb)
{
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench-reader");
	struct shmbus_message msgs[256];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_consumer *c = NULL;
	int rc = 0, got = 1;

	if (shmbus_consumer_new(wb, &co, &c) ||
	    shmbus_consumer_assign(c, tp, 0, SHMBUS_OFFSET_BEGINNING))
		rc = workers_fail("consumer: %s", shmbus_errmsg());
	if (!rc)
		rc = workers_rendezvous(&WL.sh->ready, (uint32_t)f->readers + 1);
	while (!rc && (got > 0 || !__atomic_load_n(&WL.sh->done, __ATOMIC_ACQUIRE))) {
		got = shmbus_consumer_poll(c, msgs, 256, 10);
		if (got < 0)
			rc = workers_fail("poll: %s", shmbus_errmsg());
		else
			WL.sh->got[role] += (uint64_t)got;
		if (workers_late())
			rc = workers_fail("the writer never finished");
	}
	if (!rc && !shmbus_consumer_stats(c, &st))
		WL.sh->lost[role] = st.lost;
	shmbus_consumer_free(c);
	return rc;
}

static int fan_worker(int role, void *arg)
{
	const struct fan *f = arg;
	shmbus *wb = NULL;
	int rc = wl_worker_bus(&WL, &wb);

	if (!rc)
		rc = role ? fan_reader(role, f, wb) : fan_writer(f, wb);
	shmbus_close(wb);
	return rc;
}

static int run_fan(void *arg, double *out)
{
	const struct fan *f = arg;
	int cpus[WORKERS_MAX];
	double share = 0;

	for (int i = 0; i <= f->readers; i++)
		cpus[i] = B.cpu[i ? 1 : 0];
	if (wl_topic(&WL, tp, "fanout", 1, SHMBUS_DEFAULT_CAPACITY, SHMBUS_POLICY_OVERWRITE))
		return -1;
	wl_reset(&WL);
	if (workers_run(f->readers + 1, cpus, fan_worker, arg, 120)) {
		wl_drop(&WL, tp);
		return -1;
	}
	wl_drop(&WL, tp);
	out[0] = (double)f->count / ((double)(WL.sh->t_end[0] - WL.sh->t_start[0]) / 1e9) / 1e6;
	for (int i = 1; i <= f->readers; i++)
		share += (double)WL.sh->got[i] / (double)f->count;
	out[1] = f->readers ? 100 * share / f->readers : 0;
	return 0;
}

static const struct bmetric m_fan[] = { { "writer rate", "M msg/s", HIGHER },
					{ "read share", "%", HIGHER } };

static void fanout_cases(void)
{
	static const int readers[] = { 0, 1, 2, 4 };

	for (int i = 0; i < 4; i++) {
		struct fan f = { .readers = readers[i], .count = B.quick ? 1000000 : 4000000 };
		char id[32], title[96], note[400];

		snprintf(id, sizeof id, "fanout.%d", f.readers);
		snprintf(title, sizeof title, "1 writer, %d reader%s", f.readers,
			 f.readers == 1 ? "" : "s");
		snprintf(note, sizeof note, "writer on CPU %d sends %llu 64-byte records to one "
			 "16 MiB partition (overwrite); %d reader process%s on CPU %d, default "
			 "consumers (spin 20 us, then the futex), polls of up to 256; read share: "
			 "records each reader got before the writer lapped it, averaged",
			 B.cpu[0], (unsigned long long)f.count, f.readers,
			 f.readers == 1 ? "" : "es", B.cpu[1]);
		b_case(id, title, note, m_fan, f.readers ? 2 : 1, run_fan, &f);
	}
}

/* ------------------------------------------------------------------ */
/* Seeks                                                               */

#define TS0      1700000000000000000LL /* record i has timestamp TS0 + i us */
#define SEEKS    100000

static uint64_t seek_records;
static shmbus_consumer *seeker;

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One partition of seek_records records, and a consumer on it. */
static int seek_fill(void)
{
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench-seek");
	uint8_t val[SMALL] = { 0 };
	struct shmbus_record rec = { .value = val, .value_len = SMALL };
	shmbus_producer *p = NULL;
	int rc = wl_topic(&WL, tp, "seek", 1, 256ULL << 20, SHMBUS_POLICY_OVERWRITE);

	if (!rc && shmbus_producer_new(WL.bus, tp, NULL, &p))
		rc = workers_fail("producer: %s", shmbus_errmsg());
	for (uint64_t i = 0; !rc && i < seek_records; i++) {
		wl_put_seq(val, i);
		rec.timestamp_ns = TS0 + (int64_t)i * 1000;
		if (shmbus_producer_send(p, 0, &rec, NULL) < 0)
			rc = workers_fail("send: %s", shmbus_errmsg());
	}
	shmbus_producer_free(p);
	if (!rc && (shmbus_consumer_new(WL.bus, &co, &seeker) ||
		    shmbus_consumer_assign(seeker, tp, 0, SHMBUS_OFFSET_BEGINNING)))
		rc = workers_fail("consumer: %s", shmbus_errmsg());
	return rc;
}

/* The next record must be `want`. */
static int seek_check(uint64_t want)
{
	struct shmbus_message m;

	if (shmbus_consumer_poll(seeker, &m, 1, 0) != 1)
		return workers_fail("nothing to read after a seek to %llu",
				    (unsigned long long)want);
	return wl_check_seq(&m, SMALL, want);
}

/* SEEKS seeks (arg non-NULL: by timestamp) to random places: ns each. */
static int run_seek(void *arg, double *out)
{
	bool by_time = arg != NULL;
	uint64_t s = 0x9e3779b97f4a7c15ULL, want = 0;
	int64_t t0 = mono_ns();
	int rc = 0;

	for (int i = 0; !rc && i < SEEKS; i++) {
		want = xorshift(&s) % seek_records;
		if (by_time)
			rc = shmbus_consumer_seek_timestamp(seeker, tp, 0,
							    TS0 + (int64_t)want * 1000 - 500);
		else
			rc = shmbus_consumer_seek(seeker, tp, 0, (int64_t)want);
	}
	out[0] = (double)(mono_ns() - t0) / SEEKS;
	if (rc)
		return workers_fail("seek: %s", shmbus_errmsg());
	return seek_check(want);
}

static const struct bmetric m_seek[] = { { "cost", "ns", LOWER } };

static void seek_cases(void)
{
	char note[300];

	seek_records = B.quick ? 250000 : 1000000;
	workers_pin(B.cpu[0]);
	if (seek_fill()) {
		b_skip("seek.offset", "seek by offset", workers_why());
		b_skip("seek.time", "seek by timestamp", workers_why());
	} else {
		snprintf(note, sizeof note, "%d shmbus_consumer_seek calls to random offsets of a "
			 "partition holding %llu 64-byte records (256 MiB ring), one process; the "
			 "last is checked by reading it", SEEKS, (unsigned long long)seek_records);
		b_case("seek.offset", "seek by offset", note, m_seek, 1, run_seek, NULL);
		snprintf(note, sizeof note, "%d shmbus_consumer_seek_timestamp calls to random "
			 "times of the same partition (one record a microsecond)", SEEKS);
		b_case("seek.time", "seek by timestamp", note, m_seek, 1, run_seek, note);
	}
	shmbus_consumer_free(seeker);
	seeker = NULL;
	wl_drop(&WL, tp);
}

/* ------------------------------------------------------------------ */
/* Partitions                                                          */

#define PART_RING (64ULL << 10)

/* Resident bytes of this process. */
static uint64_t rss_bytes(void)
{
	unsigned long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f && fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	if (f)
		fclose(f);
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes allocated to the topic's files. */
static uint64_t topic_bytes(void)
{
	char dir[PATH_MAX + 200], path[PATH_MAX + 600];
	uint64_t sum = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(dir, sizeof dir, "%s/topics/%s", WL.root, tp);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (e->d_name[0] != '.' && !stat(path, &st) && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512;
	}
	if (d)
		closedir(d);
	return sum;
}

/* Send one record to every partition and read them all back. */
static int touch_all(shmbus_producer *p, shmbus_consumer *c, uint32_t n)
{
	uint8_t val[SMALL] = { 0 };
	struct shmbus_record rec = { .value = val, .value_len = SMALL };
	struct shmbus_message msgs[256];
	uint64_t got = 0;
	int r;

	for (uint32_t i = 0; i < n; i++)
		if (shmbus_producer_send(p, (int32_t)i, &rec, NULL) < 0)
			return workers_fail("send to partition %u: %s", i, shmbus_errmsg());
	while (got < n) {
		r = shmbus_consumer_poll(c, msgs, 256, 1000);
		if (r <= 0)
			return workers_fail("read %llu of %u records: %s", (unsigned long long)got,
					    n, r ? shmbus_errmsg() : "timed out");
		got += (uint64_t)r;
	}
	return 0;
}

/* In a fresh process: open every partition, send and read one record
 * each; times in t_start/t_end[0..1], resident growth in got[0]. */
static int parts_worker(int role, void *arg)
{
	uint32_t n = (uint32_t)(uintptr_t)arg;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench-parts");
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	uint64_t rss0 = rss_bytes(), rss1;
	shmbus *wb = NULL;
	int rc;

	(void)role;
	WL.sh->t_start[0] = mono_ns();
	rc = wl_worker_bus(&WL, &wb);
	if (!rc && (shmbus_producer_new(wb, tp, NULL, &p) || shmbus_consumer_new(wb, &co, &c) ||
		    shmbus_consumer_assign(c, tp, SHMBUS_PARTITION_ANY, SHMBUS_OFFSET_END)))
		rc = workers_fail("open %u partitions: %s", n, shmbus_errmsg());
	WL.sh->t_end[0] = WL.sh->t_start[1] = mono_ns();
	if (!rc)
		rc = touch_all(p, c, n);
	WL.sh->t_end[1] = mono_ns();
	rss1 = rss_bytes();
	WL.sh->got[0] = rss1 > rss0 ? rss1 - rss0 : 0;
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
	shmbus_close(wb);
	return rc;
}

static int run_parts(void *arg, double *out)
{
	uint32_t n = (uint32_t)(uintptr_t)arg;
	int64_t t0 = mono_ns(), t1;
	int rc = wl_topic(&WL, tp, "parts", n, PART_RING, SHMBUS_POLICY_OVERWRITE);

	out[0] = (double)(mono_ns() - t0) / 1e6;
	if (!rc)
		rc = workers_run(1, B.cpu, parts_worker, arg, 120);
	out[1] = (double)(WL.sh->t_end[0] - WL.sh->t_start[0]) / 1e6;
	out[2] = (double)(WL.sh->t_end[1] - WL.sh->t_start[1]) / 1e6;
	out[4] = (double)topic_bytes() / n / 1024;
	out[5] = (double)WL.sh->got[0] / n / 1024;
	t1 = mono_ns();
	wl_drop(&WL, tp);
	out[3] = (double)(mono_ns() - t1) / 1e6;
	return rc;
}

static const struct bmetric m_parts[] = {
	{ "create", "ms", LOWER }, { "open", "ms", LOWER }, { "first record", "ms", LOWER },
	{ "delete", "ms", LOWER }, { "file", "KiB/partition", LOWER },
	{ "resident", "KiB/partition", LOWER },
};

static void partition_cases(void)
{
	static const uint32_t counts[] = { 1, 100, 10000 };

	for (int i = 0; i < 3; i++) {
		char id[32], title[96], note[500];

		snprintf(id, sizeof id, "partitions.%u", counts[i]);
		snprintf(title, sizeof title, "a topic of %u partition%s", counts[i],
			 counts[i] > 1 ? "s" : "");
		snprintf(note, sizeof note, "%u partitions of 64 KiB rings (overwrite): "
			 "shmbus_topic_create; open = shmbus_producer_new + shmbus_consumer_new + "
			 "assign to every partition, in a fresh process (shmbus_open included); "
			 "first record = one 64-byte record sent to and read from each; "
			 "shmbus_topic_delete; file = bytes allocated on /dev/shm; resident = growth "
			 "of the opener's RSS (its mappings are pre-faulted; with one partition it is "
			 "mostly the bus file and the library's own state); CPU %d", counts[i],
			 B.cpu[0]);
		b_case(id, title, note, m_parts, 6, run_parts, (void *)(uintptr_t)counts[i]);
	}
}

void scale_cases(void)
{
	producer_cases();
	fanout_cases();
	seek_cases();
	partition_cases();
}
