/*
 * partitioner.c - Kafka's default partitioner for keyed records:
 * toPositive(murmur2(key)) % partitions, with the Java client's murmur2
 * (seed 0x9747b28c), so a key lands on the partition a Java producer
 * would pick.
 */
#include "internal.h"

uint32_t murmur2(const void *key, size_t len)
{
	const uint8_t *data = key;
	const uint32_t m = 0x5bd1e995;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i, len4 = len / 4;

	for (i = 0; i < len4; i++) {
		uint32_t k = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
			     (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;

		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len & 3) {
	case 3:
		h ^= (uint32_t)data[(len & ~(size_t)3) + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)data[(len & ~(size_t)3) + 1] << 8;
		/* fall through */
	case 1:
		h ^= data[len & ~(size_t)3];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}

uint32_t murmur2_partition(const void *key, size_t len, uint32_t partitions)
{
	return (murmur2(key, len) & 0x7fffffff) % partitions;
}
