/*
 * test_model.c - model/ring.pml, the Promela model of the partition
 * ring's protocol (docs/format.md "The model"), checked exhaustively by
 * spin in each configuration listed below.
 *
 * Each case runs spin -a with the configuration's switches, compiles the
 * verifier (pan) with -DSAFETY (assertions and invalid end states; no
 * bitstate hashing: every reachable state is stored) and runs it.  A case
 * that must pass needs "errors: 0" from a search that ran to its end; one
 * that must fail needs spin to report the assertion it names (and write
 * a trail).  Four kinds:
 *
 *   - the protocol in configurations that each exercise a part of it;
 *   - the three findings the model made in the code before their fixes,
 *     and a fourth defect a stressed test found, modelled since: with the
 *     old code's switch (OLD_...), each fails again;
 *   - seeded bugs on top of a passing configuration: each fails;
 *   - a fifth, in the first form of that defect's fix, found by the model
 *     once the fix was modelled: its old switch fails, the code passes.
 *
 * Without spin (Debian package "spin") or a C compiler the cases skip.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>

/* The old code of the four findings (model/ring.pml's header says what
 * each was). */
#define OLD_UNBLOCK "-DOLD_UNBLOCK"
#define OLD_GONE "-DOLD_GONE_PID"
#define OLD_SKIP "-DOLD_SKIP_LAP"
#define OLD_ZERO "-DOLD_ZERO_AHEAD"

/* Configurations (docs/format.md "The model" says what each covers). */
#define READ "-DC=2 -DSTART=0"
#define FRONTIER "-DC=3 -DSTART=2"
#define CRASH "-DC=2 -DSTART=1 -DKILLS=1"
#define DAEMON_GONE "-DC=2 -DSTART=1 -DK1=0 -DKILLS=1 -DDAEMON=1"
#define UNSTICK "-DC=2 -DSTART=1 -DK1=0 -DDAEMON=2 -DATTEMPTS=1"
#define GONE "-DC=2 -DSTART=1 -DKILLS=3 -DDAEMON=1 -DNO_CONSUMER"
#define SLOTS "-DC=3 -DK0=2 -DK1=0 -DSTART=2 -DDAEMON=2 -DATTEMPTS=1 -DNO_CONSUMER"
#define LAPS "-DC=2 -DK0=3 -DK1=0 -DSTART=1"
#define STALE "-DC=2 -DK0=3 -DK1=0 -DSTART=1 -DDAEMON=2 -DATTEMPTS=1 -DNO_CONSUMER"
#define HORIZON "-DC=3 -DSTART=0"
/* older bytes (COMMITTED, for the next offset) where the first new claim
 * ends, with two claims in flight: the smallest ring where the next claim
 * can exist before the one before it zeroes ahead */
#define OLDER_BYTES "-DC=3 -DSTART=2 -DOLD_BYTES=1"

struct model_case {
	const char *flags;
	const char *fails_with; /* NULL: must pass; else the assertion spin reports */
	bool big;               /* a million states or more: compile pan optimised */
};

#define PASS(name, cfg, b) \
	static const struct model_case name = { cfg, NULL, b }
#define FAIL(name, cfg, text) \
	static const struct model_case name = { cfg, text, false }

PASS(case_read, READ, true);
PASS(case_frontier, FRONTIER, true);
PASS(case_crash, CRASH, true);
PASS(case_daemon_gone, DAEMON_GONE, true);
PASS(case_unstick, UNSTICK, true);
PASS(case_gone, GONE, true);
PASS(case_slots, SLOTS, false);
PASS(case_laps, LAPS, false);
PASS(case_stale, STALE, false);
PASS(case_horizon, HORIZON, true);
PASS(case_old_bytes, OLDER_BYTES, true);

/* findings: the code before each fix, the others fixed */
FAIL(case_finding_stale_unblock, STALE " " OLD_UNBLOCK, "(idx[(g%2)]<=ac_pos)");
FAIL(case_finding_gone_aborts_another, GONE " " OLD_GONE, "(owner[g]==dmand)");
FAIL(case_finding_skip_after_lap, LAPS " " OLD_SKIP, "!((committed&(1<<g)))");
FAIL(case_finding_zero_ahead_leaves_old_bytes, OLDER_BYTES " " OLD_ZERO " -DOLD_READER_DAMAGE",
     "(t_seen>=(pos+3))");

/* seeded bugs */
FAIL(case_bug_commit_before_payload, READ " -DBUG_COMMIT_BEFORE_PAYLOAD",
     "((h1==(v_off+1))&&(h2==(v_off+1)))");
FAIL(case_bug_no_lap_check, READ " -DBUG_NO_LAP_CHECK",
     "((h1==(v_off+1))&&(h2==(v_off+1)))");
