/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trackers: one per tracked block device (whole disk or partition), each a
 * bdfilter that records the device's writes in a CBT map.
 */
#ifndef BDSNAP_TRACKER_H
#define BDSNAP_TRACKER_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/rcupdate.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include <bdfilter.h>

#include "inflight.h"

struct bdsnap_cbt;
struct bdsnap_cow;
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
	/* The whole disk @dev is on (@dev itself for a whole disk). */
	dev_t disk_dev;
	/*
	 * Set once, after bdfilter_attach() told the device size; NULL until
	 * then (for ever for a filter-only tracker), and ->submit_bio()
	 * passes bios while it is. Published with
	 * smp_store_release(), read with smp_load_acquire().
	 */
	struct bdsnap_cbt *cbt;
	/*
	 * The snapshot's copy-on-write state, while one is taken (cow.c):
	 * published and cleared under the CBT map's lock, read by the hook
	 * under that lock and bdsnap_cow_srcu.
	 */
	struct bdsnap_cow __rcu *cow;
	/* Writes in flight, by epoch (inflight.c); epochs flip at a switch. */
	struct bdsnap_inflight inflight;
	/* Alive until ->detached() returned: embedded in the tracker. */
	struct bdfilter flt;
	/* The last reference's put queues this: it waits for the writes. */
	struct work_struct free_work;
	struct rcu_head rcu;
};

/*
 * Start tracking @dev; with @filter_only, attach the filter but keep no
 * CBT map (->cbt stays NULL). Process context, may sleep. Returns 0, -EBUSY
 * (already tracked or filtered, or a partition or the whole disk of @dev
 * is in a snapshot), -ENODEV (no such device), -EOPNOTSUPP (a zoned
 * device), -EFBIG (too large for the tracking parameters) or -ENOMEM.
 */
int bdsnap_tracker_attach(dev_t dev, bool filter_only);

/*
 * Stop tracking @dev and wait until the tracker is detached. Process
 * context, may sleep. Returns 0 or -ENOENT (not tracked).
 */
int bdsnap_tracker_detach(dev_t dev);

/*
 * The tracker of @dev with a reference held, or NULL if @dev is not
 * tracked. Its ->cbt is set unless it is a filter-only tracker. Process context, may sleep.
 */
struct bdsnap_tracker *bdsnap_tracker_get(dev_t dev);

/*
 * True when a tracked device other than @dev is on the disk @disk_dev (a
 * partition of it, or the disk itself) and, if @in_use is given, @in_use
 * is true for it. Such pairs cannot share a snapshot's COW: a write held
 * for one is resubmitted past every filter, the other's included. Process
 * context; takes bdsnap_trackers_lock and calls @in_use under it.
 */
bool bdsnap_tracker_has_sibling(dev_t dev, dev_t disk_dev,
				bool (*in_use)(dev_t dev));

/* Drop a reference taken by bdsnap_tracker_get(). Process context. */
void bdsnap_tracker_put(struct bdsnap_tracker *tracker);

/*
 * Whether @tracker is still attached (under bdsnap_trackers_lock, as its
 * ->detached() marks it). Process context.
 */
bool bdsnap_tracker_attached(struct bdsnap_tracker *tracker);

/*
 * The switch of a take, for one tracker: start a new CBT generation, start
 * copy-on-write through @cow and a new in-flight epoch, all at one instant
 * with respect to the hook. Returns the writes that were in flight then.
 * Process context.
 */
u32 bdsnap_tracker_switch(struct bdsnap_tracker *tracker,
			  struct bdsnap_cow *cow);

/*
 * Stop copy-on-write: see bdsnap_cow_unpublish(). Returns the published
 * cow (its reference passes to the caller) or NULL. Process context.
 */
struct bdsnap_cow *bdsnap_tracker_unpublish(struct bdsnap_tracker *tracker);

/*
 * Wait, at most @timeout jiffies, for the writes of the epoch that is not
 * current (see bdsnap_inflight_wait_other()). Returns the jiffies left, 0
 * on timeout. Process context.
 */
long bdsnap_tracker_wait_writes(struct bdsnap_tracker *tracker, long timeout);

/*
 * Write the devices of the first @room trackers into @ids (NULL when @room
 * is 0); return how many trackers there are (possibly more than @room).
 * May sleep.
 */
u32 bdsnap_tracker_list(struct bdsnap_dev_id *ids, u32 room);

/* Module load and unload: the workqueue that frees trackers. */
int bdsnap_tracker_init_module(void);
/* Every tracker pins the module until it is freed: none can be left. */
void bdsnap_tracker_exit(void);

#endif /* BDSNAP_TRACKER_H */
