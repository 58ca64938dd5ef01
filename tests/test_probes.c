/*
 * test_probes.c - every USDT probe of shm/probes.h is in the built
 * libshmbus.so (the LIB and DAEMON ones) and shmbusd (the DAEMON and
 * SHMBUSD ones), with the listed number
 * of arguments, each in a form libbpf 1.1 can read, with a semaphore.
 *
 * `readelf -n` prints each stapsdt note as
 *     stapsdt  0x..  NT_STAPSDT (SystemTap probe descriptors)
 *       Provider: shmbus
 *       Name: append
 *       Location: 0x.., Base: 0x.., Semaphore: 0x..
 *       Arguments: 8@%rax 4@88(%rdx) 8@%r9 8@40(%r11) 8@%rcx
 * libbpf 1.1 reads an argument that is a register (N@%reg), a constant
 * (N@$imm) or a register plus a displacement (N@off(%reg), N@(%reg)); it
 * cannot read a scaled index (N@off(%base,%index,scale)).
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/testutil.h"

#define MAX_PROBES 64
#define MAX_NOTES 256

struct listed {
	char name[32];
	int nargs;
	int daemon; /* in shmbusd */
	int lib;    /* in libshmbus */
};

struct note {
	char name[32];
	char args[256];
	int semaphore;
};

static const char *build_dir(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build";
}

/* The X(name, n, WHERE, ...) lines of shm/probes.h. */
static size_t listed_probes(struct listed *out)
{
	FILE *f = fopen("shm/probes.h", "r");
	char line[512];
	size_t n = 0;

	if (!f)
		fail_msg("cannot open shm/probes.h (run from the source tree): %s", strerror(errno));
	while (fgets(line, sizeof line, f) && n < MAX_PROBES) {
		char where[16];
		struct listed *l = &out[n];

		if (sscanf(line, " X(%31[a-z_], %d, %15[A-Z],", l->name, &l->nargs, where) == 3) {
			l->daemon = !strcmp(where, "DAEMON") || !strcmp(where, "SHMBUSD");
			l->lib = strcmp(where, "SHMBUSD") != 0;
			n++;
		}
	}
	fclose(f);
	return n;
}

static size_t read_notes(const char *binary, struct note *out)
{
	char cmd[512], line[512];
	FILE *f;
	size_t n = 0;
	int in_shmbus = 0;

	snprintf(cmd, sizeof cmd, "readelf -n '%s' 2>&1", binary);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f)) {
		char *v;

		line[strcspn(line, "\n")] = '\0';
		if ((v = strstr(line, "Provider: ")))
			in_shmbus = strcmp(v + 10, "shmbus") == 0;
		else if (in_shmbus && (v = strstr(line, "Name: ")) && n < MAX_NOTES)
			snprintf(out[n++].name, sizeof out[0].name, "%s", v + 6);
		else if (in_shmbus && n && (v = strstr(line, "Semaphore: ")))
			out[n - 1].semaphore = strtoull(v + 11, NULL, 16) != 0;
		else if (in_shmbus && n && (v = strstr(line, "Arguments: ")))
			snprintf(out[n - 1].args, sizeof out[0].args, "%s", v + 11);
	}
	assert_int_equal(pclose(f), 0);
	return n;
}

/* The arguments' count, or -1 naming the first one libbpf 1.1 cannot read. */
static int readable_args(const char *args, char *bad, size_t badsz)
{
	static const char *form = "^-?[1248]@(%[a-z0-9]+|\\$-?[0-9]+|-?[0-9]*\\(%[a-z0-9]+\\))$";
	char copy[256], *save = NULL;
	regex_t re;
	int n = 0;

	assert_int_equal(regcomp(&re, form, REG_EXTENDED | REG_NOSUB), 0);
	snprintf(copy, sizeof copy, "%s", args);
	for (char *a = strtok_r(copy, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
		if (regexec(&re, a, 0, NULL, 0) != 0) {
			snprintf(bad, badsz, "%s", a);
			n = -1;
			break;
		}
		n++;
	}
	regfree(&re);
	return n;
}

static void check_binary(const char *binary, int daemon_only)
{
	static struct listed probes[MAX_PROBES];
	static struct note notes[MAX_NOTES];
	size_t np = listed_probes(probes), nn = read_notes(binary, notes);

	assert_true(np >= 10);
	for (size_t i = 0; i < np; i++) {
		int found = 0;

		if (daemon_only ? !probes[i].daemon : !probes[i].lib)
			continue;
		for (size_t j = 0; j < nn; j++) {
			char bad[64] = "";
			int k;

			if (strcmp(notes[j].name, probes[i].name) != 0)
				continue;
			found++;
			k = readable_args(notes[j].args, bad, sizeof bad);
			if (k < 0)
				fail_msg("%s: probe %s has an argument libbpf 1.1 cannot read: %s "
					 "(all: %s); pass a plain scalar", binary, probes[i].name,
					 bad, notes[j].args);
			if (k != probes[i].nargs)
				fail_msg("%s: probe %s has %d arguments (%s); shm/probes.h lists %d",
					 binary, probes[i].name, k, notes[j].args, probes[i].nargs);
			/* an archive's objects are not relocated yet: no address */
			if (!notes[j].semaphore && !strstr(binary, ".a"))
				fail_msg("%s: probe %s has no semaphore", binary, probes[i].name);
		}
		if (!found)
			fail_msg("%s: probe %s (shm/probes.h) is not in it: is its site compiled "
				 "out, or its object not linked?", binary, probes[i].name);
	}
	/* and nothing fires that the list does not declare */
	for (size_t j = 0; j < nn; j++) {
		size_t i = 0;

		while (i < np && strcmp(notes[j].name, probes[i].name) != 0)
			i++;
		if (i == np)
			fail_msg("%s: probe %s is not listed in shm/probes.h", binary, notes[j].name);
	}
}

static void test_library_has_every_probe(void **state)
{
	char path[512];

	(void)state;
	snprintf(path, sizeof path, "%s/libshmbus.so", build_dir());
	check_binary(path, 0);
}

static void test_daemon_has_its_probes(void **state)
{
	char path[512];

	(void)state;
	snprintf(path, sizeof path, "%s/shmbusd", build_dir());
	check_binary(path, 1);
}

/* The static library carries the probes too (applications that link it
 * are traced through their own executable). */
static void test_static_library_has_every_probe(void **state)
{
	char path[512];

	(void)state;
	snprintf(path, sizeof path, "%s/libshmbus.a", build_dir());
	check_binary(path, 0);
}

static void test_arg_forms(void **state)
{
	char bad[64];

	(void)state;
	assert_int_equal(readable_args("8@%rax 4@88(%rdx) -4@$-1 8@(%rdi) -8@-24(%rbp)", bad,
				       sizeof bad), 5);
	assert_int_equal(readable_args("8@%rax 8@8(%rsp,%rax,8)", bad, sizeof bad), -1);
	assert_string_equal(bad, "8@8(%rsp,%rax,8)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arg_forms),
		cmocka_unit_test(test_library_has_every_probe),
		cmocka_unit_test(test_static_library_has_every_probe),
		cmocka_unit_test(test_daemon_has_its_probes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
