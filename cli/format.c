/*
 * format.c - kcat's output format for `shmbus consume -f`.
 *
 * A format is compiled once into a list of items (literal runs and
 * fields) so printing a record is a walk over them with no parsing.
 * Tokens, as kcat's: %t topic, %p partition, %o offset, %k key, %s value,
 * %T timestamp (ms since the epoch), %h headers (name=value,...), %S value
 * size, %K key size (-1 for a null value or key), %% a percent sign; and
 * the escapes \n \r \t \0 \\ \xHH (also read in produce's -K, as kcat
 * does).  A null key or value prints as nothing.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>

static int field_of(char ch, enum fmt_op *ret)
{
	static const struct { char ch; enum fmt_op op; } fields[] = {
		{ 't', FMT_TOPIC }, { 'p', FMT_PARTITION }, { 'o', FMT_OFFSET },
		{ 'k', FMT_KEY }, { 's', FMT_VALUE }, { 'T', FMT_TIMESTAMP },
		{ 'h', FMT_HEADERS }, { 'S', FMT_VALUE_SIZE }, { 'K', FMT_KEY_SIZE },
	};

	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		if (fields[i].ch == ch) {
			*ret = fields[i].op;
			return 0;
		}
	}
	return -EINVAL;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int escape_at(const char *s, char *ret)
{
	int hi, lo;

	switch (s[1]) {
	case 'n': *ret = '\n'; return 2;
	case 'r': *ret = '\r'; return 2;
	case 't': *ret = '\t'; return 2;
	case '0': *ret = '\0'; return 2;
	case '\\': *ret = '\\'; return 2;
	case 'x':
		hi = hex_digit(s[2]);
		lo = hi < 0 ? -1 : hex_digit(s[3]);
		if (lo < 0)
			return -ERANGE;
		*ret = (char)(hi << 4 | lo);
		return 4;
	default:
		return -EINVAL;
	}
}

const char *escape_error(const char *s, int rc)
{
	if (!s[1])
		return "a lone \\ at the end (write \\\\ for a backslash)";
	return rc == -ERANGE ? "\\x wants two hex digits" : "unknown escape";
}

int unescape(const char *what, const char *in, char **ret, size_t *ret_len)
{
	char *out = malloc(strlen(in) + 1);
	size_t len = 0;

	if (!out) {
		cli_err("%s: out of memory", what);
		return -ENOMEM;
	}
	for (const char *s = in; *s;) {
		int n = *s == '\\' ? escape_at(s, &out[len]) : 1;

		if (n < 0) {
			cli_err("%s: %s \"%.*s\" in \"%s\"; the escapes are \\t \\n \\r \\0 "
				"\\\\ and \\xHH", what, escape_error(s, n),
				(int)strnlen(s, n == -ERANGE ? 4 : 2), s, in);
			free(out);
			return -EINVAL;
		}
		if (n == 1)
			out[len] = *s;
		len++;
		s += n;
	}
	*ret = out;
	*ret_len = len;
	return 0;
}

/* Append one literal byte, extending the last item if it is a literal. */
static void add_literal(struct fmt *f, size_t *lit_len, char ch)
{
	struct fmt_item *last = f->n ? &f->items[f->n - 1] : NULL;

	f->lit[*lit_len] = ch;
	if (last && last->op == FMT_LITERAL && last->lit_off + last->lit_len == *lit_len)
		last->lit_len++;
	else
		f->items[f->n++] = (struct fmt_item){ FMT_LITERAL, *lit_len, 1 };
	(*lit_len)++;
}

static int bad_format(const char *spec, const char *at, const char *what)
{
	cli_err("-f \"%s\": %s at \"%s\"; the tokens are %%t %%p %%o %%k %%s %%T %%h %%S %%K %%%% "
		"and the escapes \\n \\r \\t \\0 \\\\ \\xHH", spec, what, at);
	return -EINVAL;
}

static int compile(const char *spec, struct fmt *f)
{
	size_t lit_len = 0;
	enum fmt_op op;
	char ch;

	for (const char *s = spec; *s; s++) {
		if (*s == '%') {
			if (s[1] == '%')
				add_literal(f, &lit_len, '%');
			else if (field_of(s[1], &op) == 0)
				f->items[f->n++] = (struct fmt_item){ .op = op };
			else
				return bad_format(spec, s, s[1] ? "unknown token" : "a lone %");
			s++;
		} else if (*s == '\\') {
			int n = escape_at(s, &ch);

			if (n < 0)
				return bad_format(spec, s, escape_error(s, n));
			add_literal(f, &lit_len, ch);
			s += n - 1;
		} else {
			add_literal(f, &lit_len, *s);
		}
	}
	return 0;
}

int fmt_compile(const char *spec, struct fmt *ret)
{
	size_t len = strlen(spec);
	struct fmt f = {
		.items = calloc(len + 1, sizeof *f.items),
		.lit = malloc(len + 1),
	};

	if (!f.items || !f.lit) {
		fmt_free(&f);
		cli_err("out of memory");
		return -ENOMEM;
	}
	if (compile(spec, &f) < 0) {
		fmt_free(&f);
		return -EINVAL;
	}
	f.value_newline = f.n == 2 && f.items[0].op == FMT_VALUE &&
			  f.items[1].op == FMT_LITERAL && f.items[1].lit_len == 1 &&
			  f.lit[f.items[1].lit_off] == '\n';
	*ret = f;
	return 0;
}

void fmt_free(struct fmt *f)
{
	free(f->items);
	free(f->lit);
	f->items = NULL;
	f->lit = NULL;
	f->n = 0;
}

static void write_headers(const struct shmbus_message *m, FILE *out)
{
	struct shmbus_header h;

	for (size_t i = 0; i < m->header_count; i++) {
		if (shmbus_message_header(m, i, &h) < 0)
			break;
		if (i)
			putc(',', out);
		fwrite(h.name, 1, h.name_len, out);
		putc('=', out);
		if (h.value)
			fwrite(h.value, 1, h.value_len, out);
	}
}

static void write_item(const struct fmt *f, const struct fmt_item *it,
		       const struct shmbus_message *m, FILE *out)
{
	switch (it->op) {
	case FMT_LITERAL:
		fwrite(f->lit + it->lit_off, 1, it->lit_len, out);
		break;
	case FMT_TOPIC:
		fputs(m->topic, out);
		break;
	case FMT_PARTITION:
		fprintf(out, "%d", (int)m->partition);
		break;
	case FMT_OFFSET:
		fprintf(out, "%llu", (unsigned long long)m->offset);
		break;
	case FMT_KEY:
		if (m->key)
			fwrite(m->key, 1, m->key_len, out);
		break;
	case FMT_VALUE:
		if (m->value)
			fwrite(m->value, 1, m->value_len, out);
		break;
	case FMT_TIMESTAMP:
		fprintf(out, "%lld", (long long)(m->timestamp_ns / 1000000));
		break;
	case FMT_HEADERS:
		write_headers(m, out);
		break;
	case FMT_VALUE_SIZE:
		fprintf(out, "%lld", m->value ? (long long)m->value_len : -1LL);
		break;
	case FMT_KEY_SIZE:
		fprintf(out, "%lld", m->key ? (long long)m->key_len : -1LL);
		break;
	}
}

int fmt_write(const struct fmt *f, const struct shmbus_message *m, FILE *out)
{
	if (f->value_newline) {
		if (m->value)
			fwrite(m->value, 1, m->value_len, out);
		putc('\n', out);
	} else {
		for (size_t i = 0; i < f->n; i++)
			write_item(f, &f->items[i], m, out);
	}
	return ferror(out) ? -EIO : 0;
}
