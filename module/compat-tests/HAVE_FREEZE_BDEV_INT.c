// SPDX-License-Identifier: GPL-2.0
/* freeze_bdev() returning int and thaw_bdev(bdev) (5.11 to 6.7) */
#include <linux/blkdev.h>

int (*const bdsnap_compat_fn)(struct block_device *bdev) = freeze_bdev;
int (*const bdsnap_compat_fn2)(struct block_device *bdev) = thaw_bdev;
