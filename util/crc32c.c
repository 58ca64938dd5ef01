/*
 * crc32c.c - CRC-32C, reflected polynomial 0x82F63B78.
 *
 * Two implementations with one result:
 *  - crc32c_sw: slicing-by-8 tables, any CPU;
 *  - long buffers (>= ISAL_MIN bytes): Intel's ISA-L (crc32_iscsi), which
 *    folds 64 bytes at a time with carry-less multiplies: about twice the
 *    speed of the three lanes below on this machine;
 *  - crc32c_hw: the SSE4.2 crc32 instruction.  One instruction has a
 *    latency of three cycles and a throughput of one, so a long buffer is
 *    split into three lanes computed together and joined afterwards.  To
 *    join, a lane's CRC is "shifted" over the bytes of the lanes after it:
 *    feeding n zero bytes to a CRC state is linear over GF(2), so for each
 *    fixed lane length the shift is four 256-entry tables built once at
 *    start-up by running the plain algorithm over zero bytes.
 */
#include "crc32c.h"

#include <string.h>

#include <isa-l/crc.h>

#define POLY 0x82f63b78u

#define LANE_LONG  2048u /* bytes per lane, long blocks */
#define LANE_SHORT 256u  /* bytes per lane, short blocks */

static uint32_t sw_table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static int have_hw;

/* The state after feeding `n` zero bytes to state `crc` (no inversion). */
static uint32_t zeros_bitwise(uint32_t crc, size_t n)
{
	for (size_t i = 0; i < n * 8; i++)
		crc = (crc >> 1) ^ (POLY & (0u - (crc & 1)));
	return crc;
}

static void build_shift(uint32_t table[4][256], size_t n)
{
	uint32_t basis[32];

	for (int b = 0; b < 32; b++)
		basis[b] = zeros_bitwise(1u << b, n);
	for (int k = 0; k < 4; k++) {
		for (int v = 0; v < 256; v++) {
			uint32_t r = 0;

			for (int b = 0; b < 8; b++)
				if (v & (1 << b))
					r ^= basis[k * 8 + b];
			table[k][v] = r;
		}
	}
}

static uint32_t shift(const uint32_t table[4][256], uint32_t crc)
{
	return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^
	       table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}

/* Tables are built before main() runs: no once-check on the fast path. */
__attribute__((constructor)) static void crc32c_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		sw_table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int t = 1; t < 8; t++)
			sw_table[t][n] = (sw_table[t - 1][n] >> 8) ^ sw_table[0][sw_table[t - 1][n] & 0xff];
	build_shift(shift_long, LANE_LONG);
	build_shift(shift_short, LANE_SHORT);
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t sw_update(uint32_t c, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ sw_table[0][(c ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= c;
		c = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff] ^
		    sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff] ^
		    sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff] ^
		    sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ sw_table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint64_t hw_lanes(uint64_t c0, const unsigned char *p, size_t lane,
			 const uint32_t table[4][256], size_t *consumed, size_t len)
{
	size_t done = 0;

	while (len - done >= 3 * lane) {
		const unsigned char *a = p + done, *b = a + lane, *d = b + lane;
		uint64_t c1 = 0, c2 = 0;

		for (size_t i = 0; i < lane; i += 8) {
			uint64_t wa, wb, wd;

			memcpy(&wa, a + i, 8);
			memcpy(&wb, b + i, 8);
			memcpy(&wd, d + i, 8);
			c0 = __builtin_ia32_crc32di(c0, wa);
			c1 = __builtin_ia32_crc32di(c1, wb);
			c2 = __builtin_ia32_crc32di(c2, wd);
		}
		c0 = shift(table, (uint32_t)c0) ^ (uint32_t)c1;
		c0 = shift(table, (uint32_t)c0) ^ (uint32_t)c2;
		done += 3 * lane;
	}
	*consumed = done;
	return c0;
}

__attribute__((target("sse4.2")))
static uint32_t hw_update(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;
	size_t used;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	c = hw_lanes(c, p, LANE_LONG, shift_long, &used, len);
	p += used;
	len -= used;
	c = hw_lanes(c, p, LANE_SHORT, shift_short, &used, len);
	p += used;
	len -= used;
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	return ~sw_update(~crc, buf, len);
}

#if defined(__x86_64__)
/* Short buffers: one dependent chain of crc32 instructions, no dispatch. */
__attribute__((target("sse4.2")))
static uint32_t hw_short(uint32_t c, const unsigned char *p, size_t len)
{
	uint64_t c64 = c;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		c64 = __builtin_ia32_crc32si((uint32_t)c64, w);
		p += 4;
		len -= 4;
	}
	while (len--)
		c64 = __builtin_ia32_crc32qi((uint32_t)c64, *p++);
	return (uint32_t)c64;
}
#endif

#define SHORT_MAX (3 * LANE_SHORT)
#define ISAL_MIN  4096u

/* ISA-L keeps the CRC uninverted: crc32c(prev, b, n) = ~crc32_iscsi(b, n, ~prev). */
static uint32_t isal(uint32_t c, const void *buf, size_t len)
{
	while (len > INT32_MAX) {
		c = crc32_iscsi((unsigned char *)(uintptr_t)buf, INT32_MAX, c);
		buf = (const unsigned char *)buf + INT32_MAX;
		len -= INT32_MAX;
	}
	return crc32_iscsi((unsigned char *)(uintptr_t)buf, (int)len, c);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
	if (len >= ISAL_MIN)
		return ~isal(~crc, buf, len);
	if (have_hw)
		return ~(len < SHORT_MAX ? hw_short(~crc, buf, len) : hw_update(~crc, buf, len));
#endif
	return ~sw_update(~crc, buf, len);
}

uint32_t crc32c2(const void *a, size_t alen, const void *b, size_t blen)
{
#if defined(__x86_64__)
	if (have_hw) {
		uint32_t c = hw_short(~0u, a, alen);

		if (blen >= ISAL_MIN)
			return ~isal(c, b, blen);
		return ~(blen < SHORT_MAX ? hw_short(c, b, blen) : hw_update(c, b, blen));
	}
#endif
	return ~sw_update(sw_update(~0u, a, alen), b, blen);
}
