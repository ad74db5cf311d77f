// SPDX-License-Identifier: GPL-2.0
/* blkdev_get_by_dev(dev, blk_mode_t, holder, holder ops) (6.5 to 6.8) */
#include <linux/blkdev.h>

struct block_device *(*const bdsnap_compat_fn)(dev_t dev, blk_mode_t mode,
						void *holder,
						const struct blk_holder_ops *hops) =
	blkdev_get_by_dev;
