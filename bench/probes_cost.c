/*
 * probes_cost.c - what the USDT probes of shm/probes.h cost: one process
 * appends batches of 64 records of 64 bytes to a partition and polls
 * them back (a zero-copy consumer), timing ns per record.  Built twice:
 *
 *   probes_none   against libshmbus built with -DSHMBUS_NO_PROBES (no
 *                 probe compiled in): case probes.none
 *   probes        against the shipped libshmbus: case probes.off (the
 *                 probes there, nobody tracing: a nop each, and a load and
 *                 a branch on the semaphores of deliver, wake, bp_blocked),
 *                 and, with --tracer PATH, probes.traced: the same while
 *                 shmbus-trace -p (this process) is attached, every probe
 *                 a uprobe trap into BPF (append, commit once a batch,
 *                 deliver once a record)
 *
 * The records live in one process on one CPU, so what is measured is the
 * library's own work per record and the probes' share of it, not the
 * transfer between CPUs (shmbus_workloads measures that).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "shmbus.h"

#ifndef PROBES_PROG
#define PROBES_PROG "probes"
#endif
#define BATCH 64
#define VALUE 64

static const char *tmpdir = "/dev/shm";
static const char *tracer;
static char root[4096];
static shmbus *bus;
static long records; /* per run */

static int own_opt(int argc, char **argv, int *i)
{
	if (!strcmp(argv[*i], "--tmpdir") && *i + 1 < argc) {
		tmpdir = argv[++*i];
		return 1;
	}
	if (!strcmp(argv[*i], "--tracer") && *i + 1 < argc) {
		tracer = argv[++*i];
		return 1;
	}
	return 0;
}

/* One run: records through produce -> poll; out[0] = ns per record */
static int run_loop(void *arg, double *out)
{
	SHMBUS_OPTS(shmbus_consumer_opts, co, .spin_us = -1);
	struct shmbus_record recs[BATCH];
	struct shmbus_message m[BATCH];
	char value[VALUE] = { 0 };
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	int64_t t0;
	long done = 0;
	int rc = 0;

	(void)arg;
	for (int i = 0; i < BATCH; i++)
		recs[i] = (struct shmbus_record){ .value = value, .value_len = VALUE };
	if (shmbus_producer_new(bus, "probes", NULL, &p) < 0 ||
	    shmbus_consumer_new(bus, &co, &c) < 0 ||
	    shmbus_consumer_assign(c, "probes", 0, SHMBUS_OFFSET_END) < 0) {
		rc = workers_fail("producer or consumer: %s", shmbus_errmsg());
		goto out;
	}
	t0 = mono_ns();
	while (done < records) {
		int n = shmbus_producer_send_batch(p, 0, recs, BATCH), got = 0;

		if (n != BATCH) {
			rc = workers_fail("send_batch = %d: %s", n, shmbus_errmsg());
			goto out;
		}
		while (got < BATCH) {
			int k = shmbus_consumer_poll(c, m, BATCH, 0);

			if (k <= 0) {
				rc = workers_fail("poll = %d: %s", k, shmbus_errmsg());
				goto out;
			}
			got += k;
		}
		done += BATCH;
	}
	out[0] = (double)(mono_ns() - t0) / (double)done;
out:
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	return rc;
}

/* shmbus-trace -p (us), its stdout to /dev/null; its pid once it said it
 * is tracing, else -1 */
static __attribute__((unused)) pid_t start_tracer(void)
{
	char pid[16], line[1024];
	int fds[2];
	pid_t t;
	FILE *err;

	snprintf(pid, sizeof pid, "%d", (int)getpid());
	if (pipe(fds) < 0)
		return -1;
	t = fork();
	if (t == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(fds[1], 2);
		close(fds[0]);
		execl(tracer, tracer, "-p", pid, "--plain", "--interval", "1000", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	err = fdopen(fds[0], "r");
	while (t > 0 && err && fgets(line, sizeof line, err)) {
		if (strstr(line, "shmbus trace: tracing")) {
			fclose(err); /* it writes nothing more but at its exit */
			return t;
		}
		fputs(line, stderr);
	}
	if (err)
		fclose(err);
	if (t > 0)
		waitpid(t, NULL, 0);
	return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static int open_bus(void)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = 1, .capacity = 16 << 20);
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root, .no_daemon = true);

	snprintf(root, sizeof root, "%s/shmbus-probes.%d", tmpdir, (int)getpid());
	if (shmbus_open(&oo, &bus) < 0 || shmbus_topic_create(bus, "probes", &to) < 0) {
		fprintf(stderr, "probes: bus in %s: %s\n", root, shmbus_errmsg());
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct bmetric m[] = { { "cost", "ns/record", LOWER } };
	static const char note[] = "one process: send_batch of 64 records of 64 B, then "
				   "poll them back (zero-copy); ns per record";

	b_init(PROBES_PROG, argc, argv, own_opt,
	       " [--tmpdir DIR] [--tracer PATH (shmbus-trace: also the traced case)]");
	if (workers_pin(B.cpu[0]) < 0 || open_bus() < 0)
		return 1;
	records = B.quick ? 1000000 : 4000000;
#ifdef SHMBUS_NO_PROBES
	b_case("cost.none", "no probes compiled in", note, m, 1, run_loop, NULL);
#else
	b_case("cost.off", "probes compiled in, not traced", note, m, 1, run_loop, NULL);
	if (!tracer || access(tracer, X_OK) != 0) {
		b_skip("cost.traced", "probes traced by shmbus trace",
		       "shmbus-trace was not built here (clang, bpftool, libbpf-dev or BTF missing)");
	} else {
		pid_t t = start_tracer();

		if (t < 0) {
			b_skip("cost.traced", "probes traced by shmbus trace",
			       "shmbus-trace could not attach (root, or CAP_BPF and CAP_PERFMON, "
			       "and BTF needed)");
		} else {
			records /= 20; /* a uprobe trap each: microseconds */
			b_case("cost.traced", "probes traced by shmbus trace", note, m, 1, run_loop,
			       NULL);
			kill(t, SIGTERM);
			waitpid(t, NULL, 0);
		}
	}
#endif
	shmbus_close(bus);
	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return b_exit();
}
