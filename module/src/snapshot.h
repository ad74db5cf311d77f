/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshots: a set of tracked devices switched to copy-on-write at one
 * instant, with one difference storage, one image per device and an event
 * queue.
 */
#ifndef BDSNAP_SNAPSHOT_H
#define BDSNAP_SNAPSHOT_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "diff_storage.h"
#include "events.h"

struct bdsnap_cow;
struct bdsnap_event;
struct bdsnap_freeze_set;
struct bdsnap_image;
struct bdsnap_snapshot_create;
struct bdsnap_snapshot_dev_info;
struct bdsnap_snapshot_info;
struct bdsnap_tracker;

/* One device of a snapshot. */
struct bdsnap_snap_dev {
	/*
	 * In snap->devs: added while CREATED, removed by DESTROY, both under
	 * snap->lock and snap->corrupt_lock. Also the entry of its device in
	 * the membership table (snapshot.c), under bdsnap_snapshots_lock.
	 */
	struct list_head link;
	struct bdsnap_snapshot *snap;	/* not referenced: it owns us */
	dev_t dev;
	dev_t disk_dev;			/* the whole disk of @dev */
	struct bdsnap_tracker *tracker;	/* referenced */
	/*
	 * From TAKE on until DESTROY (set under snap->lock, cleared under
	 * snap->corrupt_lock too); the snapshot holds a cow reference.
	 */
	struct bdsnap_cow *cow;
	struct bdsnap_image *image;
	/* During TAKE: the device and all stacked on it, to freeze. */
	struct bdsnap_freeze_set *freeze;
};

struct bdsnap_snapshot {
	/*
	 * References: the id table's (dropped by DESTROY), one per lookup,
	 * one per cow (cow->snap). DESTROY drops the snapshot's references
	 * on its cows, which breaks that cycle.
	 */
	struct kref kref;
	u64 id;
	/*
	 * Serialises ADD, TAKE, APPEND, INFO's device walk and DESTROY. Held
	 * across freeze/thaw, add_disk() and waiting for copy works. Never
	 * taken by the I/O path, the works, bdsnap_snapshot_corrupt() or a
	 * tracker's ->detached().
	 */
	struct mutex lock;
	/*
	 * enum bdsnap_snapshot_state: CREATED -> TAKEN under @lock;
	 * -> CORRUPTED with cmpxchg() from anywhere.
	 */
	int state;
	bool destroyed;			/* under @lock */
	/*
	 * Serialises bdsnap_snapshot_corrupt() with the teardown: the device
	 * list and each device's cow and image pointers change under it.
	 */
	struct mutex corrupt_lock;
	bool torn_down;			/* under @corrupt_lock */
	/* Written once by the first corruption, before state says so. */
	int error;
	dev_t error_dev;

	struct list_head devs;		/* struct bdsnap_snap_dev */
	unsigned int nr_devs;

	struct bdsnap_diff_storage storage;
	struct bdsnap_event_queue events;

	/* Corruption reported from contexts that must not sleep. */
	spinlock_t async_lock;
	int async_error;		/* first pending error, 0 if none */
	dev_t async_dev;
	struct work_struct corrupt_work;
};

/* Most milliseconds a take waits for the writes in flight (main.c). */
extern unsigned int bdsnap_take_wait_ms;

int bdsnap_snapshot_init_module(void);
void bdsnap_snapshot_exit_module(void);

/*
 * Create a snapshot with its first storage piece at @path. Process
 * context, sleeps. Returns 0 and the id in *@id, or a negative errno.
 */
int bdsnap_snapshot_create(const struct bdsnap_snapshot_create *args,
			   const char *path, u64 *id);

/* SNAPSHOT_ADD: -ENOENT, -EBUSY, -EXDEV, -ENODEV, -ENOMEM. Process context. */
int bdsnap_snapshot_add(u64 id, dev_t dev);

/* What a take measured (struct bdsnap_snapshot_ctl's output fields). */
struct bdsnap_take_times {
	u64 take_ns;		/* first freeze to last thaw */
	u64 wait_ns;		/* then waiting for the writes in flight */
	u32 writes_waited;	/* writes in flight at the switch */
};

/*
 * SNAPSHOT_TAKE: freeze, switch, thaw, wait for the writes in flight at the
 * switch, copies, images. Process context.
 */
int bdsnap_snapshot_take(u64 id, u32 flags, struct bdsnap_take_times *times);

/* SNAPSHOT_DESTROY, in any state. Process context. */
int bdsnap_snapshot_destroy(u64 id);

/* SNAPSHOT_APPEND_STORAGE. Process context. */
int bdsnap_snapshot_append_storage(u64 id, const char *path, u64 bytes);

/*
 * SNAPSHOT_INFO: fill @info's output fields and the first @room entries
 * of @devs. Process context.
 */
int bdsnap_snapshot_info(u64 id, struct bdsnap_snapshot_info *info,
			 struct bdsnap_snapshot_dev_info *devs, u32 room);

/* SNAPSHOT_LIST: ids of the first @room snapshots; returns the count. */
u32 bdsnap_snapshot_list(u64 *ids, u32 room);

/* SNAPSHOT_WAIT_EVENT. Process context, sleeps up to @timeout_ms. */
int bdsnap_snapshot_wait_event(u64 id, u32 timeout_ms,
			       struct bdsnap_event *ev);

void bdsnap_snapshot_get(struct bdsnap_snapshot *snap);
void bdsnap_snapshot_put(struct bdsnap_snapshot *snap);

static inline struct bdsnap_diff_storage *
bdsnap_snapshot_storage(struct bdsnap_snapshot *snap)
{
	return &snap->storage;
}

/*
 * Mark the snapshot corrupted by @err (positive errno) on @dev: every cow
 * passes writes from now on, images fail with EIO, an event is posted.
 * The first corruption wins. Process context, sleeps (releases held
 * writes); takes no snapshot lock, so copy works may call it.
 */
void bdsnap_snapshot_corrupt(struct bdsnap_snapshot *snap, dev_t dev,
			     int err);

/* The same, deferred to a work: callable from any context. */
void bdsnap_snapshot_corrupt_async(struct bdsnap_snapshot *snap, dev_t dev,
				   int err);

/* Whether @dev is in any snapshot (tracker detach refuses it). Sleeps. */
bool bdsnap_snapshot_uses_dev(dev_t dev);

/*
 * Called by a tracker's ->detached() for its device @dev; @removed when the
 * device went away. Corrupts (asynchronously) a snapshot holding it.
 * Process context.
 */
void bdsnap_snapshot_tracker_detached(dev_t dev, bool removed);

#endif /* BDSNAP_SNAPSHOT_H */
