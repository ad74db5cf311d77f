// SPDX-License-Identifier: GPL-2.0
/* blk_alloc_disk(node) returning NULL on failure (5.14 to 6.8) */
#include <linux/blkdev.h>

static struct gendisk *bdsnap_compat_fn(void)
{
	return blk_alloc_disk(NUMA_NO_NODE);
}

struct gendisk *(*const bdsnap_compat_ptr)(void) = bdsnap_compat_fn;
