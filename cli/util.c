/*
 * util.c - what the subcommands share: reporting errors (ours and the
 * library's), opening the bus, parsing numbers and sizes, formatting
 * sizes and times, and aligned tables.
 *
 * Every message goes to stderr as "shmbus: ..." and names the object and
 * the fix; a library failure is shown with shmbus_errmsg(), which does.
 */
#include "cli.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Errors and usage                                                    */

static char forgotten[512]; /* the library message last handled */

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("shmbus: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_err_forget(void)
{
	snprintf(forgotten, sizeof forgotten, "%s", shmbus_errmsg());
}

int cli_fail(int rc, const char *what)
{
	const char *msg = shmbus_errmsg();

	if (msg[0] && strcmp(msg, forgotten))
		cli_err("%s", msg);
	else
		cli_err("%s: %s", what, shmbus_strerror(rc));
	cli_err_forget();
	return CLI_EXIT_FAIL;
}

int cli_usage(const char *usage, int status)
{
	fputs(usage, status ? stderr : stdout);
	return status;
}

int cli_usage_err(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("shmbus: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return cli_usage(usage, CLI_EXIT_USAGE);
}

int cli_common_option(struct cli *cli, int c, const char *cmd, char **argv, const char *usage)
{
	const char *sep = *cmd ? ": " : "";

	switch (c) {
	case OPT_ROOT:
		cli->root = optarg;
		return -1;
	case 'h':
		return cli_usage(usage, 0);
	case ':':
		return cli_usage_err(usage, "%s%soption %s needs a value", cmd, sep, argv[optind - 1]);
	default:
		if (c == '?' && optopt > 0 && optopt < OPT_ROOT)
			return cli_usage_err(usage, "%s%sunknown option -%c", cmd, sep, optopt);
		return cli_usage_err(usage, "%s%sunknown option %s", cmd, sep, argv[optind - 1]);
	}
}

const char *cli_root(const struct cli *cli, char *buf, size_t len, const char **origin)
{
	const char *env = getenv("SHMBUS_ROOT");

	*origin = cli->root ? "given with --root" : env && *env ? "from $SHMBUS_ROOT"
							: "the default root";
	if (cli->root)
		snprintf(buf, len, "%s", cli->root);
	else if (shmbus_default_root(buf, len) < 0)
		snprintf(buf, len, "(the default root: its path is too long)");
	return buf;
}

/* "shmbus --root ROOT" when the root came from --root, else "shmbus". */
static const char *command_for(const struct cli *cli, char *buf, size_t len)
{
	snprintf(buf, len, "shmbus%s%s", cli->root ? " --root " : "", cli->root ? cli->root : "");
	return buf;
}

/* The library's message, with the root named and the fix when the user
 * cannot write there. */
static void open_failed(const struct cli *cli, int rc)
{
	char root[PATH_MAX];
	const char *origin, *msg = shmbus_errmsg();

	cli_root(cli, root, sizeof root, &origin);
	if (!msg[0] || !strcmp(msg, forgotten))
		msg = shmbus_strerror(rc);
	cli_err("%s%s%s%s", strstr(msg, root) ? "" : "bus root ", strstr(msg, root) ? "" : root,
		strstr(msg, root) ? "" : ": ", msg);
	if ((rc == -EACCES || rc == -EPERM || rc == -EROFS) && !strstr(msg, "--root"))
		cli_err("you may not use the bus root %s (%s): choose another with --root DIR "
			"or SHMBUS_ROOT, or ask its owner (`ls -ld %s`) to add you to its group",
			root, origin, root);
	cli_err_forget();
}

int cli_open(const struct cli *cli, bool create, shmbus **ret)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = cli->root, .no_create = true);
	char root[PATH_MAX], cmd[PATH_MAX + 16];
	const char *origin;
	int rc = shmbus_open(&o, ret);

	if (rc == -ENOENT) {
		struct stat st;
		bool had_dir;

		cli_err_forget();
		if (!create)
			return rc;
		/* only an explicit create makes a bus, and it says so */
		cli_root(cli, root, sizeof root, &origin);
		had_dir = stat(root, &st) == 0;
		o.no_create = false;
		rc = shmbus_open(&o, ret);
		if (rc == 0)
			printf("created %s %s (%s; `%s topic list` lists its topics)\n",
			       had_dir ? "a bus in" : "the bus root", root, origin,
			       command_for(cli, cmd, sizeof cmd));
	}
	if (rc < 0)
		open_failed(cli, rc);
	else if (shmbus_errmsg()[0]) /* opened, with a warning: shmbusd refused us */
		fprintf(stderr, "shmbus: warning: %s\n", shmbus_errmsg());
	return rc;
}

