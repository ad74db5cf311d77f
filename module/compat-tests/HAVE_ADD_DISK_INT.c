// SPDX-License-Identifier: GPL-2.0
/* add_disk() returns an int that must be checked (5.15+) */
#include <linux/blkdev.h>

static int bdsnap_compat_fn(struct gendisk *disk)
{
	return add_disk(disk);
}

int (*const bdsnap_compat_ptr)(struct gendisk *disk) = bdsnap_compat_fn;
