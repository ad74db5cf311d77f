// SPDX-License-Identifier: GPL-2.0
/*
 * Trackers: a bdfilter per tracked device whose ->submit_bio() records every
 * write in the device's CBT map.
 *
 * Lifetime: a tracker is created by bdsnap_tracker_attach() with one
 * reference for its attachment, which ->detached() drops, whoever detached
 * it (bdsnap_tracker_detach() or the device's removal). Lookups take their
 * own reference, so an ioctl can use a tracker's map while the tracker is
 * detached under it. The last reference queues the free, which first waits
 * for the tracker's writes still in flight (their completions use its
 * counters, see inflight.c), then frees tracker and map after an RCU grace
 * period. Every tracker pins this module from its creation until it is
 * freed (rmmod gets -EBUSY), so no completion can outlive the module.
 *
 * Locking:
 *   bdsnap_trackers_lock (mutex): the list, bdsnap_tracker_nr and every
 *   tracker's ->detached flag. Taken by ->detached(), so it must never be
 *   held across bdfilter_attach() or bdfilter_detach(), which may wait for
 *   a ->detached() call. No other lock nests inside or outside it.
 *   The CBT's own locks (cbt.c) are never taken under it.
 *   bdsnap_tracker_has_sibling() calls bdsnap_snapshot_uses_dev() under
 *   it, so bdsnap_snapshots_lock (snapshot.c) nests inside it; snapshot.c
 *   never calls into this file with that lock held.
 *
 * The hook, for a data-changing bio, under the CBT map's spinlock (so that a
 * take's switch, which runs under it too, sees each write wholly before or
 * wholly after it): marks the map, reads whether a snapshot is taken
 * (tracker->cow), and counts the write in the current in-flight epoch.
 * While a snapshot is taken, a discard is completed there and then without
 * reaching the device and without a mark (its range keeps its data, which
 * the image reads; see the UAPI header); any other write goes on to
 * bdsnap_cow_submit_bio() (cow.c), which may hold it until its chunk's
 * original data is safe.
 *
 * Contexts: ->submit_bio() runs in the bio submitter's context, possibly
 * atomic. The tracking part never sleeps, allocates only without waiting
 * (the in-flight context; if none can be had the write is not counted and
 * the CBT history is declared lost, so the next backup is full) and never
 * fails a bio. The copy-on-write part sleeps only for bios without
 * REQ_NOWAIT (see cow.c), as bdfilter.h allows. Everything else here runs
 * in process context and may sleep.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blk_types.h>
#include <linux/err.h>
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <uapi/linux/bdsnap.h>

#include "cbt.h"
#include "compat.h"
#include "cow.h"
#include "inflight.h"
#include "snapshot.h"
#include "tracker.h"

static LIST_HEAD(bdsnap_trackers);
static DEFINE_MUTEX(bdsnap_trackers_lock);
static u32 bdsnap_tracker_nr;
/* Frees trackers once their writes completed; drained at unload. */
static struct workqueue_struct *bdsnap_tracker_wq;

/* Any context; sleeps only in bdsnap_cow_submit_bio() (see the top). */
static enum bdfilter_result
bdsnap_tracker_submit_bio(struct bdfilter *flt, struct bio *bio,
			  sector_t sector, unsigned int nr_sectors)
{
	struct bdsnap_tracker *tracker =
		container_of(flt, struct bdsnap_tracker, flt);
	enum bdfilter_result res = BDFILTER_PASS;
	bool resized = false, counted = false;
	unsigned long irqflags;
	struct bdsnap_cbt *cbt;
	struct bdsnap_cow *cow;
	int idx;

	/* Pairs with the release in attach: a map seen is fully set up. */
	cbt = smp_load_acquire(&tracker->cbt);

	/* An empty flush (REQ_PREFLUSH without data) changes no block. */
	if (!cbt || !bdsnap_bio_changes_data(bio) || !nr_sectors)
		return BDFILTER_PASS;

	idx = bdsnap_cow_read_lock();
	irqflags = bdsnap_cbt_lock(cbt);
	cow = bdsnap_cow_deref(&tracker->cow);
	if (cow && bdsnap_cow_drops(cow, bio)) {
		bdsnap_cbt_unlock(cbt, irqflags);
		bdsnap_cow_drop(cow, bio);
		res = BDFILTER_DONE;
		goto out;
	}
	resized = bdsnap_cbt_mark_locked(cbt, sector, nr_sectors);
	counted = bdsnap_inflight_track(&tracker->inflight, bio);
	if (!counted)
		bdsnap_cbt_lose_history_locked(cbt);
	bdsnap_cbt_unlock(cbt, irqflags);

	if (resized)
		pr_warn("tracker %s (%u:%u): write beyond the %llu tracked sectors, the device was resized: history lost, detach and attach again to track the new size\n",
			flt->info.name, MAJOR(tracker->dev),
			MINOR(tracker->dev),
			(unsigned long long)cbt->device_sectors);
	if (!counted)
		pr_warn_ratelimited("tracker %s (%u:%u): out of memory for a write's in-flight record: CBT history restarted\n",
				    flt->info.name, MAJOR(tracker->dev),
				    MINOR(tracker->dev));
	if (cow)
		res = bdsnap_cow_submit_bio(cow, bio, sector, nr_sectors);
out:
	bdsnap_cow_read_unlock(idx);
	return res;
}