/* Why there is no bus: the root is missing, or holds none yet. */
static const char *why_no_bus(const struct cli *cli, char *buf, size_t len)
{
	char root[PATH_MAX];
	const char *origin;
	struct stat st;

	cli_root(cli, root, sizeof root, &origin);
	if (stat(root, &st) < 0 && errno == ENOENT)
		snprintf(buf, len, "the bus root %s (%s) does not exist", root, origin);
	else
		snprintf(buf, len, "there is no bus in %s (%s) yet", root, origin);
	return buf;
}

void cli_no_bus_note(const struct cli *cli)
{
	char why[PATH_MAX + 64], cmd[PATH_MAX + 16];

	cli_err("%s; `%s topic create NAME` makes one", why_no_bus(cli, why, sizeof why),
		command_for(cli, cmd, sizeof cmd));
}

int cli_no_bus(const struct cli *cli, const char *topic)
{
	char why[PATH_MAX + 64], cmd[PATH_MAX + 16];

	cli_err("topic \"%s\" does not exist: %s; create the topic with `%s topic create %s`",
		topic, why_no_bus(cli, why, sizeof why), command_for(cli, cmd, sizeof cmd), topic);
	return CLI_EXIT_FAIL;
}

/* ------------------------------------------------------------------ */
/* Numbers and sizes                                                   */

/* Leading decimal digits of s into *ret; the rest in *end.  -ERANGE on overflow. */
static int parse_digits(const char *s, uint64_t *ret, const char **end)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	*end = s;
	return 0;
}

int parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	const char *end;
	uint64_t v;
	int rc = parse_digits(s, &v, &end);

	if (rc == 0 && !*end && v > max) {
		cli_err("%s: %s is too large; at most %llu", what, s, (unsigned long long)max);
		return -EINVAL;
	}
	if (rc < 0 || *end || v < min) {
		if (max < INT32_MAX)
			cli_err("%s wants a whole number from %llu to %llu, not \"%s\"", what,
				(unsigned long long)min, (unsigned long long)max, s);
		else if (min)
			cli_err("%s wants a whole number of at least %llu, not \"%s\"", what,
				(unsigned long long)min, s);
		else
			cli_err("%s wants a whole number, not \"%s\"", what, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int size_shift(const char *suffix)
{
	static const char units[] = "KMG";
	const char *u;

	if (!*suffix)
		return 0;
	u = strchr(units, toupper((unsigned char)*suffix));
	if (!u || !*u)
		return -1;
	suffix++;
	if (*suffix && strcmp(suffix, "B") && strcmp(suffix, "iB"))
		return -1;
	return 10 * (int)(u - units + 1);
}

int parse_size(const char *what, const char *s, uint64_t *ret)
{
	const char *end;
	uint64_t v;
	int shift, rc = parse_digits(s, &v, &end);

	shift = rc == 0 ? size_shift(end) : -1;
	if (shift < 0) {
		cli_err("%s: \"%s\" is not a size; give bytes or a K, M or G suffix (powers of "
			"1024), e.g. 64M", what, s);
		return -EINVAL;
	}
	if (v > (UINT64_MAX >> shift)) {
		cli_err("%s: %s is too large", what, s);
		return -EINVAL;
	}
	*ret = v << shift;
	return 0;
}

const char *fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (u < 4 && bytes && !(bytes & 1023)) {
		bytes >>= 10;
		u++;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)bytes, units[u]);
	return buf;
}

