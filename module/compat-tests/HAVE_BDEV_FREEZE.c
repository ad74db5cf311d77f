// SPDX-License-Identifier: GPL-2.0
/* bdev_freeze()/bdev_thaw() (6.8+), replacing freeze_bdev()/thaw_bdev() */
#include <linux/blkdev.h>

int (*const bdsnap_compat_fn)(struct block_device *bdev) = bdev_freeze;
int (*const bdsnap_compat_fn2)(struct block_device *bdev) = bdev_thaw;
