/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copy-on-write of one device in a taken snapshot.
 *
 * The device is cut into chunks of 2^chunk_shift bytes. The first write to a
 * chunk after the snapshot was taken is held until the chunk's original data
 * is in the difference storage; later writes to it pass straight through.
 * Reads of the original are never held. The snapshot image reads a chunk
 * from the difference storage once it was copied, from the original device
 * before.
 */
#ifndef BDSNAP_COW_H
#define BDSNAP_COW_H

#include <linux/atomic.h>
#include <linux/blk_types.h>
#include <linux/kref.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include <bdfilter.h>

#include "compat.h"
#include "diff_storage.h"

struct bdsnap_snapshot;

/*
 * Chunk-size tunables, defined and documented in main.c (same rule as the
 * CBT block size), checked by bdsnap_cow_check_params() at load time.
 */
extern unsigned int bdsnap_chunk_min_shift;
extern unsigned int bdsnap_chunk_max_shift;
extern unsigned int bdsnap_chunk_max_count;
/* Cap on all chunk maps' memory, MiB (main.c); 0 at load: an eighth of RAM. */
extern unsigned int bdsnap_chunk_memory_max_mib;

/* A chunk without an entry in cow->chunks still has its data in place. */
enum bdsnap_chunk_state {
	/* The copy work runs; writes to the chunk are held. */
	BDSNAP_CHUNK_COPYING = 1,
	/* The original data is in @slot; writes pass. */
	BDSNAP_CHUNK_COPIED,
	/* The copy failed and the snapshot is corrupted; writes pass. */
	BDSNAP_CHUNK_FAILED,
};

/* A write held until a chunk is copied (from a mempool, no bio field used). */
struct bdsnap_held_bio {
	struct bdsnap_held_bio *next;
	struct bio *bio;
	/*
	 * The part of the bio on the device, relative to its start (the
	 * filter's view: for a partition seeing a bio to its whole disk, only
	 * the overlap), which the worker needs to re-run the chunk walk.
	 */
	sector_t sector;
	unsigned int nr_sectors;
};

struct bdsnap_chunk {
	struct bdsnap_cow *cow;
	unsigned long index;
	/*
	 * enum bdsnap_chunk_state. Written under the xarray lock with
	 * smp_store_release(); read without it with smp_load_acquire().
	 */
	int state;
	/* Under the xarray lock: writes held on this chunk, oldest first. */
	struct bdsnap_held_bio *held_head;
	struct bdsnap_held_bio **held_tail;
	/* Set before the state becomes COPIED, immutable afterwards. */
	struct bdsnap_diff_slot slot;
	/*
	 * Set before @work is queued: the work copies this chunk and the
	 * @batch - 1 following ones, created with it (their works are unused).
	 */
	unsigned int batch;
	/* Under cow->gate_lock: the next batch waiting for the gate. */
	struct bdsnap_chunk *gate_next;
	struct work_struct work;
};

struct bdsnap_cow {
	/*
	 * References: the snapshot device's, one per queued copy work, one
	 * per image bio in flight.
	 */
	struct kref kref;
	/* The snapshot, referenced; its storage is embedded in it. */
	struct bdsnap_snapshot *snap;
	struct bdsnap_diff_storage *storage;

	dev_t dev;
	/* The tracker's filter: held writes go on through the rest of its chain. */
	const struct bdfilter *flt;
	/* The original device, open read only, for the copies' reads. */
	struct bdfilter_bdev_ref orig;
	sector_t nr_sectors;		/* size when the snapshot was taken */
	unsigned int chunk_shift;	/* log2 of the chunk size in bytes */
	unsigned long chunk_count;

	/*
	 * Chunk number -> struct bdsnap_chunk, for chunks touched since the
	 * take. Its spinlock (xa_lock, process context only: no I/O path user
	 * runs in interrupt context, REQ_NOWAIT bios never take it) guards
	 * every chunk's state and held list, and @failed.
	 */
	struct xarray chunks;
	/* Set once under the xarray lock; read locklessly by the hook. */
	bool failed;
	int error;

	/* Chunks whose copy is queued or running; @idle_wait is woken at 0. */
	atomic_t pending;
	wait_queue_head_t idle_wait;
	/* Woken whenever a chunk leaves COPYING. */
	wait_queue_head_t copy_wait;

	/*
	 * The copy gate: closed from the switch until the take has waited for
	 * the writes in flight before it, so that no copy reads a chunk such
	 * a write is still on its way to. Batches started meanwhile wait on
	 * @gated (a list through chunk->gate_next), queued when it opens.
	 */
	spinlock_t gate_lock;
	bool gate_open;
	struct bdsnap_chunk *gated;

	atomic64_t chunks_copied;
	atomic64_t reserve_copies;	/* copied on the reserve buffer */
	atomic64_t discards_dropped;
	/* Bytes of chunk records and index nodes, counted in the module cap. */
	atomic64_t chunk_memory;
};

