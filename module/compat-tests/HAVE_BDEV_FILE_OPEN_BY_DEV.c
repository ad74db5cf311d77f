// SPDX-License-Identifier: GPL-2.0
/* bdev_file_open_by_dev() returning a struct file (6.9+) */
#include <linux/blkdev.h>

struct file *(*const bdsnap_compat_fn)(dev_t dev, blk_mode_t mode,
					void *holder,
					const struct blk_holder_ops *hops) =
	bdev_file_open_by_dev;
