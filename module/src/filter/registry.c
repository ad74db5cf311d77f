// SPDX-License-Identifier: GPL-2.0
/*
 * The registry of attached filters: attach, detach, detach on device
 * removal, and the lookup every bio goes through.
 *
 * Locking:
 * - bdfilter_mutex serialises the writers of bdfilter_list (attach, detach,
 *   removal) and guards the private fields of struct bdfilter. It is held
 *   only briefly: never while calling a filter driver, opening a device or
 *   waiting for a grace period.
 * - bdfilter_srcu protects the readers of bdfilter_list in the I/O path.
 *   ->submit_bio() runs inside it and may sleep, hence SRCU rather than RCU.
 *   A writer unlinks a filter with list_del_rcu() and calls ->detached()
 *   only after synchronize_srcu().
 * - bdfilter_ops_lock guards bdfilter_ops, the detaches and removals in
 *   progress. A spinlock, so that a wait_event() condition may take it.
 * Lock order: bdfilter_mutex, then bdfilter_ops_lock.
 *
 * A filter is detached exactly once. Whoever unlinks it under bdfilter_mutex
 * (bdfilter_detach() or a removal) lists a struct bdfilter_op for it until
 * its ->detached() has returned; a concurrent bdfilter_detach() finds the
 * filter unlinked, waits for that op to go and returns -ENOENT. The op only
 * holds the filter's address, never dereferenced once ->detached() may have
 * freed it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/rculist.h>
#include <linux/spinlock.h>
#include <linux/srcu.h>
#include <linux/string.h>
#include <linux/wait.h>

#include "compat.h"
#include "filter.h"

/*
 * bdfilter_attach() starts over when a disk removal began while it had the
 * device open; a removal storm makes it give up rather than spin.
 */
#define BDFILTER_ATTACH_TRIES 16

static LIST_HEAD(bdfilter_list);
static DEFINE_MUTEX(bdfilter_mutex);
static struct srcu_struct bdfilter_srcu;
/* Removals begun so far. Under bdfilter_mutex. */
static unsigned long bdfilter_removal_seq;

static LIST_HEAD(bdfilter_ops);
static DEFINE_SPINLOCK(bdfilter_ops_lock);
static DECLARE_WAIT_QUEUE_HEAD(bdfilter_ops_done);

/*
 * The filter attached to exactly (@disk, @partno), or NULL. Under
 * bdfilter_srcu or bdfilter_mutex. Must not sleep.
 */
static struct bdfilter *bdfilter_find(const struct gendisk *disk, u8 partno)
{
	struct bdfilter *flt;

	list_for_each_entry_rcu(flt, &bdfilter_list, link,
				srcu_read_lock_held(&bdfilter_srcu) ||
				lockdep_is_held(&bdfilter_mutex)) {
		if (flt->disk == disk && flt->partno == partno &&
		    READ_ONCE(flt->attached))
			return flt;
	}
	return NULL;
}

/*
 * Call @flt for the @nr sectors at @sector (relative to its device) of
 * @bio, unless the chain is still being skipped up to @*after: the filter
 * @*after itself is the last one skipped (then @*after becomes NULL).
 */
static enum bdfilter_result bdfilter_call(struct bdfilter *flt, struct bio *bio,
					  sector_t sector, sector_t nr,
					  const struct bdfilter **after)
{
	if (*after) {
		if (*after == flt)
			*after = NULL;
		return BDFILTER_PASS;
	}
	return flt->ops->submit_bio(flt, bio, sector, nr);
}

/*
 * Whether @flt, a filter of @disk, is in the chain of @bio, addressed to
 * @disk at @partno. Under bdfilter_srcu; must not sleep.
 */
static bool bdfilter_in_chain(const struct bdfilter *flt,
			      const struct gendisk *disk, u8 partno,
			      struct bio *bio)
{
	sector_t sector = bio->bi_iter.bi_sector, start, nr;