/* Module-wide setup: SRCU, workqueue, mempools. Process context. */
int bdsnap_cow_init_module(void);
void bdsnap_cow_exit_module(void);

/* Check the chunk parameters. Returns 0 or -EINVAL (and logs why). */
int bdsnap_cow_check_params(void);

/*
 * Create the COW state of @dev (filtered by @flt) in @snap (referenced
 * here), not yet published, its copy gate closed. Opens the device read
 * only; the cow covers the device's size now, which is the size of the
 * image. Process context, sleeps. Returns the cow or an ERR_PTR (-ENOMEM,
 * -ENODEV, -EFBIG, -EINVAL for an empty device).
 */
struct bdsnap_cow *bdsnap_cow_create(struct bdsnap_snapshot *snap, dev_t dev,
				     const struct bdfilter *flt);

void bdsnap_cow_get(struct bdsnap_cow *cow);
/* Drop a reference; the last one frees chunks and closes the device. */
void bdsnap_cow_put(struct bdsnap_cow *cow);

/*
 * The read side of a published cow (SRCU: the hook may sleep under it) and
 * the dereference of a slot inside it. Any context.
 */
int bdsnap_cow_read_lock(void);
void bdsnap_cow_read_unlock(int idx);
struct bdsnap_cow *bdsnap_cow_deref(struct bdsnap_cow __rcu **slot);

/*
 * The tracker's hook, for a data-changing @bio of which @nr_sectors at
 * @sector (relative to the device) land on @cow's device, after the CBT
 * was marked, inside bdsnap_cow_read_lock(). A first write to a chunk is
 * held until the chunk is copied (BDFILTER_DONE), later ones pass. Sleeps
 * only for bios without REQ_NOWAIT (GFP_NOIO); a REQ_NOWAIT bio is held
 * all the same if that needs no waiting, else ends with BLK_STS_AGAIN.
 * Never fails a bio otherwise: on an internal error it corrupts the
 * snapshot (before letting the write pass) and passes.
 */
enum bdfilter_result bdsnap_cow_submit_bio(struct bdsnap_cow *cow,
					   struct bio *bio, sector_t sector,
					   unsigned int nr_sectors);

/*
 * Whether @bio is a discard that @cow does not pass to the device (see the
 * UAPI header's snapshot states), and completing it so. Any context.
 */
bool bdsnap_cow_drops(struct bdsnap_cow *cow, struct bio *bio);
void bdsnap_cow_drop(struct bdsnap_cow *cow, struct bio *bio);

/*
 * Start COW for *@slot's device: every write from now on goes through
 * @cow. Any context (the switch runs it under a spinlock). Takes a
 * reference for the slot.
 */
void bdsnap_cow_publish(struct bdsnap_cow __rcu **slot, struct bdsnap_cow *cow);

/*
 * Open the copy gate: the copies started since the switch are queued, and
 * new ones from now on. Process context.
 */
void bdsnap_cow_open_gate(struct bdsnap_cow *cow);

/*
 * Stop COW: clear *@slot and wait until no hook uses the old cow. Returns
 * the slot's reference (the cow), or NULL. Process context, sleeps.
 */
struct bdsnap_cow *bdsnap_cow_unpublish(struct bdsnap_cow __rcu **slot);

/*
 * Mark the cow failed with @err (positive errno) and pass every held write
 * to the original device. Idempotent; the first error is kept. Process
 * context, sleeps (submits bios). Does not corrupt the snapshot: that is
 * bdsnap_snapshot_corrupt(), which calls this for every device.
 */
void bdsnap_cow_fail(struct bdsnap_cow *cow, int err);

/* Wait until no copy work of @cow is queued or running. Sleeps. */
void bdsnap_cow_drain(struct bdsnap_cow *cow);

/*
 * For the image: where chunk @index's snapshot data is. Returns
 * BDSNAP_CHUNK_COPIED (with *@slot filled), 0 (still on the original
 * device, or being copied), or -EIO (failed). Never sleeps.
 */
int bdsnap_cow_lookup(struct bdsnap_cow *cow, unsigned long index,
		      struct bdsnap_diff_slot *slot);

/*
 * For image writes: make sure chunk @index is copied, starting the copy if
 * needed, and return its slot. Process context, sleeps. Returns 0 or -EIO.
 */
int bdsnap_cow_copy_sync(struct bdsnap_cow *cow, unsigned long index,
			 struct bdsnap_diff_slot *slot);

/*
 * Read the original device at @sector into @bvec (@nr entries, each within
 * one page; their total a multiple of the logical block size), past every
 * filter. For the copy work and the image. Process context, sleeps.
 * Returns 0 or a negative errno.
 */
int bdsnap_cow_read_orig(struct bdsnap_cow *cow, sector_t sector,
			 const struct bio_vec *bvec, unsigned int nr);

/* Bytes in chunk @index (the last chunk may be short). */
u32 bdsnap_cow_chunk_bytes(const struct bdsnap_cow *cow, unsigned long index);

#endif /* BDSNAP_COW_H */
