// SPDX-License-Identifier: GPL-2.0
/*
 * Freezing a snapshotted device's filesystems.
 *
 * A filesystem is frozen through the block device it is mounted on: the
 * freeze state lives on that device, a partition's own block_device, not
 * its disk's. So a whole disk whose filesystems are on its partitions (or
 * on an LVM volume on one) freezes nothing when only the disk is frozen:
 * its image would hold journals that need replaying, and data the
 * filesystems had not written yet. The set to freeze is the device and
 * every device stacked on it (stack.c). Freezing a device without a
 * filesystem only syncs it; the freeze counts nest, so a device reached
 * twice is frozen and thawed twice.
 *
 * Contexts: process context; everything sleeps. No lock of ours is held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/kdev_t.h>
#include <linux/slab.h>

#include "freeze.h"

struct bdsnap_freeze_set *bdsnap_freeze_prepare(dev_t dev)
{
	struct bdsnap_freeze_set *set;
	int i, nr, ret;

	set = kzalloc(sizeof(*set), GFP_KERNEL);
	if (!set)
		return ERR_PTR(-ENOMEM);
	nr = bdsnap_stack_walk(dev, false, set->devs);
	if (nr < 0) {
		kfree(set);
		return ERR_PTR(nr);
	}
	for (i = 0; i < nr; i++) {
		ret = bdfilter_bdev_open(set->devs[i], &set->refs[i]);
		if (ret) {
			set->nr = i;
			bdsnap_freeze_release(set);
			return ERR_PTR(ret == -ENXIO ? -ENODEV : ret);
		}
	}
	set->nr = nr;
	return set;
}

int bdsnap_freeze_all(struct bdsnap_freeze_set *set, u64 snap_id)
{
	int ret;

	for (set->frozen = 0; set->frozen < set->nr; set->frozen++) {
		int i = set->frozen;

		ret = bdsnap_freeze(set->refs[i].bdev, &set->states[i]);
		if (ret) {
			pr_err("snapshot %llu: cannot freeze %u:%u: %d\n",
			       snap_id, MAJOR(set->devs[i]),
			       MINOR(set->devs[i]), ret);
			bdsnap_thaw_all(set, snap_id);
			return ret;
		}
	}
	return 0;
}

void bdsnap_thaw_all(struct bdsnap_freeze_set *set, u64 snap_id)
{
	while (set->frozen > 0) {
		int i = --set->frozen;
		int ret = bdsnap_thaw(set->refs[i].bdev, &set->states[i]);

		if (ret)
			pr_warn("snapshot %llu: cannot thaw %u:%u: %d; its filesystem stays frozen\n",
				snap_id, MAJOR(set->devs[i]),
				MINOR(set->devs[i]), ret);
	}
}

void bdsnap_freeze_release(struct bdsnap_freeze_set *set)
{
	int i;

	if (!set)
		return;
	WARN_ON_ONCE(set->frozen);
	for (i = 0; i < set->nr; i++)
		bdfilter_bdev_close(&set->refs[i]);
	kfree(set);
}
