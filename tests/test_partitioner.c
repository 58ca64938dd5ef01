/*
 * test_partitioner.c - Kafka's default partitioner for keyed records:
 * (murmur2(key) & 0x7fffffff) % partitions with the Java client's
 * murmur2, so a key lands where a Java (or librdkafka "murmur2")
 * producer would put it.
 *
 * Two oracles: the vectors of Kafka's own UtilsTest.testMurmur2, and
 * librdkafka's rd_kafka_msg_partitioner_murmur2 over random keys and
 * partition counts (it needs a topic handle, but no broker).
 */
#include "lib/testutil.h"

#include <librdkafka/rdkafka.h>
#include <string.h>

#include "../lib/internal.h"

static uint64_t rng_state = 0xa4093822299f31d0ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

struct kafka {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
};

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

static int kafka_setup(void **state)
{
	struct kafka *k;
	rd_kafka_conf_t *conf;
	char err[512];

#ifdef UNDER_TSAN
	/* librdkafka's threads, started by an uninstrumented library, crash
	 * ThreadSanitizer's allocator; the plain and ASan runs keep this
	 * oracle, which tests a pure function */
	fprintf(stderr, "# librdkafka oracle skipped under ThreadSanitizer\n");
	*state = NULL;
	return 0;
#endif
	k = calloc(1, sizeof *k);
	conf = rd_kafka_conf_new();

	/* no brokers, no logs: the partitioner is a pure function */
	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!k->rk) {
		fprintf(stderr, "rd_kafka_new: %s\n", err);
		free(k);
		return -1;
	}
	k->rkt = rd_kafka_topic_new(k->rk, "t", NULL);
	if (!k->rkt) {
		rd_kafka_destroy(k->rk);
		free(k);
		return -1;
	}
	*state = k;
	return 0;
}

static int kafka_teardown(void **state)
{
	struct kafka *k = *state;

	if (!k)
		return 0;

	rd_kafka_topic_destroy(k->rkt);
	rd_kafka_destroy(k->rk);
	free(k);
	return 0;
}

/* org.apache.kafka.common.utils.UtilsTest#testMurmur2 */
static void murmur2_matches_kafkas_java_vectors(void **state)
{
	static const struct {
		const char *key;
		int32_t hash;
	} cases[] = {
		{ "21", -973932308 },
		{ "foobar", -790332482 },
		{ "a-little-bit-long-string", -985981536 },
		{ "a-little-bit-longer-string", -1486304829 },
		{ "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971 },
		{ "abc", 479470107 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint32_t h = murmur2(cases[i].key, strlen(cases[i].key));

		if ((int32_t)h != cases[i].hash)
			fail_msg("murmur2(\"%s\") = %d, Kafka says %d", cases[i].key, (int32_t)h,
				 cases[i].hash);
	}
}

static void every_key_length_matches_librdkafka(void **state)
{
	struct kafka *k = *state;
	uint8_t key[300];

	if (!k)
		skip();
	for (size_t len = 0; len < sizeof key; len++) {
		for (int rep = 0; rep < 20; rep++) {
			int32_t n = (int32_t)(rnd() % 1000) + 1;

			for (size_t i = 0; i < len; i++)
				key[i] = (uint8_t)rnd(); /* bytes >= 0x80: Java's signed bytes */
			int32_t want = rd_kafka_msg_partitioner_murmur2(k->rkt, key, len, n, NULL, NULL);
			uint32_t got = murmur2_partition(key, len, (uint32_t)n);

			if ((int32_t)got != want)
				fail_msg("key of %zu bytes, %d partitions: %u, librdkafka %d", len, n, got,
					 want);
		}
	}
}

static void random_keys_and_partition_counts_match_librdkafka(void **state)
{
	struct kafka *k = *state;
	static const int32_t counts[] = { 1, 2, 3, 7, 8, 12, 64, 100, 1000, 4096, 99991,
					  100000, INT32_MAX };
	char key[64];

	if (!k)
		skip();
	for (int i = 0; i < 20000; i++) {
		int32_t n = counts[rnd() % (sizeof counts / sizeof counts[0])];
		int len = snprintf(key, sizeof key, "user-%llu", (unsigned long long)(rnd() % 100000000));
		int32_t want = rd_kafka_msg_partitioner_murmur2(k->rkt, key, (size_t)len, n, NULL, NULL);

		assert_int_equal(murmur2_partition(key, (size_t)len, (uint32_t)n), want);
	}
}

static void partition_is_always_in_range(void **state)
{
	uint8_t key[16];

	(void)state;
	for (int i = 0; i < 100000; i++) {
		uint32_t n = (uint32_t)(rnd() % 100) + 1;

		for (size_t b = 0; b < sizeof key; b++)
			key[b] = (uint8_t)rnd();
		assert_true(murmur2_partition(key, 1 + (size_t)(rnd() % 16), n) < n);
	}
	/* one partition: everything goes to 0 */
	assert_int_equal(murmur2_partition("anything", 8, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(murmur2_matches_kafkas_java_vectors),
		cmocka_unit_test_setup_teardown(every_key_length_matches_librdkafka, kafka_setup,
						kafka_teardown),
		cmocka_unit_test_setup_teardown(random_keys_and_partition_counts_match_librdkafka,
						kafka_setup, kafka_teardown),
		cmocka_unit_test(partition_is_always_in_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
