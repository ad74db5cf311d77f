// SPDX-License-Identifier: GPL-2.0
/* bdev_nr_sectors() (5.11+) */
#include <linux/blkdev.h>

sector_t bdsnap_compat_test(struct block_device *bdev);
sector_t bdsnap_compat_test(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}