	if (flt->disk != disk || !READ_ONCE(flt->attached))
		return false;
	if (!flt->partno || flt->partno == partno)
		return true;
	/* Another partition's filter: only for bios to the whole disk. */
	return !partno && bdfilter_part_range(flt->disk, flt->partno, &start,
					      &nr) &&
	       sector < start + nr && start < sector + bio_sectors(bio);
}

/*
 * Run the chain of filters of @bio (see bdfilter.h), or only the part after
 * @after. Returns BDFILTER_DONE as soon as one took the bio over. Runs in
 * the submitter's context; sleeps only if a filter does.
 */
static enum bdfilter_result bdfilter_run_chain(struct bio *bio,
					       const struct bdfilter *after)
{
	enum bdfilter_result res = BDFILTER_PASS;
	sector_t sector, nr, start, len, from, to;
	struct gendisk *disk;
	struct bdfilter *flt;
	bool remapped;
	u8 partno;
	int idx;

	if (list_empty(&bdfilter_list))
		return BDFILTER_PASS;

	idx = srcu_read_lock(&bdfilter_srcu);
	disk = bdfilter_bio_disk(bio);
	partno = bdfilter_bio_partno(bio);
	remapped = bdfilter_bio_remapped(bio);
	sector = bio->bi_iter.bi_sector;
	nr = bio_sectors(bio);

	if (after) {
		bool found = false;

		list_for_each_entry_rcu(flt, &bdfilter_list, link,
					srcu_read_lock_held(&bdfilter_srcu))
			if (flt == after)
				found = bdfilter_in_chain(flt, disk, partno, bio);
		if (!found)
			after = NULL;	/* it left the chain: run all of it */
	}

	if (partno) {
		flt = bdfilter_find(disk, partno);
		if (flt) {
			res = bdfilter_call(flt, bio, remapped ?
					    sector - flt->info.start_sect :
					    sector, nr, &after);
			if (res != BDFILTER_PASS)
				goto out;
		}
	} else {
		/*
		 * A bio to the whole disk (or, on 5.10, a partition's bio the
		 * block layer remapped and resubmits): every partition filter
		 * whose partition it overlaps sees the overlap.
		 */
		list_for_each_entry_rcu(flt, &bdfilter_list, link,
					srcu_read_lock_held(&bdfilter_srcu)) {
			if (flt->disk != disk || !flt->partno ||
			    !READ_ONCE(flt->attached) ||
			    !bdfilter_part_range(disk, flt->partno, &start,
						 &len))
				continue;
			from = max(sector, start);
			to = min(sector + nr, start + len);
			if (from >= to)
				continue;
			res = bdfilter_call(flt, bio, from - start, to - from,
					    &after);
			if (res != BDFILTER_PASS)
				goto out;
		}
	}
	flt = bdfilter_find(disk, 0);
	if (flt) {
		if (partno && !remapped)
			sector += bdfilter_bio_part_start(bio);
		res = bdfilter_call(flt, bio, sector, nr, &after);
	}
out:
	srcu_read_unlock(&bdfilter_srcu, idx);
	return res;
}

enum bdfilter_result bdfilter_filter_bio(struct bio *bio)
{
	return bdfilter_run_chain(bio, NULL);
}

enum bdfilter_result bdfilter_filter_bio_after(const struct bdfilter *after,
					       struct bio *bio)
{
	return bdfilter_run_chain(bio, after);
}

/* Whether @disk is being deleted. Under bdfilter_ops_lock. */
static bool bdfilter_disk_removing(const struct gendisk *disk)
{
	struct bdfilter_op *op;

	list_for_each_entry(op, &bdfilter_ops, node) {
		if (op->disk == disk)
			return true;
	}
	return false;
}

