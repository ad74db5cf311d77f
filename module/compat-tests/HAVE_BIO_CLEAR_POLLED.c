// SPDX-License-Identifier: GPL-2.0
/* bio_clear_polled() (5.18+): clears REQ_POLLED and what goes with it */
#include <linux/bio.h>

void bdsnap_compat_test(struct bio *bio);
void bdsnap_compat_test(struct bio *bio)
{
	bio_clear_polled(bio);
}
