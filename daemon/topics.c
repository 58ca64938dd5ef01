/*
 * topics.c - creating, deleting and growing topics off the event loop.
 *
 * Making a topic writes and allocates every partition file: thousands of
 * them take seconds, and inside the loop that would hold up STATUS, the
 * watchdog and SIGTERM for as long.  So one worker thread does the admin
 * work, one job at a time, in the order asked.  control.c hands it a job
 * and parks the connection (it reads nothing more from it until the job
 * is answered, so RESULTs stay in order, protocol.md §3).  The worker
 * runs the job through the library (topics.c there: half-made topics
 * removed, room checked first), gives a new topic's files the root's
 * group, and maps its partitions into the bus's cache; then it wakes the
 * loop through an eventfd, and the loop refreshes its table (the
 * partitions are mapped already), counts, logs and answers.
 *
 * Growing a topic (adding partitions) is a create of the new partitions:
 * the same worker, the same group fix-up and premapping.
 *
 * While the worker creates, supervise_refresh() leaves the table alone
 * (topics_creating()): the directory changes meanwhile only by the
 * worker's own hand, and the loop would otherwise map the new partitions
 * itself, all at once, the moment the topic is published.
 *
 * Stopping: topics_fini() raises `stop`, which a create checks between
 * partitions and while it waits for the admin lock (it then removes what
 * it made: no half-made topic is left), joins the worker, and answers
 * what is left: jobs done with their result, the others with -ECANCELED.
 */
#include "shmbusd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/shareddir.h"
#include "../util/ctlproto.h"
#include "mirror.h"

struct job {
	struct job *next;
	bool create;                 /* else delete, grow, or promote */
	bool promote;                /* a replica made writable (mirror_epoch.c) */
	bool grow;                   /* partitions added: `count` in all */
	bool validate_only;          /* grow: check only */
	uint32_t count;
	char *report;                /* promote: a line per partition */
	bool declared;               /* a [topic] of the configuration: no peer */
	uint64_t conn;               /* control.c's serial of the peer to answer */
	uint32_t seq;
	uint16_t type;
	char name[PART_NAME_MAX + 1];
	char who[160];
	struct shmbus_topic_opts o;
	int rc;
	char msg[600];
};

struct topics {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;        /* the lists */
	pthread_cond_t cond;
	struct job *todo, *done;     /* FIFO and LIFO */
	int stop;                    /* atomic: raised by topics_fini */
	int creating;                /* atomic: the worker is creating */
	int efd;                     /* eventfd: jobs are done */
};

static struct topics *state(struct daemon *d)
{
	return d->topics;
}

