// SPDX-License-Identifier: GPL-2.0
/* bio_alloc(bdev, nr_vecs, opf, gfp) (5.18+) */
#include <linux/bio.h>

static struct bio *bdsnap_compat_fn(struct block_device *bdev)
{
	return bio_alloc(bdev, 1, REQ_OP_READ, GFP_NOIO);
}

struct bio *(*const bdsnap_compat_ptr)(struct block_device *bdev) =
	bdsnap_compat_fn;