/* After the last reference: wait for the writes, then free. Process context. */
static void bdsnap_tracker_free_work(struct work_struct *work)
{
	struct bdsnap_tracker *tracker =
		container_of(work, struct bdsnap_tracker, free_work);

	/* Their completions touch the counters (see inflight.c). */
	wait_event(tracker->inflight.idle,
		   !bdsnap_inflight_busy(&tracker->inflight));
	if (tracker->cbt)
		bdsnap_cbt_destroy(tracker->cbt);
	/* A completion may still be waking the counters' waiters. */
	kfree_rcu(tracker, rcu);
	/* Safe here: unloading destroys this workqueue, which waits for us. */
	module_put(THIS_MODULE);
}

static void bdsnap_tracker_release(struct kref *kref)
{
	struct bdsnap_tracker *tracker =
		container_of(kref, struct bdsnap_tracker, kref);

	queue_work(bdsnap_tracker_wq, &tracker->free_work);
}

void bdsnap_tracker_put(struct bdsnap_tracker *tracker)
{
	kref_put(&tracker->kref, bdsnap_tracker_release);
}

bool bdsnap_tracker_attached(struct bdsnap_tracker *tracker)
{
	bool attached;

	mutex_lock(&bdsnap_trackers_lock);
	attached = !tracker->detached;
	mutex_unlock(&bdsnap_trackers_lock);
	return attached;
}

struct bdsnap_tracker_switch {
	struct bdsnap_tracker *tracker;
	struct bdsnap_cow *cow;
	u32 in_flight;
};

/* Under the CBT map's lock, at the instant of the switch. */
static void bdsnap_tracker_at_switch(void *arg)
{
	struct bdsnap_tracker_switch *sw = arg;

	bdsnap_cow_publish(&sw->tracker->cow, sw->cow);
	sw->in_flight = bdsnap_inflight_flip(&sw->tracker->inflight);
}

u32 bdsnap_tracker_switch(struct bdsnap_tracker *tracker,
			  struct bdsnap_cow *cow)
{
	struct bdsnap_tracker_switch sw = { .tracker = tracker, .cow = cow };

	bdsnap_cbt_switch(tracker->cbt, bdsnap_tracker_at_switch, &sw);
	return sw.in_flight;
}

struct bdsnap_cow *bdsnap_tracker_unpublish(struct bdsnap_tracker *tracker)
{
	return bdsnap_cow_unpublish(&tracker->cow);
}

long bdsnap_tracker_wait_writes(struct bdsnap_tracker *tracker, long timeout)
{
	return bdsnap_inflight_wait_other(&tracker->inflight, timeout);
}

/* Process context; may sleep. */
static void bdsnap_tracker_detached(struct bdfilter *flt,
				    enum bdfilter_detach_reason reason)
{
	struct bdsnap_tracker *tracker =
		container_of(flt, struct bdsnap_tracker, flt);

	mutex_lock(&bdsnap_trackers_lock);
	tracker->detached = true;
	if (!list_empty(&tracker->link)) {
		list_del_init(&tracker->link);
		bdsnap_tracker_nr--;
	}
	mutex_unlock(&bdsnap_trackers_lock);