/* Whether @flt's ->detached() is pending or running. Must not sleep. */
static bool bdfilter_detach_pending(const struct bdfilter *flt)
{
	struct bdfilter_op *op;
	bool pending = false;

	spin_lock(&bdfilter_ops_lock);
	list_for_each_entry(op, &bdfilter_ops, node) {
		if (op->flt == flt) {
			pending = true;
			break;
		}
	}
	spin_unlock(&bdfilter_ops_lock);
	return pending;
}

static void bdfilter_op_add(struct bdfilter_op *op)
{
	spin_lock(&bdfilter_ops_lock);
	list_add(&op->node, &bdfilter_ops);
	spin_unlock(&bdfilter_ops_lock);
}

static void bdfilter_op_del(struct bdfilter_op *op)
{
	spin_lock(&bdfilter_ops_lock);
	list_del(&op->node);
	spin_unlock(&bdfilter_ops_lock);
	wake_up_all(&bdfilter_ops_done);
}

/*
 * Attach @flt to @dev: see bdfilter.h. The device is opened only to look it
 * up and describe it: read-only and not exclusively, so that the user can
 * still mount, mkfs or partition it. Process context; may sleep.
 */
int bdfilter_attach(struct bdfilter *flt, dev_t dev, struct module *owner)
{
	struct bdfilter_dev_info info = {};
	struct bdfilter_bdev_ref ref;
	struct block_device *bdev;
	unsigned long seq;
	int tries = 0;
	int ret;

	might_sleep();
	if (!flt || !flt->ops || !flt->ops->submit_bio || !flt->ops->detached)
		return -EINVAL;
again:
	mutex_lock(&bdfilter_mutex);
	seq = bdfilter_removal_seq;
	mutex_unlock(&bdfilter_mutex);

	ret = bdfilter_bdev_open(dev, &ref);
	if (ret)
		return ret == -ENXIO ? -ENODEV : ret;
	bdev = ref.bdev;
	info.dev = bdev->bd_dev;
	info.nr_sectors = bdfilter_bdev_nr_sectors(bdev);
	info.start_sect = get_start_sect(bdev);
	info.is_partition = bdev_is_partition(bdev);
	snprintf(info.name, sizeof(info.name), "%pg", bdev);

	mutex_lock(&bdfilter_mutex);
	if (bdfilter_removal_seq != seq) {
		/*
		 * A disk removal began while the device was open: if it was
		 * this device's, the removal missed this filter. Look again.
		 */
		mutex_unlock(&bdfilter_mutex);
		bdfilter_bdev_close(&ref);
		if (++tries < BDFILTER_ATTACH_TRIES)
			goto again;
		return -EBUSY;
	}
	spin_lock(&bdfilter_ops_lock);
	if (bdfilter_disk_removing(bdev->bd_disk))
		ret = -ENODEV;
	spin_unlock(&bdfilter_ops_lock);
	if (ret)
		goto unlock;
	if (flt->attached || bdfilter_detach_pending(flt)) {
		ret = -EINVAL;
		goto unlock;
	}
	if (bdfilter_find(bdev->bd_disk, bdfilter_bdev_partno(bdev))) {
		ret = -EBUSY;
		goto unlock;
	}
	if (!try_module_get(owner)) {
		ret = -ENODEV;
		goto unlock;
	}
	flt->info = info;
	flt->disk = bdev->bd_disk;
	flt->partno = bdfilter_bdev_partno(bdev);
	flt->owner = owner;
	WRITE_ONCE(flt->attached, true);
	list_add_tail_rcu(&flt->link, &bdfilter_list);
unlock:
	mutex_unlock(&bdfilter_mutex);
	bdfilter_bdev_close(&ref);
	if (!ret)
		pr_info("attached to %s (%u:%u)\n", info.name, MAJOR(info.dev),
			MINOR(info.dev));
	return ret;
}
EXPORT_SYMBOL_GPL(bdfilter_attach);

