// SPDX-License-Identifier: GPL-2.0
/* blk_alloc_disk(struct queue_limits *, node) returning an ERR_PTR (6.9+) */
#include <linux/blkdev.h>

static struct gendisk *bdsnap_compat_fn(struct queue_limits *lim)
{
	return blk_alloc_disk(lim, NUMA_NO_NODE);
}

struct gendisk *(*const bdsnap_compat_ptr)(struct queue_limits *lim) =
	bdsnap_compat_fn;
