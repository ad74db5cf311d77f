// SPDX-License-Identifier: GPL-2.0
/* submit_bio_noacct() returns void (5.16+), not a blk_qc_t polling cookie */
#include <linux/blkdev.h>

void (*const bdsnap_compat_fn)(struct bio *bio) = submit_bio_noacct;