FAIL(case_bug_mark_by_store, READ " -DBUG_MARK_BY_STORE", "!((aborted&(1<<off)))");
FAIL(case_bug_no_announcements, FRONTIER " -DBUG_NO_ANNOUNCEMENTS",
     "(owner[g]==owner[off])");
FAIL(case_bug_no_seqlock_recheck, SLOTS " -DBUG_NO_SEQLOCK_RECHECK",
     "(claimpos[ac_off]==ac_pos)");
/* millions of states before the trail: compiled optimised */
static const struct model_case case_bug_horizon_after_write = {
	HORIZON " -DBUG_HORIZON_AFTER_WRITE", "((h1==(v_off+1))&&(h2==(v_off+1)))", true
};

/* Found by this model in dda512e's first form of part_zero_ahead's fix:
 * an unblocker's ABORTED word for the next offset, stored before its
 * index entries, was taken for older bytes and cleared; the producer of
 * that offset then committed it (P2).  The code leaves the word while an
 * unblocker holds the guard; OLD_ZERO_NO_GUARD brings the first form
 * back. */
#define ZERO_ABORT "-DC=3 -DSTART=2 -DDAEMON=2 -DATTEMPTS=1 -DNO_CONSUMER"
PASS(case_zero_ahead_keeps_abort, ZERO_ABORT, true);
FAIL(case_finding_zero_ahead_erases_abort, ZERO_ABORT " -DOLD_ZERO_NO_GUARD",
     "!((aborted&(1<<off)))");

/* Found while correcting finding 5: a producer killed after its claim
 * CAS, older bytes carrying its offset's bits at its claim, and the claim
 * before zeroing ahead while shmbusd's unblock (after the death, aborting
 * nothing) guards that position: the word was left under the guard, and
 * nothing cleared it (I3).  The zeroing now waits for the guard's release
 * and judges again; OLD_ZERO_NO_WAIT brings back leaving it. */
#define ZERO_DEATH "-DC=3 -DSTART=2 -DKILLS=2 -DDAEMON=1 -DNO_CONSUMER -DOLD_BYTES=1"
PASS(case_zero_ahead_waits_for_the_guard, ZERO_DEATH, true);
FAIL(case_finding_zero_ahead_leaves_under_guard, ZERO_DEATH " -DOLD_ZERO_NO_WAIT",
     "(end!=((3-1)+1))");

/* Readers and unblockers behind the zeroing (format.md §6, older bytes):
 * with the zeroing's old rule, which leaves every word carrying the next
 * offset's bits (what the code's zeroing still leaves is a part of that),
 * no reader reports damage or is stuck, and nothing torn is delivered;
 * OLD_READER_DAMAGE, the reader before, fails above. */
PASS(case_older_bytes_left, "-DC=3 -DSTART=2 -DOLD_BYTES=3 " OLD_ZERO, true);

/* ------------------------------------------------------------------ */

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* The whole of a (small) file, NUL-terminated; NULL if unreadable. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf)
		buf[fread(buf, 1, (size_t)n, f)] = '\0';
	fclose(f);
	return buf;
}

/* A line of pan's report, for the log: "<what> <number> ..." */
static void report(const char *out, const char *what)
{
	const char *at = strstr(out, what);
	const char *start, *end;

	if (!at)
		return;
	for (start = at; start > out && start[-1] != '\n'; start--)
		;
	end = strchr(at, '\n');
	printf("# %.*s\n", (int)(end ? end - start : (long)strlen(start)), start);
}

/* What is wrong with pan's report for this case, or NULL. */
static const char *judge(const struct model_case *mc, const char *out, bool trail)
{
	if (strstr(out, "reached -DMEMLIM"))
		return "the search hit its memory bound: not exhaustive";
	if (!mc->fails_with) {
		if (!strstr(out, "errors: 0"))
			return "spin found an error in the model";
		/* (a search stopped by an error says so too) */
		return strstr(out, "Search not completed") ? "the search did not finish" : NULL;
	}
	if (!strstr(out, "assertion violated") || !strstr(out, mc->fails_with))
		return "spin did not report the expected violation";
	return trail ? NULL : "spin reported the violation but wrote no trail";
}

