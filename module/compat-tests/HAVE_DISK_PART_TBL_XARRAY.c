// SPDX-License-Identifier: GPL-2.0
/* gendisk->part_tbl is an xarray of block devices (5.11+), not a hd_struct table */
#include <linux/blkdev.h>
#include <linux/xarray.h>

struct block_device *bdsnap_compat_test(struct gendisk *disk);
struct block_device *bdsnap_compat_test(struct gendisk *disk)
{
	return xa_load(&disk->part_tbl, 1);
}
