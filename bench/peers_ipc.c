/*
 * peers_ipc.c - the kernel's own IPC, measured as shmbus's peers: Unix
 * domain sockets (stream and seqpacket), pipes and POSIX message queues.
 *
 * For each transport, between two processes pinned to the two CPUs:
 *   <t>.tput    one-way throughput, 64-byte messages, one write (send,
 *               mq_send) per message
 *   <t>.batch   the same, 32 messages per call: one 2 KiB write on a
 *               stream or pipe, sendmmsg/recvmmsg of 32 on seqpacket
 *               (POSIX queues have no batched form: skipped, with that
 *               reason)
 *   <t>.rtt     round trip of one 64-byte message, both sides blocking in
 *               read: what a request/reply or a blocking consumer pays
 *   <t>.tput.<size>  on a stream socket and a pipe, one write per message
 *               of 1 KiB, 64 KiB and 1 MiB: the peers of shmbus's
 *               throughput against record size
 * Every message carries its sequence number in its first 8 bytes and
 * the receiver checks them.  The receiver times the transfer itself:
 * from the last warm-up message to the last message, so the rate is
 * the steady state of the whole path.  Buffers are the kernel's
 * defaults (a POSIX queue holds /proc/sys/fs/mqueue/msg_max messages).
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MSG     64
#define BATCH   32
#define MAX_MSG (1u << 20) /* the largest message of the sized cases */

enum kind { STREAM, SEQPACKET, PIPE, MQ };

/* Two one-way channels: dir 0 from worker 0 to worker 1, dir 1 back. */
struct chan {
	enum kind kind;
	int wfd[2], rfd[2];
	char mqname[2][64];
};

struct shared {
	_Alignas(128) int64_t t_start, t_end;
	_Alignas(128) uint64_t samples[];
};

static struct shared *sh;
static struct chan ch;
static uint64_t tput_count, batch_count, rtt_count;
static uint64_t warm, count; /* of the case in progress */
static size_t msg_len = MSG;  /* of one-write-per-message cases */

static const char *const kind_name[] = { "unix_stream", "unix_seqpacket", "pipe", "mq" };
static const char *const kind_title[] = { "Unix socket, stream", "Unix socket, seqpacket",
					  "pipe", "POSIX message queue" };

/* ------------------------------------------------------------------ */
/* Channels                                                            */

