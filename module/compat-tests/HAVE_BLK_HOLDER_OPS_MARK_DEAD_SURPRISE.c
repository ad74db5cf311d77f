// SPDX-License-Identifier: GPL-2.0
/* blk_holder_ops.mark_dead takes a "surprise" removal flag (after 6.5) */
#include <linux/blkdev.h>

static void bdsnap_compat_mark_dead(struct block_device *bdev, bool surprise)
{
}

const struct blk_holder_ops bdsnap_compat_ops = {
	.mark_dead = bdsnap_compat_mark_dead,
};
