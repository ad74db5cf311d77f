/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Difference storage of a snapshot: where the copy-on-write path keeps the
 * original data of the chunks written since the snapshot was taken.
 *
 * The storage is a list of pieces, each a regular file (on any filesystem,
 * tmpfs included) or a block device, opened by path and accessed only through
 * the VFS. A piece is cut into slots as chunks need them; slots are never
 * freed while the snapshot lives. The storage is embedded in its snapshot
 * and lives exactly as long as it: every user holds a snapshot reference.
 */
#ifndef BDSNAP_DIFF_STORAGE_H
#define BDSNAP_DIFF_STORAGE_H

#include <linux/bvec.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

struct bdsnap_event_queue;
struct file;

/* A device a storage piece writes to, and the whole disk it is on. */
struct bdsnap_place {
	dev_t dev;
	dev_t disk;
};

/* Whether writes to one of the two devices reach the other's filter. */
static inline bool bdsnap_place_overlap(const struct bdsnap_place *a,
					const struct bdsnap_place *b)
{
	return a->dev == b->dev || a->dev == b->disk || a->disk == b->dev;
}

/*
 * A placement check: true if writes to one of @nr devices (@chain) must
 * not be made. Process context; called without storage locks.
 */
typedef bool (*bdsnap_place_refused_t)(const struct bdsnap_place *chain,
				       int nr, void *arg);

struct bdsnap_diff_piece {
	/* In storage->pieces; never removed before the storage is freed. */
	struct list_head link;
	struct file *file;
	/*
	 * Every device the piece's writes reach: the one holding it (a block
	 * device itself, or its filesystem's; none for tmpfs) and every one
	 * under that (stack.c). Fixed when the piece is added.
	 */
	struct bdsnap_place *chain;
	int chain_nr;
	/* Regular file whose size the module may extend. */
	bool growable;
	/* Under storage->alloc_lock: next free byte and end of usable bytes. */
	loff_t pos;
	loff_t end;
};

/* Where one chunk's original data lives. */
struct bdsnap_diff_slot {
	struct bdsnap_diff_piece *piece;
	loff_t pos;
};

/* Bits of storage->flags. */
enum {
	BDSNAP_STORAGE_GROWING,		/* grow_work queued or running */
	BDSNAP_STORAGE_GROW_FAILED,	/* growth failed: do not retry */
	BDSNAP_STORAGE_LOW_SENT,	/* LOW_SPACE posted for this crossing */
	BDSNAP_STORAGE_CLOSED,		/* destroy: no more growth */
};

struct bdsnap_diff_storage {
	/*
	 * Serialises the writers of the piece list (add, growth). Held across
	 * filp_open() and vfs_fallocate(): never taken in the I/O path.
	 */
	struct mutex grow_lock;
	/*
	 * Protects the piece list for readers, every piece's pos and end, and
	 * the counters below. Never held across anything that sleeps.
	 */
	spinlock_t alloc_lock;
	struct list_head pieces;
	u64 used;		/* bytes handed out as slots */
	u64 total;		/* bytes in all pieces */

	/* Fixed at creation. */
	u64 limit;		/* growth stops at this total (0: no growth) */
	u64 grow_step;
	u64 low_space;

	unsigned long flags;	/* BDSNAP_STORAGE_* bits */
	struct work_struct grow_work;
	/* Woken when a growth ends (success or not) and at close. */
	wait_queue_head_t grow_wait;
	/* The snapshot's event queue, for LOW_SPACE and STORAGE_GROWN. */
	struct bdsnap_event_queue *events;
};

/*
 * Enter and leave the scope in which a work may write to the storage: no
 * reclaim I/O (memalloc_noio_save()), and dirty page throttling only
 * against the storage's own device (PF_LOCAL_THROTTLE, as loop does): the
 * global dirty limit may be held up by dirty pages of the snapshotted
 * devices, whose writeback waits for this very work. Returns the state to
 * restore. Process context.
 */
unsigned int bdsnap_diff_storage_io_begin(void);
void bdsnap_diff_storage_io_end(unsigned int state);

/* Module-wide setup and teardown (the growth workqueue). May sleep. */
int bdsnap_diff_storage_init_module(void);
void bdsnap_diff_storage_exit_module(void);

/* Initialise an embedded storage without pieces. Any context. */
void bdsnap_diff_storage_init(struct bdsnap_diff_storage *st, u64 limit,
			      u64 grow_step, u64 low_space,
			      struct bdsnap_event_queue *events);

/*
 * Open @path and add it as a piece of @bytes bytes (see struct
 * bdsnap_snapshot_storage), unless @refused says no to the devices its
 * writes reach, which is asked before anything is opened. Process context,
 * sleeps. Returns 0, -EXDEV (refused, or a loop device in the chain whose
 * backing file cannot be found), -EINVAL (not a regular file or block
 * device, or no usable bytes), -ETXTBSY (swap file), -EPERM (immutable or
 * append-only file), -ENOSPC (fallocate), or the errno of opening the path.
 */
int bdsnap_diff_storage_add_path(struct bdsnap_diff_storage *st,
				 const char *path, u64 bytes,
				 bdsnap_place_refused_t refused, void *arg);

/*
 * Whether a piece's writes reach @place or a device whose filter sees it
 * (SNAPSHOT_ADD's -EXDEV check). Never sleeps: the caller may hold a mutex
 * others wait for.
 */
bool bdsnap_diff_storage_overlaps(struct bdsnap_diff_storage *st,
				  const struct bdsnap_place *place);

/*
 * Hand out a slot of @size bytes (a power of two, aligned to @size within
 * its piece). When the storage is full but can grow, waits for the growth.
 * Process context (the copy work), sleeps. Returns 0 or -ENOSPC.
 */
int bdsnap_diff_storage_alloc_slot(struct bdsnap_diff_storage *st, u32 size,
				   struct bdsnap_diff_slot *slot);

/*
 * Write @len bytes described by @bvec (@nr_bvec entries) at byte @offset of
 * @slot; read likewise. Process context, sleeps; the caller runs under
 * memalloc_noio_save(). Return 0 or a negative errno (-EIO for a short
 * transfer).
 */
int bdsnap_diff_storage_write_slot(const struct bdsnap_diff_slot *slot,
				   u32 offset, const struct bio_vec *bvec,
				   unsigned int nr_bvec, size_t len);
int bdsnap_diff_storage_read_slot(const struct bdsnap_diff_slot *slot,
				  u32 offset, const struct bio_vec *bvec,
				  unsigned int nr_bvec, size_t len);

/*
 * Make everything written to the storage durable (image REQ_PREFLUSH and
 * REQ_FUA). Process context, sleeps. Returns 0 or the first error.
 */
int bdsnap_diff_storage_sync(struct bdsnap_diff_storage *st);

/* Bytes used and available now. Never sleeps; not from interrupts. */
void bdsnap_diff_storage_usage(struct bdsnap_diff_storage *st, u64 *used,
			       u64 *total);

/*
 * Stop growth and wake slot allocators (they fail with -ENOSPC), wait for a
 * running growth, close every piece. Process context, sleeps. No slot may
 * be read or written any more.
 */
void bdsnap_diff_storage_close(struct bdsnap_diff_storage *st);

#endif /* BDSNAP_DIFF_STORAGE_H */
