// SPDX-License-Identifier: GPL-2.0
/* bio_init(bio, bdev, table, max_vecs, opf) (5.18+), not bio_init(bio, table, max_vecs) */
#include <linux/bio.h>

void bdsnap_compat_test(struct bio *bio);
void bdsnap_compat_test(struct bio *bio)
{
	bio_init(bio, NULL, NULL, 0, 0);
}