	bdsnap_snapshot_tracker_detached(tracker->dev,
					 reason == BDFILTER_DETACH_REMOVED);
	if (!tracker->quiet)
		pr_info("tracker %s (%u:%u) detached: %s\n", flt->info.name,
			MAJOR(tracker->dev), MINOR(tracker->dev),
			reason == BDFILTER_DETACH_REMOVED ? "device removed" :
							    "requested");
	bdsnap_tracker_put(tracker);
}

static const struct bdfilter_ops bdsnap_tracker_ops = {
	.submit_bio = bdsnap_tracker_submit_bio,
	.detached = bdsnap_tracker_detached,
};

/* The listed tracker of @dev, or NULL. Called with bdsnap_trackers_lock. */
static struct bdsnap_tracker *bdsnap_tracker_find(dev_t dev)
{
	struct bdsnap_tracker *tracker;

	lockdep_assert_held(&bdsnap_trackers_lock);
	/*
	 * Newest first: between a filter's detach and its ->detached() call a
	 * new tracker of the same device may already be listed after the old.
	 */
	list_for_each_entry(tracker, &bdsnap_trackers, link)
		if (tracker->dev == dev)
			return tracker;
	return NULL;
}

struct bdsnap_tracker *bdsnap_tracker_get(dev_t dev)
{
	struct bdsnap_tracker *tracker;

	mutex_lock(&bdsnap_trackers_lock);
	tracker = bdsnap_tracker_find(dev);
	if (tracker)
		kref_get(&tracker->kref);
	mutex_unlock(&bdsnap_trackers_lock);
	return tracker;
}

bool bdsnap_tracker_has_sibling(dev_t dev, dev_t disk_dev,
				bool (*in_use)(dev_t dev))
{
	struct bdsnap_tracker *tracker;
	bool found = false;

	mutex_lock(&bdsnap_trackers_lock);
	list_for_each_entry(tracker, &bdsnap_trackers, link) {
		if (tracker->dev == dev || tracker->disk_dev != disk_dev)
			continue;
		if (!in_use || in_use(tracker->dev)) {
			found = true;
			break;
		}
	}
	mutex_unlock(&bdsnap_trackers_lock);
	return found;
}

/*
 * The whole disk of @dev, found by opening it; -EOPNOTSUPP for a zoned
 * device: zone append writes land where the device decides, zone resets
 * erase whole zones and held writes would be reissued out of zone order,
 * so neither CBT nor copy-on-write could keep their promise. May sleep.
 */
static int bdsnap_tracker_disk_of(dev_t dev, dev_t *disk_dev)
{
	struct bdfilter_bdev_ref ref;
	struct gendisk *disk;
	int ret;

	ret = bdfilter_bdev_open(dev, &ref);
	if (ret)
		return ret;
	disk = ref.bdev->bd_disk;
	*disk_dev = MKDEV(disk->major, disk->first_minor);
	if (bdev_is_zoned(ref.bdev)) {
		pr_info("%pg (%u:%u) is a zoned device: it cannot be tracked\n",
			ref.bdev, MAJOR(dev), MINOR(dev));
		ret = -EOPNOTSUPP;
	}
	bdfilter_bdev_close(&ref);
	return ret;
}

