/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Freezing the filesystems of a device for a take: those on the device
 * itself and on everything stacked on it (its partitions, dm and md devices
 * built on it or on them), so that every filesystem whose data lands on a
 * snapshotted device is consistent in the image.
 */
#ifndef BDSNAP_FREEZE_H
#define BDSNAP_FREEZE_H

#include <linux/types.h>

#include "compat.h"
#include "stack.h"

struct bdsnap_freeze_set {
	int nr;				/* devices: the device, then above */
	int frozen;			/* the first @frozen are frozen */
	dev_t devs[BDSNAP_STACK_MAX];
	struct bdfilter_bdev_ref refs[BDSNAP_STACK_MAX];
	struct bdsnap_freeze_state states[BDSNAP_STACK_MAX];
};

/*
 * Find and open (read only) @dev and every device stacked on it, to freeze
 * them later. Process context, sleeps. Returns the set or an ERR_PTR.
 */
struct bdsnap_freeze_set *bdsnap_freeze_prepare(dev_t dev);

/*
 * Freeze every device of the set, @dev first. On a failure thaw the ones
 * frozen and return the error (after logging which device failed). Process
 * context, sleeps.
 */
int bdsnap_freeze_all(struct bdsnap_freeze_set *set, u64 snap_id);

/* Thaw what is frozen, last first; failures are logged. Sleeps. */
void bdsnap_thaw_all(struct bdsnap_freeze_set *set, u64 snap_id);

/* Close the devices and free the set (thawed). Sleeps. NULL is fine. */
void bdsnap_freeze_release(struct bdsnap_freeze_set *set);

#endif /* BDSNAP_FREEZE_H */
