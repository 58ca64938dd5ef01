/*
 * test_cli_groups.c - `shmbus consume -G` and `shmbus groups` against a
 * real shmbusd: a balanced consumer reads every record once and commits;
 * list, describe (table and JSON), reset-offsets (refused while the group
 * has members; --dry-run writes nothing) and delete; the messages without
 * a daemon and for bad command lines.
 */
#include "test_daemon.h"

#include <sys/wait.h>

#include "lib/clirun.h"

static int setup(void **state)
{
	struct env *e;

	daemon_setup(state);
	e = *state;
	start_or_fail(&e->d[0], e->root, NULL, NULL);
	return 0;
}

static int teardown(void **state)
{
	reap_children();
	return daemon_teardown(state);
}

static void cli_ok(const char *root, const char *in, const char *const *args, const char *what)
{
	struct run r;

	run_in(&r, root, NULL, in, len_of(in), RUN_TIMEOUT_MS, args);
	expect_ok(&r, what);
	run_free(&r);
}

/* Wait until `groups describe g` says `state`. */
static void wait_state(const char *root, const char *state)
{
	int64_t end = tu_ms() + 10000;

	for (;;) {
		struct run r;
		bool ok;

		CLI(&r, root, NULL, "groups", "describe", "g");
		ok = r.status == 0 && strstr(r.out, state);
		run_free(&r);
		if (ok)
			return;
		if (tu_ms() > end)
			fail_msg("group g never became %s", state);
		mp_sleep_us(20000);
	}
}

static void consume_G_and_the_groups_commands(void **state)
{
	struct env *e = *state;
	const char *root = e->root;
	struct child c;
	struct run r;
	int lines = 0;

	cli_ok(root, NULL, ARGS("topic", "create", "t", "--partitions", "4"), "topic create");
	cli_ok(root, "a\nb\nc\nd\ne\nf\ng\nh\n", ARGS("produce", "t"), "produce");
	CLI(&r, root, NULL, "consume", "-G", "g", "t", "-e");
	expect_ok(&r, "consume -G -e");
	for (const char *p = r.out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 8);
	run_free(&r);

	CLI(&r, root, NULL, "groups", "list");
	expect_ok(&r, "groups list");
	expect_row(r.out, "g empty 0", "an empty group");
	run_free(&r);
	CLI(&r, root, NULL, "groups", "describe", "g", "--json");
	expect_ok(&r, "groups describe --json");
	expect_contains(r.out, "\"state\":\"empty\"", "describe --json");
	expect_contains(r.out, "\"committed\":2,\"end\":2,\"lag\":0", "every record committed");
	run_free(&r);

	/* a member that stays: reset and delete are refused */
	c = spawn(root, NULL, ARGS("consume", "-G", "g", "t", "--instance-id", "w1"));
	wait_state(root, "stable");
	CLI(&r, root, NULL, "groups", "describe", "g");
	expect_ok(&r, "describe with a member");
	expect_contains(r.out, "w1", "the instance id");
	expect_contains(r.out, "cooperative-sticky", "the assignor");
	run_free(&r);
	CLI(&r, root, NULL, "groups", "reset-offsets", "g", "--topic", "t", "--to-earliest");
	expect_status(&r, 1, "reset with a member");
	expect_contains(r.err, "has 1 member", "reset with a member");
	run_free(&r);
	CLI(&r, root, NULL, "groups", "delete", "g");
	expect_status(&r, 1, "delete with a member");
	expect_contains(r.err, "stop its consumers first", "delete with a member");
	run_free(&r);
	kill(c.pid, SIGTERM);
	finish(&c, &r, tu_ms() + 10000);
	expect_ok(&r, "consume -G ends on SIGTERM");
	run_free(&r);

	/* it left (a clean exit leaves, static or not): now they are served */
	CLI(&r, root, NULL, "groups", "reset-offsets", "g", "--topic", "t", "--to-earliest",
	    "--dry-run");
	expect_ok(&r, "reset --dry-run after the member left");
	expect_contains(r.out, "dry run", "--dry-run");
	run_free(&r);
	CLI(&r, root, NULL, "groups", "reset-offsets", "g", "--topic", "t", "--shift-by", "-1");
	expect_ok(&r, "reset --shift-by -1");
	run_free(&r);
	CLI(&r, root, NULL, "groups", "describe", "g", "--json");
	expect_contains(r.out, "\"committed\":1,\"end\":2,\"lag\":1", "shifted back by one");
	run_free(&r);
	cli_ok(root, NULL, ARGS("groups", "delete", "g"), "groups delete");
	CLI(&r, root, NULL, "groups", "describe", "g");
	expect_status(&r, 1, "describe a deleted group");
	expect_contains(r.err, "unknown group \"g\"", "describe a deleted group");
	run_free(&r);
}

static void errors_say_what_to_do(void **state)
{
	struct env *e = *state;
	struct run r;

	cli_ok(e->root, NULL, ARGS("topic", "create", "t"), "topic create");
	CLI(&r, e->root, NULL, "consume", "-G", "g", "t", "-p", "0");
	expect_status(&r, 2, "-G with -p");
	run_free(&r);
	CLI(&r, e->root, NULL, "consume", "-G", "g", "--pattern", "t[", "-e");
	expect_status(&r, 1, "a pattern that does not compile");
	expect_contains(r.err, "does not compile", "a bad pattern");
	run_free(&r);
	CLI(&r, e->root, NULL, "groups", "reset-offsets", "g", "--topic", "t");
	expect_status(&r, 2, "reset without --to-*");
	run_free(&r);
	CLI(&r, e->root, NULL, "groups", "reset-offsets", "g", "--topic", "t", "--to-datetime",
	    "yesterday");
	expect_status(&r, 2, "a bad datetime");
	expect_contains(r.err, "ISO 8601", "a bad datetime");
	run_free(&r);
	CLI(&r, e->root, NULL, "groups", "describe", "nosuch");
	expect_status(&r, 1, "an unknown group");
	expect_contains(r.err, "unknown group \"nosuch\"", "an unknown group");
	run_free(&r);
	stop_ok(&e->d[0]);
	CLI(&r, e->root, NULL, "consume", "-G", "g", "t");
	expect_status(&r, 1, "-G without a daemon");
	expect_contains(r.err, "shmbusd --root", "how to start the daemon");
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(consume_G_and_the_groups_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(errors_say_what_to_do, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