const char *fmt_time(char *buf, size_t len, int64_t ns)
{
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;
	char day[32], zone[8];

	if (ns <= 0 || !localtime_r(&secs, &tm)) {
		snprintf(buf, len, "-");
		return buf;
	}
	strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
	strftime(zone, sizeof zone, "%z", &tm);
	snprintf(buf, len, "%s.%03d %s", day, (int)(ns / 1000000 % 1000), zone);
	return buf;
}

const char *policy_name(enum shmbus_policy p)
{
	switch (p) {
	case SHMBUS_POLICY_OVERWRITE:
		return "overwrite";
	case SHMBUS_POLICY_BACKPRESSURE:
		return "backpressure";
	default:
		return "unknown";
	}
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */

void table_init(struct table *t, int ncols, const char *const *heads)
{
	*t = (struct table){ .ncols = ncols, .heads = heads };
}

void table_cell(struct table *t, const char *fmt, ...)
{
	size_t at = t->nrows * (size_t)t->ncols + (size_t)t->col;
	char *cell = NULL;
	va_list ap;

	if (t->col == 0 && t->nrows == t->cap) { /* a new row, and no room */
		size_t cap = t->cap ? 2 * t->cap : 16;
		char **grown = realloc(t->cells, cap * (size_t)t->ncols * sizeof *grown);

		if (!grown)
			return; /* out of memory: the row is left out */
		t->cells = grown;
		t->cap = cap;
	}
	if (t->nrows == t->cap)
		return;
	if (t->col == 0)
		for (int i = 0; i < t->ncols; i++)
			t->cells[at + (size_t)i] = NULL;
	va_start(ap, fmt);
	if (vasprintf(&cell, fmt, ap) < 0)
		cell = NULL;
	va_end(ap);
	t->cells[at] = cell;
	if (++t->col == t->ncols) {
		t->col = 0;
		t->nrows++;
	}
}

static const char *cell_at(const struct table *t, size_t row, int col)
{
	const char *s = t->cells[row * (size_t)t->ncols + (size_t)col];

	return s ? s : "";
}

/* A number, maybe with a unit: "42", "1.5", "16 MiB"; or "-". */
static bool numeric(const char *s)
{
	if (!strcmp(s, "-"))
		return true;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s) || *s == '.')
		s++;
	if (*s == ' ')
		for (s++; isalpha((unsigned char)*s); s++)
			;
	return *s == '\0';
}

/* A column of numbers is aligned right. */
static bool numeric_column(const struct table *t, int col)
{
	for (size_t r = 0; r < t->nrows; r++)
		if (!numeric(cell_at(t, r, col)))
			return false;
	return t->nrows > 0;
}

static void print_row(const struct table *t, FILE *out, const int *width, const bool *right,
		      const char *const *cells)
{
	for (int c = 0; c < t->ncols; c++) {
		bool last = c == t->ncols - 1;

		if (right[c])
			fprintf(out, "%*s", width[c], cells[c]);
		else
			fprintf(out, "%-*s", last ? 0 : width[c], cells[c]);
		fputs(last ? "\n" : "  ", out);
	}
}

void table_print(const struct table *t, FILE *out)
{
	int width[32] = { 0 };
	bool right[32] = { false };
	const char *row[32];

	if (t->ncols > 32)
		return;
	for (int c = 0; c < t->ncols; c++) {
		width[c] = (int)strlen(t->heads[c]);
		right[c] = numeric_column(t, c);
		for (size_t r = 0; r < t->nrows; r++) {
			int w = (int)strlen(cell_at(t, r, c));

			if (w > width[c])
				width[c] = w;
		}
	}
	print_row(t, out, width, right, t->heads);
	for (size_t r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++)
			row[c] = cell_at(t, r, c);
		print_row(t, out, width, right, row);
	}
}

void table_free(struct table *t)
{
	size_t n = (t->nrows + (t->col ? 1 : 0)) * (size_t)t->ncols;

	for (size_t i = 0; i < n; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
	t->col = 0;
}
