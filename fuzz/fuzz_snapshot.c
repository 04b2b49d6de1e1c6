/* SPDX-License-Identifier: MIT */
/*
 * fuzz_snapshot.c - libFuzzer target for snapshot open, lookup and verify (src/snapshot.c).
 *
 * The input is written to a file and opened as a snapshot. Whatever its bytes, opening either
 * fails cleanly or gives a mapping on which lookups of arbitrary keys (taken from the input and
 * from its own records), a full iteration and pkv__snap_verify all stay inside the mapping
 * (ASan checks that) and terminate.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "map.h"
#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkv_snap *s = NULL;
	const struct snap_rec_disk *r;
	const char *why = NULL;
	uint64_t off = 0;
	int fd;

	if (path[0] == '\0') {
		/* One file per process, rewritten per input: $TMPDIR on a tmpfs keeps it off the disk. */
		const char *tmp = getenv("TMPDIR");

		snprintf(path, sizeof(path), "%s/pkv-fuzz-snap-%d.snap", tmp && *tmp ? tmp : "/tmp",
			 (int)getpid());
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	/*
	 * Most mutations break the header CRC and stop at the first check; when the input's last
	 * byte is odd, fix the CRC up so that the fuzzer reaches the region checks and the probe.
	 */
	if (size >= sizeof(struct snap_hdr_disk) && (data[size - 1] & 1)) {
		struct snap_hdr_disk h;

		memcpy(&h, data, sizeof(h));
		h.hdr_crc = pkv__crc32c(0, &h, offsetof(struct snap_hdr_disk, hdr_crc));
		if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
			abort();
		/* With bit 1 set too, fix up the index page CRCs, so that probes walk the index. */
		if ((data[size - 1] & 2) && h.nslots >= 16 && h.nslots <= (1u << 20) &&
		    h.index_off <= size && h.nslots * 8 <= size - h.index_off &&
		    h.pcrc_off <= size && SNAP_NPAGES(h.nslots) * 4 <= size - h.pcrc_off) {
			for (uint64_t pg = 0; pg < SNAP_NPAGES(h.nslots); pg++) {
				uint64_t ioff = pg * SNAP_IPAGE, len = h.nslots * 8 - ioff;
				uint32_t c = pkv__crc32c(0, data + h.index_off + ioff,
							 len < SNAP_IPAGE ? len : SNAP_IPAGE);

				if (pwrite(fd, &c, 4, (off_t)(h.pcrc_off + pg * 4)) != 4)
					abort();
			}
		}
	}
	close(fd);
	if (pkv__snap_open(path, PKV_HASH_SEED, &s, &why) != 0)
		return 0;
	/* Keys from the input itself, at a few lengths. */
	for (size_t k = 1; k <= 32 && k <= size; k *= 2) {
		uint64_t h = (uint64_t)k * 0x9e3779b97f4a7c15ull;
		(void)pkv__snap_find(s, h, data, k, &r);
		(void)pkv__snap_find(s, ~h, data + size - k, k, &r);
	}
	/* Every record's own key, under a few hashes (the real one is unknown to the fuzzer). */
	while ((r = pkv__snap_next(s, &off)) != NULL) {
		const struct snap_rec_disk *f;

		(void)pkv__snap_rec_ok(r);
		(void)pkv__snap_find(s, r->seq, pkv__snap_rec_key(r), r->klen, &f);
	}
	(void)pkv__snap_verify(s, &why);
	pkv__snap_close(s);
	return 0;
}
