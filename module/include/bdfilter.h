/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bdfilter: the generic block-layer filter (bdfilter.ko), for filter drivers
 * such as bdsnap.ko.
 *
 * A filter is attached to one block device: a whole disk or a partition.
 * Every bio that lands on that device reaches the filter's ->submit_bio() at
 * the very beginning of submit_bio_noacct(), in the submitter's context,
 * before the block layer remaps, splits or queues it: for a whole-disk
 * filter, every bio to the disk or to any of its partitions; for a partition
 * filter, every bio to the partition and every bio addressed to the whole
 * disk (by anyone: a dm mapping of the disk, a tool writing the disk) whose
 * range overlaps the partition, with the overlapping part of its range.
 * Several filters may be attached at once, each to its own device; a
 * partition and its whole disk may both have one.
 *
 * The filters a bio reaches form a chain: the filter of the partition it is
 * addressed to (or, for a bio to the whole disk, those of the partitions it
 * overlaps, in attach order), then the whole disk's. A filter that takes a
 * bio over resubmits it with bdfilter_resubmit_bio(), which runs the rest of
 * the chain; bios a filter driver submits itself with bdfilter_submit_bio()
 * are not filtered at all.
 *
 * Lifetime: the filter driver owns struct bdfilter (usually embedded in its
 * own object) and must keep it alive from bdfilter_attach() until
 * ->detached() has returned. A filter is detached exactly once: by
 * bdfilter_detach(), or by the device going away (del_gendisk), whichever
 * comes first. ->detached() is then called exactly once, after every
 * ->submit_bio() call on that filter has returned, in process context.
 */
#ifndef BDFILTER_H
#define BDFILTER_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/types.h>

struct bdfilter;

/* What ->submit_bio() did with a bio. */
enum bdfilter_result {
	/* Let the bio continue to the device (to the next filter, if any). */
	BDFILTER_PASS = 0,
	/*
	 * The filter took the bio over: it will end it, or submit it later
	 * with bdfilter_submit_bio().
	 */
	BDFILTER_DONE = 1,
};

/* Why a filter was detached. */
enum bdfilter_detach_reason {
	BDFILTER_DETACH_REQUESTED = 0,	/* bdfilter_detach() */
	BDFILTER_DETACH_REMOVED = 1,	/* the device is being deleted */
	BDFILTER_DETACH_UNLOAD = 2,	/* reserved: never used while attached */
};

struct bdfilter_ops {
	/*
	 * Called for each bio that lands on the filtered device. @sector and
	 * @nr_sectors are the part of the bio's range on the filtered device,
	 * relative to its start: the whole bio for a bio addressed to the
	 * device (for a whole-disk filter seeing a partition's bio, the
	 * partition offset is already added), the overlap with the partition
	 * for a partition filter seeing a bio to its whole disk. Runs in the
	 * submitter's context: it may sleep only if the bio does not have
	 * REQ_NOWAIT; it must not allocate memory with a mask that can recurse
	 * into block I/O (use GFP_NOIO).
	 */
	enum bdfilter_result (*submit_bio)(struct bdfilter *flt, struct bio *bio,
					   sector_t sector,
					   unsigned int nr_sectors);
	/*
	 * Called exactly once when the filter is detached, after the last
	 * ->submit_bio() call returned. Process context; may sleep. The
	 * driver may free the object embedding @flt from here.
	 */
	void (*detached)(struct bdfilter *flt,
			 enum bdfilter_detach_reason reason);
};

/* Facts about the filtered device, filled in by bdfilter_attach(). */
struct bdfilter_dev_info {
	dev_t dev;
	sector_t nr_sectors;		/* size when attached */
	sector_t start_sect;		/* partition offset in its disk; 0 for a disk */
	bool is_partition;
	char name[BDEVNAME_SIZE];	/* e.g. "vdb1" */
};

struct bdfilter {
	/* Set by the filter driver before bdfilter_attach(). */
	const struct bdfilter_ops *ops;

	/* Set by bdfilter_attach(); read only for the filter driver. */
	struct bdfilter_dev_info info;

	/* Private to bdfilter.ko. */
	struct list_head link;
	struct gendisk *disk;
	struct module *owner;
	u8 partno;
	bool attached;
};

/*
 * Attach @flt to the block device @dev. Process context; may sleep.
 * Returns 0, -ENODEV (no such device), -EBUSY (a filter is already attached
 * to @dev) or -ENOMEM. On success bdfilter.ko holds a reference on the
 * calling module (@owner) until ->detached() returns.
 */
int bdfilter_attach(struct bdfilter *flt, dev_t dev, struct module *owner);

/*
 * Detach @flt. Synchronous: when it returns, ->detached() has run to
 * completion (here or in a concurrent device removal). Returns 0 if this
 * call detached the filter, -ENOENT if it was already detached.
 * Process context; may sleep; must not be called from ->submit_bio().
 */
int bdfilter_detach(struct bdfilter *flt);

/*
 * Submit @bio to its device without filtering it at all: for the filter
 * driver's own I/O.
 */
void bdfilter_submit_bio(struct bio *bio);

/*
 * Submit @bio, which @flt took over (BDFILTER_DONE), to the filters after
 * @flt in its chain, then to its device. A filter that takes it over then
 * owns it. Process context; may sleep if those filters do. If @flt is not
 * in the bio's chain any more (detached meanwhile), the whole chain runs.
 */
void bdfilter_resubmit_bio(const struct bdfilter *flt, struct bio *bio);

#endif /* BDFILTER_H */