bool topics_creating(struct daemon *d)
{
	struct topics *t = state(d);

	return t && __atomic_load_n(&t->creating, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ */
/* The worker                                                          */

static void swept(void *ctx, const char *name, uint64_t files, uint64_t bytes)
{
	(void)ctx;
	log_warn("removed half-made topic \"%s\" (%llu files, %llu bytes): left by a create or "
		 "delete that was interrupted", name, (unsigned long long)files,
		 (unsigned long long)bytes);
}

static void swept_grow(void *ctx, const char *name, uint64_t files, uint64_t bytes)
{
	(void)ctx;
	log_warn("removed %llu file%s (%llu bytes) of topic \"%s\" past its partitions: left by "
		 "an interrupted grow (the topic keeps the partitions it had)",
		 (unsigned long long)files, files == 1 ? "" : "s", (unsigned long long)bytes, name);
}

/* Give the files of a new topic the root's group: the topics directory
 * is setgid (control.c), so this only repairs what did not inherit. */
static void regroup_topic(struct daemon *d, const char *name, uint32_t partitions)
{
	_cleanup_close_ int dfd = sdir_open(d->topicsfd, name, O_RDONLY | O_DIRECTORY);
	struct stat root, st;
	char file[24];

	if (dfd < 0 || fstat(d->rootfd, &root) < 0)
		return;
	for (int64_t i = -1; i < (int64_t)partitions; i++) {
		snprintf(file, sizeof file, "%lld", (long long)i);
		if (fstatat(dfd, i < 0 ? "" : file, &st, i < 0 ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_gid == root.st_gid)
			continue;
		if (fchownat(dfd, i < 0 ? "" : file, (uid_t)-1, root.st_gid,
			     i < 0 ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW) < 0) {
			log_warn("topic \"%s\": cannot give its files the root's group (gid %u): %s; "
				 "run shmbusd as root or as a member of that group", name,
				 (unsigned)root.st_gid, strerror(errno));
			return;
		}
	}
}

/* Map the new topic's partitions into the cache (the table keeps them). */
static void premap(struct daemon *d, struct topics *t, const char *name)
{
	struct bus_topic bt;
	struct pmap *m;

	if (dir_lookup(&d->dir, name, &bt) < 0)
		return;
	for (uint32_t i = 0; i < bt.partitions && !__atomic_load_n(&t->stop, __ATOMIC_RELAXED); i++)
		if (cache_get(d->bus, &bt, i, &m) == 0)
			cache_put(m);
}

/* Partitions added, as a create makes them: given the root's group and
 * mapped here before the loop refreshes its table. */
static void run_grow(struct daemon *d, struct topics *t, struct job *j,
		     const struct admin_hooks *h)
{
	/* the loop maps the new partitions only once we have (premap) */
	__atomic_store_n(&t->creating, 1, __ATOMIC_RELEASE);
	j->rc = admin_topic_grow(d->bus, j->name, j->count, j->validate_only, h);
	if (j->rc == 0 && !j->validate_only) {
		regroup_topic(d, j->name, j->count);
		premap(d, t, j->name);
	}
	/* pairs with the load in topics_creating() */
	__atomic_store_n(&t->creating, 0, __ATOMIC_RELEASE);
	if (j->rc < 0)
		snprintf(j->msg, sizeof j->msg, "%s", shmbus_errmsg());
}

static void run(struct daemon *d, struct topics *t, struct job *j)
{
	struct admin_hooks h = { .stop = &t->stop, .swept = swept, .swept_grow = swept_grow };

	if (j->grow) {
		run_grow(d, t, j, &h);
		return;
	}
	if (j->promote) {
		j->report = calloc(1, CTL_MSG_MAX / 2);
		j->rc = j->report ? mirror_promote(d, j->name, j->report, CTL_MSG_MAX / 2, j->msg,
						   sizeof j->msg)
				  : -ENOMEM;
		return;
	}
	if (!j->create) {
		j->rc = admin_topic_delete(d->bus, j->name, &h);
	} else {
		__atomic_store_n(&t->creating, 1, __ATOMIC_RELEASE);
		j->rc = admin_topic_create(d->bus, j->name, &j->o, &h);
		if (j->rc == 0) {
			regroup_topic(d, j->name, j->o.partitions ? j->o.partitions : 1);
			premap(d, t, j->name);
		}
		/* pairs with the load in topics_creating() */
		__atomic_store_n(&t->creating, 0, __ATOMIC_RELEASE);
	}
	if (j->rc < 0)
		snprintf(j->msg, sizeof j->msg, "%s", shmbus_errmsg());
}

static void *worker(void *arg)
{
	struct daemon *d = arg;
	struct topics *t = state(d);
	uint64_t one = 1;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&t->lock);
		while (!t->todo && !__atomic_load_n(&t->stop, __ATOMIC_RELAXED))
			pthread_cond_wait(&t->cond, &t->lock);
		j = t->todo;
		if (!j || __atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
			pthread_mutex_unlock(&t->lock);
			return NULL;
		}
		t->todo = j->next;
		pthread_mutex_unlock(&t->lock);
		run(d, t, j);
		pthread_mutex_lock(&t->lock);
		j->next = t->done;
		t->done = j;
		pthread_mutex_unlock(&t->lock);
		if (write(t->efd, &one, sizeof one) < 0)
			log_err("cannot wake the event loop: %s", strerror(errno));
	}
}

/* ------------------------------------------------------------------ */
/* The loop's side                                                     */

static void report(struct daemon *d, const struct job *j)
{
	const char *verb = j->create ? "create" : j->promote ? "promote" : "delete";

	if (j->grow) {
		if (j->rc < 0)
			log_notice("cannot add partitions to topic \"%s\" for %s: %s", j->name, j->who,
				   j->msg);
		else if (!j->validate_only)
			log_notice("topic \"%s\" has %u partitions now, for %s", j->name, j->count,
				   j->who);
	} else if (j->promote) {
		if (j->rc < 0)
			log_notice("cannot promote topic \"%s\" for %s: %s", j->name, j->who, j->msg);
		else
			log_notice("promoted topic \"%s\" (%d partitions) for %s", j->name, j->rc,
				   j->who);
	} else if (j->declared) {
		if (j->rc == 0) {
			log_notice("created topic \"%s\" declared in the configuration (%u "
				   "partitions)", j->name, j->o.partitions);
		} else if (j->rc != -EEXIST) {
			log_err("cannot create topic \"%s\" declared in the configuration: %s",
				j->name, j->msg);
		}
	} else if (j->rc < 0) {
		log_notice("cannot %s topic \"%s\" for %s: %s", verb, j->name, j->who, j->msg);
	} else if (j->create) {
		d->st.topics_created++;
		log_notice("created topic \"%s\" (%u partition%s, mode %04o) for %s", j->name,
			   j->o.partitions, j->o.partitions == 1 ? "" : "s", j->o.mode, j->who);
	} else {
		d->st.topics_deleted++;
		log_notice("deleted topic \"%s\" for %s", j->name, j->who);
	}
}

/* Answer a job and free it. */
static void finish(struct daemon *d, struct job *j)
{
	report(d, j);
	if (j->conn && j->promote)
		control_answer_promoted(d, j->conn, j->seq, j->rc, j->rc < 0 ? j->msg : NULL,
					j->report ? j->report : "");
	else if (j->conn)
		control_answer(d, j->conn, j->seq, j->type, j->rc, j->rc < 0 ? j->msg : NULL);
	free(j->report);
	free(j);
}

static void on_done(struct daemon *d, uint32_t events, void *arg)
{
	struct topics *t = arg;
	struct job *done, *next;
	uint64_t n;

	(void)events;
	if (read(t->efd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_err("cannot read the worker's eventfd: %s", strerror(errno));
	pthread_mutex_lock(&t->lock);
	done = t->done;
	t->done = NULL;
	pthread_mutex_unlock(&t->lock);
	supervise_refresh(d);
	for (; done; done = next) {
		next = done->next;
		finish(d, done);
	}
}

static int submit(struct daemon *d, struct job *j)
{
	struct topics *t = state(d);
	struct job **tail;

	if (!t) {
		free(j);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&t->lock);
	for (tail = &t->todo; *tail; tail = &(*tail)->next)
		;
	*tail = j;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static struct job *new_job(bool create, const struct ctl_peer *to, const char *name)
{
	struct job *j = calloc(1, sizeof *j);

	if (!j)
		return NULL;
	j->create = create;
	if (to) {
		j->conn = to->conn;
		j->seq = to->seq;
		j->type = to->type;
		snprintf(j->who, sizeof j->who, "%s", to->who);
	}
	snprintf(j->name, sizeof j->name, "%s", name);
	return j;
}

int topics_create(struct daemon *d, const struct ctl_peer *to, const char *name,
		  const struct shmbus_topic_opts *o)
{
	struct job *j = new_job(true, to, name);

	if (!j)
		return -ENOMEM;
	j->o = *o;
	j->o.partitions = o->partitions ? o->partitions : 1;
	return submit(d, j);
}

int topics_delete(struct daemon *d, const struct ctl_peer *to, const char *name)
{
	struct job *j = new_job(false, to, name);

	return j ? submit(d, j) : -ENOMEM;
}

int topics_grow(struct daemon *d, const struct ctl_peer *to, const char *name, uint32_t count,
		bool validate_only)
{
	struct job *j = new_job(false, to, name);

	if (!j)
		return -ENOMEM;
	j->grow = true;
	j->count = count;
	j->validate_only = validate_only;
	return submit(d, j);
}

int topics_promote(struct daemon *d, const struct ctl_peer *to, const char *name)
{
	struct job *j = new_job(false, to, name);

	if (!j)
		return -ENOMEM;
	j->promote = true;
	return submit(d, j);
}

/* The options of a topic declared in the configuration. */
static struct shmbus_topic_opts declared_opts(const struct daemon *d, const struct config_topic *c)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = c->partitions, .capacity = c->capacity,
		    .policy = (enum shmbus_policy)c->policy,
		    .retention_ms = c->retention_ms ? c->retention_ms : d->cfg.retention_default_ms,
		    .numa_bind = c->numa_node >= 0, .numa_node = c->numa_node,
		    .mode = d->cfg.file_mode);

	return o;
}

void topics_declare(struct daemon *d)
{
	for (size_t i = 0; i < d->cfg.ntopics; i++) {
		const struct config_topic *c = &d->cfg.topics[i];
		struct bus_topic bt;
		struct job *j;

		if (dir_lookup(&d->dir, c->name, &bt) == 0)
			continue;
		j = new_job(true, NULL, c->name);
		if (!j) {
			log_err("cannot create topic \"%s\" declared in the configuration: out of "
				"memory", c->name);
			continue;
		}
		j->declared = true;
		j->o = declared_opts(d, c);
		if (state(d)) {
			submit(d, j);
			continue;
		}
		/* at start, before the loop runs: here and now */
		j->rc = admin_topic_create(d->bus, j->name, &j->o, NULL);
		if (j->rc < 0)
			snprintf(j->msg, sizeof j->msg, "%s", shmbus_errmsg());
		finish(d, j);
	}
}

void topics_sweep(struct daemon *d)
{
	struct admin_hooks h = { .swept = swept, .swept_grow = swept_grow };
	int rc = admin_sweep(d->bus, &h);

	if (rc < 0)
		log_err("cannot look for half-made topics: %s", shmbus_errmsg());
}

int topics_init(struct daemon *d)
{
	struct topics *t = calloc(1, sizeof *t);
	int rc;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rc = t->efd < 0 ? -errno : loop_add(d, t->efd, EPOLLIN, on_done, t);
	d->topics = t; /* before the worker, which finds its state there */
	if (rc == 0)
		rc = -pthread_create(&t->thread, NULL, worker, d);
	if (rc < 0) {
		log_err("cannot start the topic worker: %s", strerror(-rc));
		if (t->efd >= 0) {
			loop_del(d, t->efd);
			close(t->efd);
		}
		d->topics = NULL;
		free(t);
		return rc;
	}
	t->started = true;
	return 0;
}

/* At stop: answer what is left, then free it. */
static void drain(struct daemon *d, struct job *list, bool ran)
{
	for (struct job *j = list, *next; j; j = next) {
		next = j->next;
		if (!ran) {
			j->rc = -ECANCELED;
			snprintf(j->msg, sizeof j->msg, "shmbusd is stopping: topic \"%s\" was not %s; "
				 "ask again once it runs", j->name, j->create ? "created"
				 : j->promote ? "promoted" : j->grow ? "given partitions" : "deleted");
		}
		finish(d, j);
	}
}

void topics_fini(struct daemon *d)
{
	struct topics *t = state(d);
	struct job *todo, *done;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (t->started)
		pthread_join(t->thread, NULL);
	todo = t->todo;
	done = t->done;
	t->todo = t->done = NULL;
	drain(d, done, true);
	drain(d, todo, false);
	loop_del(d, t->efd);
	close(t->efd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
	d->topics = NULL;
}
