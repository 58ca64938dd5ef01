/*
 * assign.c - the assignors: from a group's partitions (sorted by topic
 * name, then partition) and its members, the target owner of each
 * partition (Kafka's KIP-848 "target assignment").
 *
 *  - range: per topic, contiguous runs, the first members one longer;
 *  - round-robin: every partition in turn to the next member that
 *    subscribes to its topic (uniform over the whole group);
 *  - cooperative-sticky: every partition stays with its current target
 *    while that member is subscribed and not over its share; only the
 *    excess and the orphans move, to the least loaded members.
 *
 * All three are deterministic; the coordinator reconciles any change the
 * same way (revoke first, then grant: coordinator.c), so the difference is
 * only in how many partitions move.
 */
#include "coordinator.h"

#include <errno.h>
#include <string.h>

const char *assignor_name(enum assignor a)
{
	switch (a) {
	case ASSIGN_RANGE: return "range";
	case ASSIGN_ROUND_ROBIN: return "round-robin";
	default: return "cooperative-sticky";
	}
}

int assignor_parse(const char *s, enum assignor *ret)
{
	if (!s || !*s || !strcmp(s, "cooperative-sticky"))
		*ret = ASSIGN_COOPERATIVE_STICKY;
	else if (!strcmp(s, "range"))
		*ret = ASSIGN_RANGE;
	else if (!strcmp(s, "round-robin") || !strcmp(s, "uniform"))
		*ret = ASSIGN_ROUND_ROBIN;
	else
		return -EINVAL;
	return 0;
}

bool member_subscribes(const struct cmember *m, const char *topic)
{
	if (m->has_re)
		return regexec(&m->re, topic, 0, NULL, 0) == 0;
	for (size_t i = 0; i < m->ntopics; i++)
		if (!strcmp(m->topics[i], topic))
			return true;
	return false;
}

static void range(struct cpart *parts, size_t np, struct cmember **members, size_t nm)
{
	struct cmember *subs[COORD_MEMBERS_MAX];

	for (size_t first = 0, end; first < np; first = end) {
		size_t ns = 0, n, at = 0;

		for (end = first; end < np && parts[end].topic_id == parts[first].topic_id; end++)
			;
		for (size_t i = 0; i < nm; i++)
			if (member_subscribes(members[i], parts[first].topic))
				subs[ns++] = members[i];
		n = end - first;
		for (size_t k = 0; k < ns; k++) {
			size_t take = n / ns + (k < n % ns);

			for (size_t j = 0; j < take; j++)
				parts[first + at++].target = subs[k];
		}
		for (; at < n; at++)
			parts[first + at].target = NULL;
	}
}

static void round_robin(struct cpart *parts, size_t np, struct cmember **members, size_t nm)
{
	size_t next = 0;

	for (size_t i = 0; i < np; i++) {
		parts[i].target = NULL;
		for (size_t k = 0; k < nm; k++) {
			struct cmember *m = members[(next + k) % nm];

			if (member_subscribes(m, parts[i].topic)) {
				parts[i].target = m;
				next = (next + k + 1) % nm;
				break;
			}
		}
	}
}

static bool present(struct cmember *m, struct cmember **members, size_t nm)
{
	for (size_t i = 0; i < nm; i++)
		if (members[i] == m)
			return true;
	return false;
}

/* The least loaded member subscribed to the part's topic, or NULL. */
static struct cmember *lightest(const struct cpart *p, struct cmember **members, size_t nm)
{
	struct cmember *best = NULL;

	for (size_t i = 0; i < nm; i++)
		if ((!best || members[i]->load < best->load) &&
		    member_subscribes(members[i], p->topic))
			best = members[i];
	return best;
}

static void sticky(struct cpart *parts, size_t np, struct cmember **members, size_t nm)
{
	size_t floor_share = np / nm, extra = np % nm;

	for (size_t i = 0; i < nm; i++)
		members[i]->load = 0;
	for (size_t i = 0; i < np; i++) {
		struct cmember *t = parts[i].target;

		if (t && (!present(t, members, nm) || !member_subscribes(t, parts[i].topic)))
			t = parts[i].target = NULL;
		if (t)
			t->load++;
	}
	/* the share each keeps: floor, or floor + 1 for the first `extra` that hold more */
	for (size_t i = 0; i < nm; i++) {
		struct cmember *m = members[i];
		size_t cap = floor_share + (extra && m->load > floor_share);

		extra -= cap > floor_share;
		for (size_t k = np; k-- > 0 && m->load > cap;)
			if (parts[k].target == m) {
				parts[k].target = NULL;
				m->load--;
			}
	}
	for (size_t i = 0; i < np; i++) {
		if (parts[i].target)
			continue;
		parts[i].target = lightest(&parts[i], members, nm);
		if (parts[i].target)
			parts[i].target->load++;
	}
}

void assign_targets(enum assignor a, struct cpart *parts, size_t np, struct cmember **members,
		    size_t nm)
{
	if (nm == 0) {
		for (size_t i = 0; i < np; i++)
			parts[i].target = NULL;
		return;
	}
	if (a == ASSIGN_RANGE)
		range(parts, np, members, nm);
	else if (a == ASSIGN_ROUND_ROBIN)
		round_robin(parts, np, members, nm);
	else
		sticky(parts, np, members, nm);
}
