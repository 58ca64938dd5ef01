/*
 * attach.c - which binaries carry libshmbus's probes, and attaching the
 * BPF programs to them.
 *
 * USDT probes live in the file that holds the code: libshmbus.so for the
 * programs that link it dynamically, and the executable itself for those
 * that link libshmbus.a (the shmbus command, shmbusd, the tests, any
 * application).  So the tracer attaches by file: every executable and
 * every mapped libshmbus.so* of the processes it finds in /proc whose
 * bytes hold the probes' notes, plus the libshmbus.so installed beside it
 * and the shmbus and shmbusd commands installed beside it (processes
 * started later run them), and any binary named with --binary.  With -p PID it looks at that process
 * alone and the programs filter on its pid.  A process started later from
 * a binary not yet attached is found at the next interval's rescan.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "trace.skel.h"
#include "trace_int.h"

/* A stapsdt note's text: provider, NUL, probe name, NUL */
static const char note_text[] = "shmbus\0append";

static bool file_has_probes(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *m;
	bool has = false;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			has = memmem(m, (size_t)st.st_size, note_text, sizeof note_text) != NULL;
			munmap(m, (size_t)st.st_size);
		}
	}
	close(fd);
	return has;
}

bool trace_has_probes(struct tracer *t, const char *path)
{
	for (size_t i = 0; i < t->nseen; i++)
		if (!strcmp(t->seen[i], path))
			return t->seen_has[i];
	if (t->nseen == MAX_SEEN)
		return file_has_probes(path);
	snprintf(t->seen[t->nseen], PATH_MAX, "%s", path);
	t->seen_has[t->nseen] = file_has_probes(path);
	return t->seen_has[t->nseen++];
}

static int keep_link(struct tracer *t, struct bpf_link *l)
{
	if (t->nlinks == t->links_cap) {
		size_t cap = t->links_cap ? 2 * t->links_cap : 64;
		struct bpf_link **n = realloc(t->links, cap * sizeof *n);

		if (!n)
			return -ENOMEM;
		t->links = n;
		t->links_cap = cap;
	}
	t->links[t->nlinks++] = l;
	return 0;
}

int trace_attach_binary(struct tracer *t, const char *path)
{
	struct trace_bpf *s = t->skel;
	const struct { const char *name; struct bpf_program *prog; } probes[] = {
		{ "append", s->progs.on_append }, { "commit", s->progs.on_commit },
		{ "deliver", s->progs.on_deliver }, { "abort", s->progs.on_abort },
		{ "unblock", s->progs.on_unblock }, { "stall", s->progs.on_stall },
		{ "lap", s->progs.on_lap }, { "reset", s->progs.on_reset },
		{ "wait", s->progs.on_wait }, { "wake", s->progs.on_wake },
		{ "bp_blocked", s->progs.on_bp_blocked },
		{ "group_rebalance", s->progs.on_group_rebalance },
		{ "group_assign", s->progs.on_group_assign },
	};
	int attached = 0;

	for (size_t i = 0; i < t->ntargets; i++)
		if (!strcmp(t->targets[i], path))
			return 0;
	if (t->ntargets == MAX_TARGETS)
		return -ENOSPC;
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		struct bpf_link *l = bpf_program__attach_usdt(probes[i].prog, t->pid ? t->pid : -1,
							      path, "shmbus", probes[i].name, NULL);

		if (!l) {
			/* a binary may lack the consumer's probes (shmbusd) */
			if (t->verbose)
				fprintf(stderr, "shmbus trace: %s: no probe %s (%s)\n", path,
					probes[i].name, strerror(errno));
			continue;
		}
		if (keep_link(t, l) < 0) {
			bpf_link__destroy(l);
			return -ENOMEM;
		}
		attached++;
	}
	if (!attached)
		return -ENOENT;
	snprintf(t->targets[t->ntargets++], PATH_MAX, "%s", path);
	return 1;
}

/* The executable of pid, and the libshmbus.so* it maps, if they hold probes */
static int scan_pid(struct tracer *t, const char *pid)
{
	char path[PATH_MAX], link[64], line[PATH_MAX + 256];
	ssize_t n;
	FILE *f;
	int added = 0;

	snprintf(link, sizeof link, "/proc/%s/exe", pid);
	n = readlink(link, path, sizeof path - 1);
	if (n > 0) {
		path[n] = '\0';
		if (trace_has_probes(t, path) && trace_attach_binary(t, path) > 0)
			added++;
	}
	snprintf(link, sizeof link, "/proc/%s/maps", pid);
	f = fopen(link, "re");
	if (!f)
		return added;
	while (fgets(line, sizeof line, f)) {
		char *p = strchr(line, '/');

		if (!p || !strstr(p, "/libshmbus"))
			continue;
		p[strcspn(p, "\n")] = '\0';
		if (trace_has_probes(t, p) && trace_attach_binary(t, p) > 0)
			added++;
	}
	fclose(f);
	return added;
}

int trace_scan(struct tracer *t)
{
	DIR *d;
	struct dirent *e;
	int added = 0;

	if (t->pid) {
		char pid[16];

		snprintf(pid, sizeof pid, "%d", (int)t->pid);
		return scan_pid(t, pid);
	}
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
			added += scan_pid(t, e->d_name);
	closedir(d);
	return added;
}

void trace_attach_own_library(struct tracer *t)
{
	static const char *const rel[] = { "libshmbus.so.1", "../lib/libshmbus.so.1", "shmbus",
					   "shmbusd", "../sbin/shmbusd" };
	char self[PATH_MAX], path[PATH_MAX + 32], real[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;

	if (n <= 0)
		return;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return;
	slash[1] = '\0';
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		snprintf(path, sizeof path, "%s%s", self, rel[i]);
		if (realpath(path, real) && trace_has_probes(t, real))
			trace_attach_binary(t, real);
	}
}

void trace_detach_all(struct tracer *t)
{
	for (size_t i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);
	free(t->links);
	t->links = NULL;
	t->nlinks = t->links_cap = 0;
}
