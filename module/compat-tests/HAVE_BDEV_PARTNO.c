// SPDX-License-Identifier: GPL-2.0
/* bdev_partno() (6.10+, when struct block_device lost bd_partno) */
#include <linux/blkdev.h>

u8 bdsnap_compat_test(const struct block_device *bdev);
u8 bdsnap_compat_test(const struct block_device *bdev)
{
	return bdev_partno(bdev);
}