static void run_case(void **state)
{
	const struct model_case *mc = *state;
	const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "gcc";
	char model[PATH_MAX], rel[PATH_MAX], cmd[2 * PATH_MAX + 1024], path[PATH_MAX + 32];
	const char *wrong;
	char *dir, *out;
	bool trail;
	int rc;

	if (!have("spin"))
		tu_skip("spin is not installed (apt-get install spin): the model is not checked");
	if (!have(cc))
		tu_skip("no C compiler (%s) to build spin's verifier", cc);
	snprintf(rel, sizeof rel, "%s/model/ring.pml", tu_srcdir());
	if (!realpath(rel, model))
		tu_skip("%s not found (run from the source tree or set SHMBUS_SRCDIR)", rel);
	dir = tu_tmpdir("model");
	/* spin writes pan.c into the working directory; -DMEMLIM bounds the
	 * search's memory (a search that hits it fails: not exhaustive) */
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && cp '%s' ring.pml && spin %s -a ring.pml >pan.log 2>&1 && "
		 "%s %s -DSAFETY -DCOLLAPSE -DMEMLIM=1024 -w -o pan pan.c >>pan.log 2>&1 && "
		 "timeout 600 ./pan -m500000 >pan.log 2>&1",
		 dir, model, mc->flags, cc, mc->big ? "-Og" : "-O0");
	printf("# spin %s\n", mc->flags);
	fflush(stdout);
	rc = system(cmd);
	snprintf(path, sizeof path, "%s/pan.log", dir);
	out = slurp(path);
	snprintf(path, sizeof path, "%s/ring.pml.trail", dir);
	trail = access(path, R_OK) == 0;
	tu_rmrf(dir);
	free(dir);
	if (!out || !strstr(out, "errors:"))
		fail_msg("spin or pan did not run (status %d): %s", rc, out ? out : "(no output)");
	report(out, "assertion violated");
	report(out, "states, stored");
	report(out, "elapsed time");
	wrong = judge(mc, out, trail);
	if (wrong)
		fail_msg("%s%s%s:\n%s\n(replay: spin %s -a model/ring.pml && cc -DSAFETY -o pan "
			 "pan.c && ./pan && spin %s -t -p model/ring.pml)", wrong,
			 mc->fails_with ? " " : "", mc->fails_with ? mc->fails_with : "", out,
			 mc->flags, mc->flags);
	free(out);
}

#define CASE(n, c) { .name = n, .test_func = run_case, .initial_state = (void *)&(c) }

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE("model passes: a consumer reads a lap being overwritten", case_read),
		CASE("model passes: two claims in flight, the consumer unblocks them", case_frontier),
		CASE("model passes: a producer killed mid-claim, the consumer unblocks", case_crash),
		CASE("model passes: shmbusd and the consumer after a producer's death",
		     case_daemon_gone),
		CASE("model passes: shmbusd aborts a stuck claim under a consumer", case_unstick),
		CASE("model passes: shmbusd after either producer's death", case_gone),
		CASE("model passes: announcements read while rewritten", case_slots),
		CASE("model passes: the consumer passes aborted ranges over laps", case_laps),
		CASE("model passes: shmbusd unblocks while the ring laps", case_stale),
		CASE("model passes: the horizon bounds a lap two claims write at once",
		     case_horizon),
		CASE("model passes: older bytes for the next offset zeroed past a claim",
		     case_old_bytes),
		CASE("finding 1, the old code: a late part_unblock writes into the next lap",
		     case_finding_stale_unblock),
		CASE("finding 2, the old code: client_gone aborts another producer's claim",
		     case_finding_gone_aborts_another),
		CASE("finding 3, the old code: skip_aborted trusts frame + 8 after a lap",
		     case_finding_skip_after_lap),
		CASE("finding 4, the old code: part_zero_ahead leaves older bytes, a reader reports damage",
		     case_finding_zero_ahead_leaves_old_bytes),
		CASE("model passes: readers and unblockers with every older word left",
		     case_older_bytes_left),
		CASE("seeded bug found: commit before the payload", case_bug_commit_before_payload),
		CASE("seeded bug found: no lap check after the copy", case_bug_no_lap_check),
		CASE("seeded bug found: CLAIMED marked by a plain store", case_bug_mark_by_store),
		CASE("seeded bug found: holes bounded without announcements",
		     case_bug_no_announcements),
		CASE("seeded bug found: writer slots read without the seqlock re-check",
		     case_bug_no_seqlock_recheck),
		CASE("seeded bug found: the horizon raised after the payload is written",
		     case_bug_horizon_after_write),
		CASE("model passes: zeroing ahead leaves an unblocker's abort", case_zero_ahead_keeps_abort),
		CASE("finding 5, dda512e's first fix: part_zero_ahead erases an unblocker's abort",
		     case_finding_zero_ahead_erases_abort),
		CASE("model passes: zeroing ahead waits for an unblock at the next claim",
		     case_zero_ahead_waits_for_the_guard),
		CASE("finding 6, finding 5's fix: zeroing ahead leaves older bytes under a guard",
		     case_finding_zero_ahead_leaves_under_guard),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