/* Take @flt off the list and list @op for it. Under bdfilter_mutex. */
static void bdfilter_unlink(struct bdfilter *flt, struct bdfilter_op *op)
{
	lockdep_assert_held(&bdfilter_mutex);
	WRITE_ONCE(flt->attached, false);
	list_del_rcu(&flt->link);
	op->flt = flt;
	op->disk = NULL;
	bdfilter_op_add(op);
}

/*
 * Second half of a detach, after bdfilter_unlink(): wait for the filter's
 * last ->submit_bio(), call ->detached(), release the owner. No lock held;
 * may sleep.
 */
static void bdfilter_finish_detach(struct bdfilter *flt, struct bdfilter_op *op,
				   enum bdfilter_detach_reason reason)
{
	struct module *owner = flt->owner;
	char name[BDEVNAME_SIZE];

	strscpy(name, flt->info.name, sizeof(name));
	synchronize_srcu(&bdfilter_srcu);
	flt->ops->detached(flt, reason);
	/* The driver may have freed @flt. */
	module_put(owner);
	if (reason == BDFILTER_DETACH_REMOVED)
		pr_info("detached from %s: device removed\n", name);
	else
		pr_info("detached from %s\n", name);
	bdfilter_op_del(op);
}

/* Detach @flt: see bdfilter.h. Process context; may sleep. */
int bdfilter_detach(struct bdfilter *flt)
{
	struct bdfilter_op op;

	might_sleep();
	mutex_lock(&bdfilter_mutex);
	if (!flt->attached) {
		mutex_unlock(&bdfilter_mutex);
		/* Lost to a concurrent detach or removal: let it finish. */
		wait_event(bdfilter_ops_done, !bdfilter_detach_pending(flt));
		return -ENOENT;
	}
	bdfilter_unlink(flt, &op);
	mutex_unlock(&bdfilter_mutex);

	bdfilter_finish_detach(flt, &op, BDFILTER_DETACH_REQUESTED);
	return 0;
}
EXPORT_SYMBOL_GPL(bdfilter_detach);

/*
 * @disk is about to be deleted (called before the real del_gendisk()):
 * detach every filter on it or on one of its partitions, synchronously, and
 * keep new ones away until bdfilter_removal_end(). Process context; may
 * sleep.
 */
void bdfilter_removal_begin(struct bdfilter_op *removal, struct gendisk *disk)
{
	struct bdfilter_op op;
	struct bdfilter *flt, *found;

	removal->flt = NULL;
	removal->disk = disk;
	mutex_lock(&bdfilter_mutex);
	bdfilter_removal_seq++;
	bdfilter_op_add(removal);
	mutex_unlock(&bdfilter_mutex);

	/*
	 * One at a time: a filter's link cannot be reused for a list of our
	 * own until readers are done with it, so find the next one afresh.
	 */
	for (;;) {
		found = NULL;
		mutex_lock(&bdfilter_mutex);
		list_for_each_entry(flt, &bdfilter_list, link) {
			if (flt->disk == disk) {
				found = flt;
				break;
			}
		}
		if (found)
			bdfilter_unlink(found, &op);
		mutex_unlock(&bdfilter_mutex);
		if (!found)
			break;
		bdfilter_finish_detach(found, &op, BDFILTER_DETACH_REMOVED);
	}
}

/* The real del_gendisk() has returned: @disk is gone. Must not sleep. */
void bdfilter_removal_end(struct bdfilter_op *removal)
{
	bdfilter_op_del(removal);
}

int bdfilter_registry_init(void)
{
	return init_srcu_struct(&bdfilter_srcu);
}

/* After the hooks are gone: nothing can reach the registry any more. */
void bdfilter_registry_exit(void)
{
	/*
	 * Cannot happen: every attached filter holds a reference on its
	 * owner, which depends on this module. Leak rather than crash.
	 */
	if (!list_empty(&bdfilter_list)) {
		pr_err("unloading with filters attached\n");
		return;
	}
	cleanup_srcu_struct(&bdfilter_srcu);
}
