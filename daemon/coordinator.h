/*
 * coordinator.h - what the consumer-group coordinator's files share
 * (coordinator.c: groups, members and reconciliation; assign.c: the
 * assignors; groupctl.c: the control requests).  docs/protocol.md §8
 * states the protocol, docs/design-notes.md "Consumer groups" the design.
 */
#ifndef SHMBUSD_COORDINATOR_H
#define SHMBUSD_COORDINATOR_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shm/groups.h"

#define COORD_SUB_MAX      1024        /* topics one member may name */
#define COORD_MEMBERS_MAX  4096        /* members of one group */
#define COORD_PARTS_MAX    8192        /* partitions one group may hold */

enum assignor { ASSIGN_COOPERATIVE_STICKY = 0, ASSIGN_RANGE = 1, ASSIGN_ROUND_ROBIN = 2 };

struct cmember {
	struct cmember *next;
	uint64_t id;
	uint64_t conn;                 /* the control connection it joined through */
	pid_t pid;                     /* SO_PEERCRED of that connection */
	char instance[PART_NAME_MAX + 1]; /* "" unless static */
	char host[64];
	char sub[512];                 /* the subscription as given, for DESCRIBE */
	char **topics;
	size_t ntopics;
	regex_t re;
	bool has_re;
	uint64_t epoch;                /* member epoch: of the last assignment it was given */
	uint64_t acked;                /* the member epoch it says it has applied */
	uint64_t sig;                  /* of the assignment at `epoch` */
	int64_t last_hb, last_poll;    /* CLOCK_MONOTONIC */
	int64_t gone_at;               /* a static member whose process ended: when (0: alive) */
	size_t load;                   /* assign.c's scratch */
};

struct cpart {
	char topic[PART_NAME_MAX + 1];
	uint64_t topic_id;
	uint32_t partition;
	struct cmember *target;        /* where the assignor wants it */
	struct cmember *owner;         /* who was granted it and has not released it */
	uint64_t owner_epoch;          /* the fence written for the owner */
	uint64_t revoke_epoch;         /* owner's epoch whose assignment dropped it (0: none) */
};

struct cgroup {
	struct cgroup *next;
	char name[PART_NAME_MAX + 1];
	struct group_file gf;
	enum assignor assignor;
	int64_t session_ms, max_poll_ms;
	uint64_t epoch;                /* group epoch; owner epochs are taken from it */
	struct cmember *members;       /* in join order */
	size_t nmembers;
	struct cpart *parts;           /* sorted by topic name, then partition */
	size_t nparts;
	uint64_t rebalances;           /* target assignments that moved a partition */
	uint64_t members_lost;         /* removed by death, timeout or max-poll */
	uint64_t dir_gen;              /* the bus directory its parts reflect */
};

/* Who sent a group request (filled by control.c). */
struct coord_peer {
	uint64_t conn;
	pid_t pid;
	uid_t uid;
	bool admin;                    /* may administer topics (control.c's rule) */
	char who[160];
	char msg[700];                 /* the error's message */
};

struct daemon;
struct ctl_msg;
struct ctl_out;

/* coordinator.c */
struct cgroup *coord_find(struct daemon *d, const char *name);
struct cgroup *coord_first(struct daemon *d);
const char *coord_state(const struct cgroup *g);
int coord_join(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m, struct ctl_out *o);
int coord_heartbeat(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m,
		    struct ctl_out *o);
int coord_leave(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m);
/* Forget an empty group (its file stays unless the caller removes it). */
void coord_drop(struct daemon *d, struct cgroup *g);
/* Its partitions and targets again (topics changed). */
void coord_refresh(struct daemon *d, struct cgroup *g);

/* What the metrics thread shows of each coordinated group: a copy made
 * in the loop thread (coordinator.c), read under its lock. */
struct coord_stat {
	char name[PART_NAME_MAX + 1];
	char state[16];
	char assignor[24];
	uint32_t members;
	uint64_t epoch, rebalances, members_lost;
};

/* Copy up to max groups' stats into out (from any thread): how many. */
size_t coord_stats(struct coord_stat *out, size_t max);

/* groupctl.c: serve any CTL_GROUP_* request. */
int coord_serve(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m, struct ctl_out *o);

bool member_subscribes(const struct cmember *m, const char *topic);

/* Set every part's target (assign.c).  members are in join order. */
void assign_targets(enum assignor a, struct cpart *parts, size_t np, struct cmember **members,
		    size_t nm);
const char *assignor_name(enum assignor a);
int assignor_parse(const char *s, enum assignor *ret);

#endif