int bdsnap_tracker_attach(dev_t dev, bool filter_only)
{
	struct bdsnap_tracker *tracker;
	struct bdsnap_cbt *cbt;
	dev_t disk_dev;
	bool busy;
	int ret;

	mutex_lock(&bdsnap_trackers_lock);
	busy = bdsnap_tracker_find(dev);
	mutex_unlock(&bdsnap_trackers_lock);
	if (busy)
		return -EBUSY;
	ret = bdsnap_tracker_disk_of(dev, &disk_dev);
	if (ret)	/* no such device: -ENODEV, as the ABI says */
		return ret == -ENXIO ? -ENODEV : ret;
	/* See bdsnap_tracker_has_sibling(); ctl.c serialises with ADD. */
	if (bdsnap_tracker_has_sibling(dev, disk_dev, bdsnap_snapshot_uses_dev))
		return -EBUSY;

	tracker = kzalloc(sizeof(*tracker), GFP_KERNEL);
	if (!tracker)
		return -ENOMEM;
	/* The attachment's reference, and ours until we return. */
	kref_init(&tracker->kref);
	kref_get(&tracker->kref);
	INIT_LIST_HEAD(&tracker->link);
	INIT_WORK(&tracker->free_work, bdsnap_tracker_free_work);
	bdsnap_inflight_init(&tracker->inflight);
	tracker->dev = dev;
	tracker->disk_dev = disk_dev;
	tracker->flt.ops = &bdsnap_tracker_ops;
	/* Dropped by the free (see the top); the ioctl's file pins us now. */
	__module_get(THIS_MODULE);

	ret = bdfilter_attach(&tracker->flt, dev, THIS_MODULE);
	if (ret) {
		/* Never attached: no ->detached() call, nobody else knows it. */
		kfree(tracker);
		module_put(THIS_MODULE);
		return ret;
	}

	/*
	 * The size is known only now: bios that arrive before the map is
	 * published are passed untracked. They race with the attach, which
	 * has not returned yet, so no write that user space ordered after
	 * the attach is missed. A filter-only tracker never gets a map: its
	 * hook passes every bio (the filter's own cost, for benchmarks).
	 */
	if (!filter_only) {
		cbt = bdsnap_cbt_create(tracker->flt.info.nr_sectors);
		if (IS_ERR(cbt)) {
			ret = PTR_ERR(cbt);
			tracker->quiet = true;
			bdfilter_detach(&tracker->flt);
			goto out_put;
		}
		/* Publish the initialised map to ->submit_bio() (acquire there). */
		smp_store_release(&tracker->cbt, cbt);
	}

	mutex_lock(&bdsnap_trackers_lock);
	if (tracker->detached) {
		/* The device went away while the map was being made. */
		ret = -ENODEV;
	} else {
		list_add(&tracker->link, &bdsnap_trackers);
		bdsnap_tracker_nr++;
	}
	mutex_unlock(&bdsnap_trackers_lock);
	if (!ret && filter_only)
		pr_info("tracker %s (%u:%u) attached: filter only, no CBT\n",
			tracker->flt.info.name, MAJOR(dev), MINOR(dev));
	else if (!ret)
		pr_info("tracker %s (%u:%u) attached: %llu sectors, %u blocks of %u bytes\n",
			tracker->flt.info.name, MAJOR(dev), MINOR(dev),
			(unsigned long long)tracker->cbt->device_sectors,
			tracker->cbt->block_count,
			1U << tracker->cbt->block_shift);

out_put:
	bdsnap_tracker_put(tracker);
	return ret;
}

int bdsnap_tracker_detach(dev_t dev)
{
	struct bdsnap_tracker *tracker = bdsnap_tracker_get(dev);
	int ret;

	if (!tracker)
		return -ENOENT;
	if (bdsnap_snapshot_uses_dev(dev)) {
		bdsnap_tracker_put(tracker);
		return -EBUSY;
	}
	/* Without bdsnap_trackers_lock: ->detached() takes it. */
	ret = bdfilter_detach(&tracker->flt);
	bdsnap_tracker_put(tracker);
	return ret;
}

u32 bdsnap_tracker_list(struct bdsnap_dev_id *ids, u32 room)
{
	struct bdsnap_tracker *tracker;
	u32 i = 0;
	u32 nr;

	mutex_lock(&bdsnap_trackers_lock);
	list_for_each_entry(tracker, &bdsnap_trackers, link) {
		if (i == room)
			break;
		ids[i].major = MAJOR(tracker->dev);
		ids[i].minor = MINOR(tracker->dev);
		i++;
	}
	nr = bdsnap_tracker_nr;
	mutex_unlock(&bdsnap_trackers_lock);
	return nr;
}

int bdsnap_tracker_init_module(void)
{
	bdsnap_tracker_wq = alloc_workqueue("bdsnap-tracker", WQ_UNBOUND, 0);
	return bdsnap_tracker_wq ? 0 : -ENOMEM;
}

void bdsnap_tracker_exit(void)
{
	/* Every tracker pins the module: none can be left at unload. */
	WARN_ON(!list_empty(&bdsnap_trackers));
	/* Waits for a free work that has just dropped its module reference. */
	destroy_workqueue(bdsnap_tracker_wq);
}
