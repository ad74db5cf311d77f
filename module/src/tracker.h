/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trackers: one per tracked block device (whole disk or partition), each a
 * bdfilter that records the device's writes in a CBT map.
 */
#ifndef BDSNAP_TRACKER_H
#define BDSNAP_TRACKER_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/types.h>

#include <bdfilter.h>

struct bdsnap_cbt;
struct bdsnap_dev_id;

struct bdsnap_tracker {
	/*
	 * One reference belongs to the attachment (dropped by ->detached()),
	 * others to whoever looked the tracker up (bdsnap_tracker_get()).
	 */
	struct kref kref;
	/* In the global list, under bdsnap_trackers_lock, while listed. */
	struct list_head link;
	/* Under bdsnap_trackers_lock: ->detached() has run (or is running). */
	bool detached;
	/* A failed attach undoes itself: do not log the detach. */
	bool quiet;
	dev_t dev;
	/*
	 * Set once, after bdfilter_attach() told the device size; NULL until
	 * then, and ->submit_bio() passes bios while it is. Published with
	 * smp_store_release(), read with smp_load_acquire().
	 */
	struct bdsnap_cbt *cbt;
	/* Alive until ->detached() returned: embedded in the tracker. */
	struct bdfilter flt;
};

/*
 * Start tracking @dev. Process context, may sleep. Returns 0, -EBUSY
 * (already tracked or filtered), -ENODEV (no such device), -EFBIG (too
 * large for the tracking parameters) or -ENOMEM.
 */
int bdsnap_tracker_attach(dev_t dev);

/*
 * Stop tracking @dev and wait until the tracker is detached. Process
 * context, may sleep. Returns 0 or -ENOENT (not tracked).
 */
int bdsnap_tracker_detach(dev_t dev);

/*
 * The tracker of @dev with a reference held, or NULL if @dev is not
 * tracked. Its ->cbt is set. Process context, may sleep.
 */
struct bdsnap_tracker *bdsnap_tracker_get(dev_t dev);

/* Drop a reference taken by bdsnap_tracker_get(). Process context. */
void bdsnap_tracker_put(struct bdsnap_tracker *tracker);

/* Number of trackers now. Process context, may sleep. */
u32 bdsnap_tracker_count(void);

/*
 * Write the devices of the first @room trackers into @ids; return how many
 * trackers there are (possibly more than @room). May sleep.
 */
u32 bdsnap_tracker_list(struct bdsnap_dev_id *ids, u32 room);

/* Module unload: checks that no tracker is left (none can be). */
void bdsnap_tracker_exit(void);

#endif /* BDSNAP_TRACKER_H */