static int open_mq(int dir)
{
	struct mq_attr a = { .mq_maxmsg = 10, .mq_msgsize = MSG };
	FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
	long max;

	if (f && fscanf(f, "%ld", &max) == 1 && max > 0)
		a.mq_maxmsg = max;
	if (f)
		fclose(f);
	snprintf(ch.mqname[dir], sizeof ch.mqname[dir], "/shmbus-bench-%d-%d", (int)getpid(), dir);
	mq_unlink(ch.mqname[dir]);
	ch.wfd[dir] = ch.rfd[dir] = mq_open(ch.mqname[dir], O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (ch.wfd[dir] < 0)
		return workers_fail("mq_open %s: %s", ch.mqname[dir], strerror(errno));
	return 0;
}

static int chan_open(enum kind k)
{
	int sv[2], p[2];

	ch = (struct chan){ .kind = k, .wfd = { -1, -1 }, .rfd = { -1, -1 } };
	for (int dir = 0; dir < 2; dir++) {
		if (k == MQ) {
			if (open_mq(dir))
				return -1;
		} else if (k == PIPE) {
			if (pipe(p))
				return workers_fail("pipe: %s", strerror(errno));
			ch.rfd[dir] = p[0];
			ch.wfd[dir] = p[1];
		} else if (dir == 0) {
			if (socketpair(AF_UNIX, k == STREAM ? SOCK_STREAM : SOCK_SEQPACKET, 0, sv))
				return workers_fail("socketpair: %s", strerror(errno));
			ch.wfd[0] = ch.rfd[1] = sv[0];
			ch.wfd[1] = ch.rfd[0] = sv[1];
		}
	}
	return 0;
}

static void chan_close(void)
{
	for (int dir = 0; dir < 2; dir++) {
		if (ch.kind == MQ) {
			if (ch.wfd[dir] >= 0)
				mq_close(ch.wfd[dir]);
			mq_unlink(ch.mqname[dir]);
		} else {
			if (ch.wfd[dir] >= 0 && (ch.kind == PIPE || dir == 0))
				close(ch.wfd[dir]);
			if (ch.rfd[dir] >= 0 && ch.kind == PIPE)
				close(ch.rfd[dir]);
		}
	}
	ch.wfd[0] = ch.wfd[1] = ch.rfd[0] = ch.rfd[1] = -1;
}

/* Send len bytes (one message, or on a stream any number of them). */
static int chan_send(int dir, const void *buf, size_t len)
{
	ssize_t n;

	if (ch.kind == MQ)
		return mq_send(ch.wfd[dir], buf, len, 0) ?
		       workers_fail("mq_send: %s", strerror(errno)) : 0;
	for (size_t done = 0; done < len; done += (size_t)n) {
		n = write(ch.wfd[dir], (const char *)buf + done, len - done);
		if (n < 0 && errno != EINTR)
			return workers_fail("write: %s", strerror(errno));
		n = n < 0 ? 0 : n;
	}
	return 0;
}

/* Receive: one message, or on a stream whatever is there (up to cap). */
static ssize_t chan_recv(int dir, void *buf, size_t cap)
{
	ssize_t n;

	do
		n = ch.kind == MQ ? mq_receive(ch.rfd[dir], buf, cap < MSG ? MSG : cap, NULL) :
				    read(ch.rfd[dir], buf, cap);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return workers_fail("receive: %s", n ? strerror(errno) : "end of file");
	return n;
}

/* ------------------------------------------------------------------ */
/* One-way throughput                                                  */

static void stamp(uint8_t *m, uint64_t seq)
{
	memcpy(m, &seq, sizeof seq);
}

static int sender(bool batched)
{
	static struct mmsghdr mm[BATCH];
	static struct iovec iov[BATCH];
	static uint8_t buf[MAX_MSG];
	uint64_t n = warm + count, per = batched ? BATCH : 1;
	size_t len = batched ? BATCH * MSG : msg_len;

	memset(buf, 0x77, len);
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = buf + i * MSG, .iov_len = MSG };
		mm[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	for (uint64_t seq = 0; seq < n; seq += per) {
		for (uint64_t i = 0; i < per; i++)
			stamp(buf + i * MSG, seq + i); /* per > 1 only with MSG-byte messages */
		if (batched && ch.kind == SEQPACKET) {
			for (int sent = 0, r; sent < BATCH; sent += r) {
				r = sendmmsg(ch.wfd[0], mm + sent, BATCH - sent, 0);
				if (r < 0)
					return workers_fail("sendmmsg: %s", strerror(errno));
			}
		} else if (chan_send(0, buf, len)) {
			return -1;
		}
	}
	return 0;
}

/* Check the messages of size `mlen` in buf[0, len) (whole messages on
 * message transports; a stream is parsed across reads, *at being the
 * place in the current message). */
static int check(const uint8_t *buf, size_t len, size_t mlen, uint64_t *seq, size_t *at)
{
	static uint8_t head[8];
	uint64_t got;

	while (len) {
		size_t take = mlen - *at < len ? mlen - *at : len;

		if (*at < sizeof head)
			memcpy(head + *at, buf, sizeof head - *at < take ? sizeof head - *at : take);
		*at += take;
		buf += take;
		len -= take;
		if (*at < mlen)
			break;
		*at = 0;
		memcpy(&got, head, sizeof got);
		if (got != *seq)
			return workers_fail("expected message %llu, got %llu",
					    (unsigned long long)*seq, (unsigned long long)got);
		if (++*seq == warm)
			sh->t_start = mono_ns();
	}
	return 0;
}

static int receiver(bool batched)
{
	static uint8_t buf[MAX_MSG];
	static struct mmsghdr mm[BATCH];
	static struct iovec iov[BATCH];
	uint64_t seq = 0, n = warm + count;
	size_t carry = 0;
	ssize_t got;

	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = buf + i * MSG, .iov_len = MSG };
		mm[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	while (seq < n) {
		if (batched && ch.kind == SEQPACKET) {
			int r = recvmmsg(ch.rfd[0], mm, BATCH, MSG_WAITFORONE, NULL);

			if (r <= 0)
				return workers_fail("recvmmsg: %s",
						    r ? strerror(errno) : "nothing");
			got = (ssize_t)r * MSG;
		} else {
			got = chan_recv(0, buf, ch.kind == STREAM || ch.kind == PIPE ? sizeof buf : MSG);
			if (got < 0)
				return -1;
		}
		if (check(buf, (size_t)got, batched ? MSG : msg_len, &seq, &carry))
			return -1;
	}
	sh->t_end = mono_ns();
	return 0;
}

static int tput_worker(int role, void *arg)
{
	bool batched = arg != NULL;

	return role ? receiver(batched) : sender(batched);
}

static int run_tput(void *arg, double *out)
{
	int rc = chan_open(ch.kind);

	if (!rc)
		rc = workers_run(2, B.cpu, tput_worker, arg, 60);
	chan_close();
	if (rc)
		return -1;
	out[0] = (double)count / ((double)(sh->t_end - sh->t_start) / 1e9) / 1e6;
	out[1] = out[0] * 1e6 * (double)(arg ? MSG : msg_len) / 1e9;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

static int rtt_worker(int role, void *arg)
{
	uint8_t buf[MSG], back[MSG];
	uint64_t n = warm + count;

	(void)arg;
	memset(buf, 0x33, sizeof buf);
	for (uint64_t seq = 0; seq < n; seq++) {
		uint64_t t0 = measure_ticks(), got;

		if (role == 0) {
			stamp(buf, seq);
			if (chan_send(0, buf, MSG))
				return -1;
		}
		for (size_t have = 0; have < MSG;) {
			ssize_t r = chan_recv(!role, back + have, MSG - have);

			if (r < 0)
				return -1;
			have += (size_t)r;
		}
		memcpy(&got, back, sizeof got);
		if (got != seq)
			return workers_fail("round trip %llu came back as %llu",
					    (unsigned long long)seq, (unsigned long long)got);
		if (role == 1 && chan_send(1, back, MSG))
			return -1;
		if (role == 0 && seq >= warm)
			sh->samples[seq - warm] = measure_ticks() - t0;
	}
	return 0;
}

static int run_rtt(void *arg, double *out)
{
	static const double q[] = { 0.5, 0.9, 0.99, 0.999 };
	int rc = chan_open(ch.kind);

	(void)arg;
	if (!rc)
		rc = workers_run(2, B.cpu, rtt_worker, NULL, 60);
	chan_close();
	if (rc)
		return -1;
	measure_quantiles_ns(sh->samples, count, q, 4, out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The cases                                                           */

static const struct bmetric m_rate[] = { { "rate", "M msg/s", HIGHER },
					 { "bw", "GB/s", HIGHER } };
static const struct bmetric m_trip[] = { { "p50", "ns", LOWER }, { "p90", "ns", LOWER },
					 { "p99", "ns", LOWER }, { "p99.9", "ns", LOWER } };

static void transport_cases(enum kind k)
{
	char id[64], title[128], note[400];

	ch.kind = k;
	warm = tput_count / 10;
	count = tput_count;
	snprintf(id, sizeof id, "%s.tput", kind_name[k]);
	snprintf(title, sizeof title, "%s, one write per message", kind_title[k]);
	snprintf(note, sizeof note, "64-byte messages, CPU %d -> CPU %d, one %s per message, "
		 "blocking; %llu warm-up + %llu timed messages a run", B.cpu[0], B.cpu[1],
		 k == MQ ? "mq_send" : "write", (unsigned long long)warm, (unsigned long long)count);
	b_case(id, title, note, m_rate, 1, run_tput, NULL);

	snprintf(id, sizeof id, "%s.batch", kind_name[k]);
	snprintf(title, sizeof title, "%s, batched 32 per call", kind_title[k]);
	if (k == MQ) {
		b_skip(id, title, "POSIX message queues have no batched send (one mq_send per "
		       "message is their only form)");
	} else {
		warm = batch_count / 10;
		count = batch_count;
		snprintf(note, sizeof note, "64-byte messages, %s; %llu warm-up + %llu timed "
			 "messages a run", k == SEQPACKET ? "sendmmsg / recvmmsg of 32" :
			 "one 2 KiB write of 32 messages, reads of up to 64 KiB",
			 (unsigned long long)warm, (unsigned long long)count);
		b_case(id, title, note, m_rate, 1, run_tput, &ch);
	}

	warm = rtt_count / 10;
	count = rtt_count;
	snprintf(id, sizeof id, "%s.rtt", kind_name[k]);
	snprintf(title, sizeof title, "%s, round trip", kind_title[k]);
	snprintf(note, sizeof note, "64-byte message there and back between CPUs %d and %d, "
		 "both sides blocking in %s; %llu warm-up + %llu timed round trips a run",
		 B.cpu[0], B.cpu[1], k == MQ ? "mq_receive" : "read", (unsigned long long)warm,
		 (unsigned long long)count);
	b_case(id, title, note, m_trip, 4, run_rtt, NULL);
}

/* One write per message of 1 KiB, 64 KiB and 1 MiB, on a stream or pipe. */
static void sized_cases(enum kind k)
{
	static const size_t sizes[] = { 1024, 65536, 1 << 20 };
	static const char *const names[] = { "1KiB", "64KiB", "1MiB" };
	uint64_t budget = (B.quick ? 512ULL : 2048ULL) << 20;
	char id[64], title[128], note[400];

	ch.kind = k;
	for (int i = 0; i < 3; i++) {
		msg_len = sizes[i];
		count = budget / msg_len < tput_count ? budget / msg_len : tput_count;
		warm = count / 10;
		snprintf(id, sizeof id, "%s.tput.%s", kind_name[k], names[i]);
		snprintf(title, sizeof title, "%s, %s messages, one write each", kind_title[k],
			 names[i]);
		snprintf(note, sizeof note, "%zu-byte messages, CPU %d -> CPU %d, one write per "
			 "message, reads of up to 1 MiB, blocking; %llu warm-up + %llu timed messages "
			 "a run", msg_len, B.cpu[0], B.cpu[1], (unsigned long long)warm,
			 (unsigned long long)count);
		b_case(id, title, note, m_rate, 2, run_tput, NULL);
	}
	msg_len = MSG;
}

int main(int argc, char **argv)
{
	b_init("peers_ipc", argc, argv, NULL, NULL);
	tput_count = B.quick ? 100000 : 500000;
	batch_count = B.quick ? 400000 : 2000000;
	rtt_count = B.quick ? 3000 : 20000;
	sh = b_shared(sizeof *sh + rtt_count * sizeof(uint64_t));
	if (!sh) {
		fprintf(stderr, "peers_ipc: %s\n", workers_why());
		return 1;
	}
	for (enum kind k = STREAM; k <= MQ; k++)
		transport_cases(k);
	sized_cases(STREAM);
	sized_cases(PIPE);
	return b_exit();
}
