// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshots.
 *
 * A snapshot is created with its first difference storage piece, gets
 * tracked devices added, is taken once and destroyed once:
 *
 *   CREATED --TAKE--> TAKEN --(error, removal)--> CORRUPTED
 *      \________________\__________________________\--DESTROY--> gone
 *
 * TAKE makes every image show its device at one instant: it creates the
 * cows and images and opens what it will freeze, freezes every
 * filesystem whose data lands on a device of the snapshot (on the device,
 * its partitions, the dm/md devices stacked on them: freeze.c), switches
 * every CBT generation and publishes every cow in one step per device
 * (under the CBT map's lock, tracker.c), thaws, then waits (at most
 * take_wait_ms) for the writes that had passed the filter before the
 * switch to land, and only then lets copies run and adds the image disks.
 * Corruption stops COW for the whole snapshot at once and never touches
 * the originals' I/O. Every snapshot pins the module until DESTROY.
 *
 * Storage placement: a snapshot's difference storage must never be written
 * through a device whose filter belongs to a snapshot (its copies would be
 * held for copies, or two snapshots' copies wait on each other): CREATE and
 * APPEND refuse storage whose writes reach a device of any snapshot (or
 * overlap one: its whole disk, a partition of it), or an image; ADD
 * refuses a device the storage of any snapshot is written through. ctl.c
 * serialises these commands with each other and with tracker detach.
 *
 * Locking (outer to inner):
 *   bdsnap_ctl_member_lock (ctl.c)	ATTACH, DETACH, ADD, CREATE, APPEND
 *   snap->lock (mutex)		state CREATED -> TAKEN, adding devices,
 *				TAKE, APPEND, DESTROY
 *     bdsnap_snapshots_lock (mutex)	the id table and the membership
 *					table; held briefly, never across
 *					I/O or another mutex (the storage's
 *					alloc_lock spinlock may be taken
 *					under it)
 *     snap->corrupt_lock (mutex)	what bdsnap_snapshot_corrupt() walks:
 *					the device list and each device's
 *					cow and image pointers
 *       storage locks (diff_storage.c), cow xa_lock (cow.c),
 *       snap->async_lock (spinlock, irqsave), events lock (events.c)
 *   TAKE's switch takes each CBT map's switch_lock and spinlock (cbt.c)
 *   under snap->lock.
 * snap->lock is held across freeze, add_disk(), waiting for the writes in
 * flight and for copy works (TAKE, DESTROY). That is safe because neither
 * the I/O path, nor the copy works, nor bdsnap_snapshot_corrupt(), nor a
 * tracker's ->detached(), nor a write's completion takes it: they use
 * corrupt_lock and bdsnap_snapshots_lock, which nobody holds while waiting
 * for them.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/xarray.h>
#include <uapi/linux/bdsnap.h>

#include "cbt.h"
#include "compat.h"
#include "cow.h"
#include "freeze.h"
#include "image.h"
#include "snapshot.h"
#include "tracker.h"

/* Storage growth step and low-space threshold when the caller gives 0. */
#define BDSNAP_DEFAULT_GROW_STEP	(64ULL << 20)

static DEFINE_MUTEX(bdsnap_snapshots_lock);
/* Id -> snapshot, under bdsnap_snapshots_lock. Ids are never reused. */
static DEFINE_XARRAY(bdsnap_snapshots);
/*
 * Device number -> its struct bdsnap_snap_dev in the snapshot it was added
 * to, under bdsnap_snapshots_lock: a device is in at most one snapshot.
 */
static DEFINE_XARRAY(bdsnap_members);
static u64 bdsnap_snapshot_next_id = 1;
/* Corruption works: may release many held writes, needs a rescuer. */
static struct workqueue_struct *bdsnap_snapshot_wq;

static void bdsnap_snapshot_release(struct kref *kref)
{
	struct bdsnap_snapshot *snap =
		container_of(kref, struct bdsnap_snapshot, kref);

	/* DESTROY emptied the device list and closed the storage. */
	WARN_ON_ONCE(!list_empty(&snap->devs));
	mutex_destroy(&snap->corrupt_lock);
	mutex_destroy(&snap->lock);
	kfree(snap);
}

void bdsnap_snapshot_get(struct bdsnap_snapshot *snap)
{
	kref_get(&snap->kref);
}

void bdsnap_snapshot_put(struct bdsnap_snapshot *snap)
{
	kref_put(&snap->kref, bdsnap_snapshot_release);
}

/* The snapshot @id with a reference, or NULL. Sleeps. */
static struct bdsnap_snapshot *bdsnap_snapshot_lookup(u64 id)
{
	struct bdsnap_snapshot *snap;

	if (id > ULONG_MAX)
		return NULL;
	mutex_lock(&bdsnap_snapshots_lock);
	snap = xa_load(&bdsnap_snapshots, id);
	if (snap)
		bdsnap_snapshot_get(snap);
	mutex_unlock(&bdsnap_snapshots_lock);
	return snap;
}

bool bdsnap_snapshot_uses_dev(dev_t dev)
{
	bool used;

	mutex_lock(&bdsnap_snapshots_lock);
	used = xa_load(&bdsnap_members, dev);
	mutex_unlock(&bdsnap_snapshots_lock);
	return used;
}

static void bdsnap_snapshot_corrupt_work(struct work_struct *work)
{
	struct bdsnap_snapshot *snap =
		container_of(work, struct bdsnap_snapshot, corrupt_work);
	unsigned long irqflags;
	dev_t dev;
	int err;

	spin_lock_irqsave(&snap->async_lock, irqflags);
	err = snap->async_error;
	dev = snap->async_dev;
	spin_unlock_irqrestore(&snap->async_lock, irqflags);
	if (err)
		bdsnap_snapshot_corrupt(snap, dev, err);
	bdsnap_snapshot_put(snap);	/* taken by corrupt_async() */
}

void bdsnap_snapshot_corrupt_async(struct bdsnap_snapshot *snap, dev_t dev,
				   int err)
{
	unsigned long irqflags;

	spin_lock_irqsave(&snap->async_lock, irqflags);
	if (!snap->async_error) {
		snap->async_error = err;
		snap->async_dev = dev;
	}
	spin_unlock_irqrestore(&snap->async_lock, irqflags);
	/* The queued work owns a reference; a work already queued has one. */
	bdsnap_snapshot_get(snap);
	if (!queue_work(bdsnap_snapshot_wq, &snap->corrupt_work))
		bdsnap_snapshot_put(snap);
}

void bdsnap_snapshot_corrupt(struct bdsnap_snapshot *snap, dev_t dev, int err)
{
	struct bdsnap_event_entry e = {
		.code = BDSNAP_EVENT_CORRUPTED,
		.limit = snap->storage.limit,
	};
	struct bdsnap_snap_dev *sd;
	unsigned long irqflags;
	int old;

	/*
	 * A failure recorded for the deferred path (a device removed, ENOMEM
	 * in the hook) came first: it is the reason, not what failed because
	 * of it since (e.g. a copy reading the removed device: EIO).
	 */
	spin_lock_irqsave(&snap->async_lock, irqflags);
	if (snap->async_error) {
		err = snap->async_error;
		dev = snap->async_dev;
	}
	spin_unlock_irqrestore(&snap->async_lock, irqflags);
	e.error = err;
	e.dev = dev;

	mutex_lock(&snap->corrupt_lock);
	/*
	 * Only a corruption changes error and error_dev, and corruptions are
	 * serialised here: write the reason, then the state (release), so
	 * that whoever sees CORRUPTED reads the reason (acquire in info).
	 * TAKE moves CREATED -> TAKEN with cmpxchg() as well: exactly one of
	 * the two wins.
	 */
	old = READ_ONCE(snap->state);
	if (old == BDSNAP_SNAPSHOT_CORRUPTED || snap->torn_down)
		goto out_unlock;
	WRITE_ONCE(snap->error_dev, dev);
	WRITE_ONCE(snap->error, err);
	/* Reason before state; pairs with the acquire in info. */
	smp_wmb();
	if (cmpxchg(&snap->state, old, BDSNAP_SNAPSHOT_CORRUPTED) != old)
		goto out_unlock;

	pr_err("snapshot %llu corrupted by device %u:%u: error %d\n",
	       snap->id, MAJOR(dev), MINOR(dev), -err);
	bdsnap_diff_storage_usage(&snap->storage, &e.used, &e.total);
	bdsnap_events_post(&snap->events, &e);

	/*
	 * CREATED: TAKE, if it runs, sees the state and undoes itself. TAKEN:
	 * stop every device. The list and the pointers cannot change under
	 * corrupt_lock.
	 */
	if (old == BDSNAP_SNAPSHOT_TAKEN) {
		list_for_each_entry(sd, &snap->devs, link) {
			if (sd->image)
				bdsnap_image_kill(sd->image);
			if (sd->cow)
				bdsnap_cow_fail(sd->cow, err);
		}
	}
out_unlock:
	mutex_unlock(&snap->corrupt_lock);
}

void bdsnap_snapshot_tracker_detached(dev_t dev, bool removed)
{
	struct bdsnap_event_entry e = {
		.code = BDSNAP_EVENT_DEV_REMOVED,
		.dev = dev,
	};
	struct bdsnap_snapshot *snap = NULL;
	struct bdsnap_snap_dev *sd;

	mutex_lock(&bdsnap_snapshots_lock);
	sd = xa_load(&bdsnap_members, dev);
	if (sd) {
		snap = sd->snap;
		bdsnap_snapshot_get(snap);
	}
	mutex_unlock(&bdsnap_snapshots_lock);
	if (!snap)
		return;

	if (removed)
		bdsnap_events_post(&snap->events, &e);
	/* Deferred: ->detached() may run inside del_gendisk(). */
	bdsnap_snapshot_corrupt_async(snap, dev, removed ? ENODEV : EIO);
	bdsnap_snapshot_put(snap);
}

/*
 * Storage placement (CREATE, APPEND_STORAGE; see struct
 * bdsnap_snapshot_storage): refused when a device the storage writes to is
 * a snapshot image, or is or overlaps a device of any snapshot, whose
 * filter would then see the storage's own writes. The caller serialises
 * with SNAPSHOT_ADD (ctl.c).
 */
static bool bdsnap_snapshot_storage_refused(const struct bdsnap_place *chain,
					    int nr, void *arg)
{
	struct bdsnap_snap_dev *sd;
	unsigned long dev;
	bool refused = false;
	int i;

	for (i = 0; i < nr; i++) {
		if (bdsnap_image_dev(chain[i].dev)) {
			pr_info("difference storage refused: it would be written to snapshot image %u:%u\n",
				MAJOR(chain[i].dev), MINOR(chain[i].dev));
			return true;
		}
	}
	mutex_lock(&bdsnap_snapshots_lock);
	xa_for_each(&bdsnap_members, dev, sd) {
		struct bdsnap_place place = { sd->dev, sd->disk_dev };

		for (i = 0; i < nr && !refused; i++) {
			if (!bdsnap_place_overlap(&chain[i], &place))
				continue;
			pr_info("difference storage refused: its writes reach %u:%u, where snapshot %llu's device %u:%u sees them\n",
				MAJOR(chain[i].dev), MINOR(chain[i].dev),
				sd->snap->id, MAJOR(sd->dev), MINOR(sd->dev));
			refused = true;
		}
	}
	mutex_unlock(&bdsnap_snapshots_lock);
	return refused;
}

/* Whether the storage of any snapshot writes where @place's filter sees it. */
static bool bdsnap_snapshot_backs_storage(const struct bdsnap_place *place)
{
	struct bdsnap_snapshot *snap;
	unsigned long id;
	bool found = false;

	mutex_lock(&bdsnap_snapshots_lock);
	xa_for_each(&bdsnap_snapshots, id, snap) {
		if (bdsnap_diff_storage_overlaps(&snap->storage, place)) {
			pr_info("%u:%u refused: the difference storage of snapshot %llu is written through it\n",
				MAJOR(place->dev), MINOR(place->dev), snap->id);
			found = true;
			break;
		}
	}
	mutex_unlock(&bdsnap_snapshots_lock);
	return found;
}

int bdsnap_snapshot_create(const struct bdsnap_snapshot_create *args,
			   const char *path, u64 *id)
{
	u64 grow_step = args->grow_step ?: BDSNAP_DEFAULT_GROW_STEP;
	u64 low_space = args->low_space ?: 2 * grow_step;
	struct bdsnap_snapshot *snap;
	int ret;

	snap = kzalloc(sizeof(*snap), GFP_KERNEL);
	if (!snap)
		return -ENOMEM;
	kref_init(&snap->kref);
	mutex_init(&snap->lock);
	mutex_init(&snap->corrupt_lock);
	snap->state = BDSNAP_SNAPSHOT_CREATED;
	INIT_LIST_HEAD(&snap->devs);
	bdsnap_events_init(&snap->events);
	bdsnap_diff_storage_init(&snap->storage, args->limit, grow_step,
				 low_space, &snap->events);
	spin_lock_init(&snap->async_lock);
	INIT_WORK(&snap->corrupt_work, bdsnap_snapshot_corrupt_work);

	ret = bdsnap_diff_storage_add_path(&snap->storage, path,
					   args->storage.bytes,
					   bdsnap_snapshot_storage_refused, NULL);
	if (ret)
		goto err_free;

	mutex_lock(&bdsnap_snapshots_lock);
	snap->id = bdsnap_snapshot_next_id;
	ret = xa_insert(&bdsnap_snapshots, snap->id, snap, GFP_KERNEL);
	if (!ret)
		bdsnap_snapshot_next_id++;
	mutex_unlock(&bdsnap_snapshots_lock);
	if (ret)
		goto err_close;
	*id = snap->id;
	/*
	 * Until DESTROY: an empty snapshot, or one whose devices went away,
	 * still holds its storage open and may own image disks.
	 */
	__module_get(THIS_MODULE);
	return 0;

err_close:
	bdsnap_diff_storage_close(&snap->storage);
err_free:
	mutex_destroy(&snap->corrupt_lock);
	mutex_destroy(&snap->lock);
	kfree(snap);
	return ret;
}

int bdsnap_snapshot_add(u64 id, dev_t dev)
{
	struct bdsnap_snapshot *snap;
	struct bdsnap_snap_dev *sd;
	struct bdsnap_place place;
	int ret = 0;

	sd = kzalloc(sizeof(*sd), GFP_KERNEL);
	if (!sd)
		return -ENOMEM;
	sd->dev = dev;
	sd->tracker = bdsnap_tracker_get(dev);
	if (!sd->tracker) {
		ret = -ENOENT;
		goto err_free;
	}
	sd->disk_dev = sd->tracker->disk_dev;
	snap = bdsnap_snapshot_lookup(id);
	if (!snap) {
		ret = -ENOENT;
		goto err_tracker;
	}
	sd->snap = snap;
	place.dev = sd->dev;
	place.disk = sd->disk_dev;

	mutex_lock(&snap->lock);
	if (snap->destroyed || READ_ONCE(snap->state) != BDSNAP_SNAPSHOT_CREATED)
		ret = -EBUSY;
	else if (!sd->tracker->cbt)
		ret = -EINVAL;	/* a filter-only tracker: no CBT to switch */
	else if (bdsnap_snapshot_backs_storage(&place))
		ret = -EXDEV;
	else if (bdsnap_tracker_has_sibling(dev, sd->tracker->disk_dev, NULL))
		ret = -EBUSY;
	if (ret)
		goto err_unlock;

	mutex_lock(&bdsnap_snapshots_lock);
	/* -EBUSY if @dev is in a snapshot already, this one included. */
	ret = xa_insert(&bdsnap_members, dev, sd, GFP_KERNEL);
	mutex_unlock(&bdsnap_snapshots_lock);
	if (ret)
		goto err_unlock;
	/*
	 * A detach or removal of the device may have run since the lookup:
	 * ->detached() marks the tracker, then looks for the membership; we
	 * made the membership, then look at the mark. One of us sees the
	 * other: a snapshot never holds a device nobody filters.
	 */
	if (!bdsnap_tracker_attached(sd->tracker)) {
		mutex_lock(&bdsnap_snapshots_lock);
		xa_erase(&bdsnap_members, dev);
		mutex_unlock(&bdsnap_snapshots_lock);
		ret = -ENODEV;
		goto err_unlock;
	}

	mutex_lock(&snap->corrupt_lock);
	list_add_tail(&sd->link, &snap->devs);
	snap->nr_devs++;
	mutex_unlock(&snap->corrupt_lock);
	mutex_unlock(&snap->lock);
	bdsnap_snapshot_put(snap);
	return 0;

err_unlock:
	mutex_unlock(&snap->lock);
	bdsnap_snapshot_put(snap);
err_tracker:
	bdsnap_tracker_put(sd->tracker);
err_free:
	kfree(sd);
	return ret;
}

int bdsnap_snapshot_append_storage(u64 id, const char *path, u64 bytes)
{
	struct bdsnap_snapshot *snap = bdsnap_snapshot_lookup(id);
	int ret;

	if (!snap)
		return -ENOENT;
	mutex_lock(&snap->lock);
	if (snap->destroyed ||
	    READ_ONCE(snap->state) == BDSNAP_SNAPSHOT_CORRUPTED)
		ret = -EBUSY;
	else
		ret = bdsnap_diff_storage_add_path(&snap->storage, path, bytes,
						   bdsnap_snapshot_storage_refused,
						   NULL);
	mutex_unlock(&snap->lock);
	bdsnap_snapshot_put(snap);
	return ret;
}

/*
 * Undo what a TAKE did so far, or tear a taken snapshot down: images stop
 * accepting I/O, COW stops and passes every held write, copy works finish,
 * then cows and images are freed. Under snap->lock.
 */
static void bdsnap_snapshot_untake(struct bdsnap_snapshot *snap)
{
	struct bdsnap_snap_dev *sd;
	struct bdsnap_cow *cow;

	lockdep_assert_held(&snap->lock);
	list_for_each_entry(sd, &snap->devs, link)
		if (sd->image)
			bdsnap_image_kill(sd->image);

	list_for_each_entry(sd, &snap->devs, link) {
		bdsnap_freeze_release(sd->freeze);
		sd->freeze = NULL;
		if (!sd->cow)
			continue;
		cow = bdsnap_tracker_unpublish(sd->tracker);
		if (cow)
			bdsnap_cow_put(cow);	/* the slot's reference */
		bdsnap_cow_fail(sd->cow, ECANCELED);
		bdsnap_cow_drain(sd->cow);
	}

	/*
	 * No copy work is left to call bdsnap_snapshot_corrupt(); a queued
	 * corrupt work may still run it: clear the pointers under
	 * corrupt_lock so that it finds nothing to stop.
	 */
	list_for_each_entry(sd, &snap->devs, link) {
		struct bdsnap_image *image;

		mutex_lock(&snap->corrupt_lock);
		image = sd->image;
		cow = sd->cow;
		sd->image = NULL;
		sd->cow = NULL;
		mutex_unlock(&snap->corrupt_lock);
		if (image)
			bdsnap_image_destroy(image);
		if (cow)
			bdsnap_cow_put(cow);
	}
}

/* Jiffies left until @deadline, at least 1 so that a wait still looks. */
static long bdsnap_jiffies_left(unsigned long deadline)
{
	long left = (long)(deadline - jiffies);

	return left > 0 ? left : 1;
}

/*
 * Wait until no device has a write in flight in the epoch that is not
 * current (see bdsnap_inflight_wait_other()), at most until @deadline.
 * Returns 0 or -ETIMEDOUT. Under snap->lock.
 */
static int bdsnap_snapshot_wait_writes(struct bdsnap_snapshot *snap,
				       unsigned long deadline)
{
	struct bdsnap_snap_dev *sd;

	list_for_each_entry(sd, &snap->devs, link) {
		if (bdsnap_tracker_wait_writes(sd->tracker,
					       bdsnap_jiffies_left(deadline)))
			continue;
		pr_err("snapshot %llu: writes to %u:%u in flight at the switch did not complete within take_wait_ms=%u\n",
		       snap->id, MAJOR(sd->dev), MINOR(sd->dev),
		       READ_ONCE(bdsnap_take_wait_ms));
		return -ETIMEDOUT;
	}
	return 0;
}

/* Everything a take allocates or opens, before anything is frozen. */
static int bdsnap_snapshot_prepare_take(struct bdsnap_snapshot *snap,
					bool freeze)
{
	struct bdsnap_snap_dev *sd;

	list_for_each_entry(sd, &snap->devs, link) {
		struct bdsnap_cow *cow;

		cow = bdsnap_cow_create(snap, sd->dev, &sd->tracker->flt);
		if (IS_ERR(cow))
			return PTR_ERR(cow);
		sd->cow = cow;
		sd->image = bdsnap_image_alloc(snap, cow);
		if (IS_ERR(sd->image)) {
			int ret = PTR_ERR(sd->image);

			sd->image = NULL;
			return ret;
		}
		if (freeze) {
			sd->freeze = bdsnap_freeze_prepare(sd->dev);
			if (IS_ERR(sd->freeze)) {
				int ret = PTR_ERR(sd->freeze);

				sd->freeze = NULL;
				return ret;
			}
		}
	}
	return 0;
}

int bdsnap_snapshot_take(u64 id, u32 flags, struct bdsnap_take_times *times)
{
	struct bdsnap_snapshot *snap = bdsnap_snapshot_lookup(id);
	bool freeze = !(flags & BDSNAP_TAKE_NO_FREEZE);
	struct bdsnap_snap_dev *sd, *frozen_end = NULL;
	unsigned long deadline;
	u64 start, waited;
	int ret = 0;

	if (!snap)
		return -ENOENT;
	memset(times, 0, sizeof(*times));
	mutex_lock(&snap->lock);
	if (snap->destroyed || READ_ONCE(snap->state) != BDSNAP_SNAPSHOT_CREATED) {
		ret = -EBUSY;
		goto out_unlock;
	}
	if (!snap->nr_devs) {
		ret = -EINVAL;
		goto out_unlock;
	}

	ret = bdsnap_snapshot_prepare_take(snap, freeze);
	if (ret)
		goto err_untake;
	/* The epoch the switch starts again must be empty: long since, normally. */
	deadline = jiffies + msecs_to_jiffies(READ_ONCE(bdsnap_take_wait_ms));
	ret = bdsnap_snapshot_wait_writes(snap, deadline);
	if (ret)
		goto err_untake;

	start = ktime_get_ns();
	if (freeze) {
		list_for_each_entry(sd, &snap->devs, link) {
			ret = bdsnap_freeze_all(sd->freeze, snap->id);
			if (ret) {
				frozen_end = sd;
				goto err_thaw;
			}
		}
	}
	/*
	 * The instant of the snapshot: every device switches its CBT
	 * generation, starts copy-on-write (copies held back by the gate) and
	 * a new epoch of writes in flight.
	 */
	list_for_each_entry(sd, &snap->devs, link)
		times->writes_waited += bdsnap_tracker_switch(sd->tracker,
							      sd->cow);

	/*
	 * Writes that passed the hook before the switch may still be on
	 * their way (a stacked driver may hold them): no copy may read a
	 * chunk before they land, so the copies wait behind the gate, and
	 * writes after the switch with them (held, not failed). Before the
	 * thaw: thawing writes (ext4 its superblock), and such a write,
	 * held behind the closed gate, would wait for us while we wait for
	 * it. Frozen filesystems have nothing in flight: only raw writers
	 * can make this wait long, at most take_wait_ms.
	 */
	waited = ktime_get_ns();
	deadline = jiffies + msecs_to_jiffies(READ_ONCE(bdsnap_take_wait_ms));
	ret = bdsnap_snapshot_wait_writes(snap, deadline);
	times->wait_ns = ktime_get_ns() - waited;
	/* A device removed meanwhile corrupted the snapshot: undo. */
	if (!ret && cmpxchg(&snap->state, BDSNAP_SNAPSHOT_CREATED,
			    BDSNAP_SNAPSHOT_TAKEN) != BDSNAP_SNAPSHOT_CREATED)
		ret = -EIO;
	/* Either way, before the thaw: its writes must not wait behind a gate. */
	list_for_each_entry(sd, &snap->devs, link) {
		if (ret)
			bdsnap_cow_fail(sd->cow, ECANCELED);
		else
			bdsnap_cow_open_gate(sd->cow);
	}
	if (freeze)
		list_for_each_entry_reverse(sd, &snap->devs, link)
			bdsnap_thaw_all(sd->freeze, snap->id);
	times->take_ns = ktime_get_ns() - start;
	if (ret)
		goto err_untake;
	list_for_each_entry(sd, &snap->devs, link) {
		bdsnap_freeze_release(sd->freeze);
		sd->freeze = NULL;
	}

	/* After the thaw: add_disk() may take long. */
	list_for_each_entry(sd, &snap->devs, link) {
		ret = bdsnap_image_add(sd->image);
		if (ret) {
			pr_err("snapshot %llu: cannot add the image of %u:%u: %d\n",
			       snap->id, MAJOR(sd->dev), MINOR(sd->dev), ret);
			/* Usable no more: only DESTROY is left. */
			bdsnap_snapshot_corrupt(snap, sd->dev, -ret);
			goto err_untake;
		}
	}
	pr_info("snapshot %llu taken: %u devices, %llu ns frozen, %llu ns waiting for %u writes in flight\n",
		snap->id, snap->nr_devs, times->take_ns, times->wait_ns,
		times->writes_waited);
	goto out_unlock;

err_thaw:
	list_for_each_entry(sd, &snap->devs, link) {
		if (sd == frozen_end)
			break;
		bdsnap_thaw_all(sd->freeze, snap->id);
	}
err_untake:
	bdsnap_snapshot_untake(snap);
out_unlock:
	mutex_unlock(&snap->lock);
	bdsnap_snapshot_put(snap);
	return ret;
}

int bdsnap_snapshot_destroy(u64 id)
{
	struct bdsnap_snapshot *snap;
	struct bdsnap_snap_dev *sd, *next;

	if (id > ULONG_MAX)
		return -ENOENT;
	/* Out of the table first: no new lookup, no new membership. */
	mutex_lock(&bdsnap_snapshots_lock);
	snap = xa_erase(&bdsnap_snapshots, id);
	mutex_unlock(&bdsnap_snapshots_lock);
	if (!snap)
		return -ENOENT;

	mutex_lock(&snap->lock);
	snap->destroyed = true;
	/* Images first (readers get EIO), then COW, then its works. */
	bdsnap_snapshot_untake(snap);
	mutex_lock(&snap->corrupt_lock);
	snap->torn_down = true;		/* a late corrupt work does nothing */
	mutex_unlock(&snap->corrupt_lock);
	bdsnap_events_close(&snap->events);
	bdsnap_diff_storage_close(&snap->storage);
	list_for_each_entry_safe(sd, next, &snap->devs, link) {
		mutex_lock(&bdsnap_snapshots_lock);
		xa_erase(&bdsnap_members, sd->dev);
		mutex_unlock(&bdsnap_snapshots_lock);
		mutex_lock(&snap->corrupt_lock);
		list_del(&sd->link);
		mutex_unlock(&snap->corrupt_lock);
		bdsnap_tracker_put(sd->tracker);
		kfree(sd);
	}
	snap->nr_devs = 0;
	mutex_unlock(&snap->lock);

	pr_info("snapshot %llu destroyed\n", snap->id);
	bdsnap_snapshot_put(snap);	/* the table's reference */
	/* Taken by CREATE; our caller's open control device pins us still. */
	module_put(THIS_MODULE);
	return 0;
}

int bdsnap_snapshot_info(u64 id, struct bdsnap_snapshot_info *info,
			 struct bdsnap_snapshot_dev_info *devs, u32 room)
{
	struct bdsnap_snapshot *snap = bdsnap_snapshot_lookup(id);
	struct bdsnap_snap_dev *sd;
	u32 i = 0;

	if (!snap)
		return -ENOENT;
	/* Pairs with bdsnap_snapshot_corrupt(): the error is set first. */
	info->state = smp_load_acquire(&snap->state);
	info->error = info->state == BDSNAP_SNAPSHOT_CORRUPTED ?
		      READ_ONCE(snap->error) : 0;
	bdsnap_diff_storage_usage(&snap->storage, &info->storage_used,
				  &info->storage_total);
	info->storage_limit = snap->storage.limit;

	mutex_lock(&snap->lock);
	list_for_each_entry(sd, &snap->devs, link) {
		struct bdsnap_snapshot_dev_info *d;
		dev_t image;

		if (i == room)
			break;
		d = &devs[i++];
		memset(d, 0, sizeof(*d));
		d->dev.major = MAJOR(sd->dev);
		d->dev.minor = MINOR(sd->dev);
		if (sd->image) {
			image = bdsnap_image_devt(sd->image);
			d->image.major = MAJOR(image);
			d->image.minor = MINOR(image);
		}
		if (sd->cow) {
			struct bdsnap_cow *cow = sd->cow;

			d->chunk_size = 1U << cow->chunk_shift;
			d->error = READ_ONCE(cow->error);
			d->chunks_copied = atomic64_read(&cow->chunks_copied);
			d->chunk_memory = atomic64_read(&cow->chunk_memory);
			d->reserve_copies = atomic64_read(&cow->reserve_copies);
			d->discards_dropped =
				atomic64_read(&cow->discards_dropped);
		}
	}
	info->count = snap->nr_devs;
	mutex_unlock(&snap->lock);
	bdsnap_snapshot_put(snap);
	return 0;
}

u32 bdsnap_snapshot_list(u64 *ids, u32 room)
{
	struct bdsnap_snapshot *snap;
	unsigned long id;
	u32 nr = 0;

	mutex_lock(&bdsnap_snapshots_lock);
	xa_for_each(&bdsnap_snapshots, id, snap) {
		if (nr < room)
			ids[nr] = id;
		nr++;
	}
	mutex_unlock(&bdsnap_snapshots_lock);
	return nr;
}

int bdsnap_snapshot_wait_event(u64 id, u32 timeout_ms,
			       struct bdsnap_event *ev)
{
	struct bdsnap_snapshot *snap = bdsnap_snapshot_lookup(id);
	int ret;

	if (!snap)
		return -ENOENT;
	/* The reference keeps the queue alive; DESTROY closes it. */
	ret = bdsnap_events_wait(&snap->events, timeout_ms, ev);
	bdsnap_snapshot_put(snap);
	return ret;
}

int bdsnap_snapshot_init_module(void)
{
	bdsnap_snapshot_wq = alloc_workqueue("bdsnap-snapshot",
					     WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	return bdsnap_snapshot_wq ? 0 : -ENOMEM;
}

void bdsnap_snapshot_exit_module(void)
{
	/* Every snapshot pins the module through its trackers' filters. */
	WARN_ON_ONCE(!xa_empty(&bdsnap_snapshots));
	destroy_workqueue(bdsnap_snapshot_wq);
}
