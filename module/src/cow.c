// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write.
 *
 * The write path (bdsnap_cow_submit_bio(), in the writer's context):
 *  1. Without a lock, look every chunk of the bio up. All copied (or the
 *     cow failed): pass the bio. That is every write after the first to a
 *     chunk, at the cost of one xarray walk.
 *  2. Otherwise the bio is held on the first chunk that is not copied,
 *     whose copy work is started if it was not yet, and the hook returns
 *     BDFILTER_DONE. The writer never waits for the copy itself: a writer
 *     inside a stacked driver's ->submit_bio() has current->bio_list set,
 *     so the copy's own bios would not even be issued until it returned.
 *     A REQ_NOWAIT bio (io_uring's first try of every write, RWF_NOWAIT) is
 *     held the same way when that needs no waiting (allocations without
 *     reclaim, from the reserves): failing it with BLK_STS_AGAIN before any
 *     copy started would make an io_uring IOPOLL submitter, whose retries
 *     are NOWAIT again, spin for ever. Only when nothing can be had without
 *     waiting does it get BLK_STS_AGAIN. A held bio loses REQ_NOWAIT and
 *     its polling flag (it is resubmitted later, from a worker; see
 *     bdsnap_bio_make_blocking()).
 *  3. The copy work reads the chunk from the original device past the
 *     filters, writes it to a difference storage slot, marks the chunk
 *     copied, and runs each held bio through step 1-2 again: a bio spanning
 *     several chunks moves to the next one not copied, and goes on through
 *     the rest of its filter chain when none is left. One chunk at a time
 *     per bio: no per-bio counters.
 *  Batches: the chunks of a bio that step 2 creates one after the other
 *  (up to BDSNAP_COW_BATCH_BYTES) are copied by one work, with one read of
 *  the original and one write per run of adjacent slots. Chunk by chunk, a
 *  1 MiB write cost 32 requests of 64 KiB, and the request count, not the
 *  bytes, bounded sequential first writes (profiled: the CPUs idle 42% of
 *  the time, waiting on those requests; dm-snapshot's merged ones made it
 *  three times faster).
 *  The gate: from the switch until the take has waited for the writes that
 *  were in flight before it, copies are started but not queued (a copy
 *  could read a chunk before such a write lands); bdsnap_cow_open_gate()
 *  queues them.
 *
 * Memory: the hook allocates held-bio entries from a mempool (they come
 * back when copies, which never wait for a writer, complete), chunks from
 * their cache and xarray nodes (GFP_NOIO, or GFP_NOWAIT for REQ_NOWAIT
 * bios). Chunks live until the cow is freed, so no reserve can guarantee
 * them: failing to allocate one, or the chunk maps reaching
 * chunk_memory_max_mib (EDQUOT), corrupts the snapshot, and the cow is
 * marked failed *before* the write passes, so that no image read can show
 * the write. Their memory is accounted per cow and module-wide. The copy
 * itself allocates nothing that could wait for reclaim: its buffer comes
 * from buffer.c (with a one-batch reserve), its bios from a private bioset.
 *
 * Locking: cow->chunks' xa_lock (plain spinlock, process context only)
 * guards chunk states, held lists and cow->failed; cow->gate_lock (plain
 * spinlock, taken under the xa_lock by bdsnap_cow_copy_sync()) guards the
 * gate and its list. Neither is taken under another bdsnap lock; nothing
 * else is taken under them. __xa_insert() drops and retakes the xa_lock to
 * allocate. bdsnap_cow_srcu protects the hook's use of a published cow
 * (SRCU: the hook may sleep).
 *
 * Memory ordering: a chunk's slot is written before smp_store_release() of
 * COPIED; lockless readers use smp_load_acquire(), so a reader that sees
 * COPIED sees the slot. Held writes are submitted only after COPIED is
 * stored, which the image's optimistic reads rely on (see image.c).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/err.h>
#include <linux/error-injection.h>
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/srcu.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "buffer.h"
#include "compat.h"
#include "cow.h"
#include "snapshot.h"

/* Pages per read bio of a copy: BIO_MAX_VECS (BIO_MAX_PAGES on 5.10). */
#define BDSNAP_COW_BIO_PAGES	256U
/* Most one copy work copies: one read bio's worth, and 16 chunks. */
#define BDSNAP_COW_BATCH_BYTES	(BDSNAP_COW_BIO_PAGES * PAGE_SIZE)
#define BDSNAP_COW_BATCH_MAX	16U
/* Reserved elements: enough for every CPU's writer to make progress. */
#define BDSNAP_COW_POOL_MIN	64
/* Bios kept for the reads of the original (copies and images). */
#define BDSNAP_COW_BIO_POOL	16
/* Chunks freed between two reschedules when a cow goes. */
#define BDSNAP_COW_FREE_BATCH	1024

static struct srcu_struct bdsnap_cow_srcu;
static struct workqueue_struct *bdsnap_cow_wq;
static struct kmem_cache *bdsnap_chunk_cache;
static mempool_t *bdsnap_held_pool;
static struct bio_set bdsnap_cow_bioset;
/* Cows alive: the last one to go empties the copy-buffer cache. */
static atomic_t bdsnap_cow_live = ATOMIC_INIT(0);
/* Bytes of all chunk maps, against bdsnap_chunk_memory_max_mib. */
static atomic64_t bdsnap_chunk_memory = ATOMIC64_INIT(0);

/* What bdsnap_cow_hold() did with a bio. */
enum bdsnap_hold {
	BDSNAP_HOLD_PASS,	/* nothing to wait for (or the cow failed) */
	BDSNAP_HOLD_HELD,	/* held on a chunk being copied */
	BDSNAP_HOLD_AGAIN,	/* REQ_NOWAIT and holding it would wait */
};

/* An eighth of RAM, in MiB: the cap when chunk_memory_max_mib is 0. */
static unsigned int bdsnap_chunk_memory_default_mib(void)
{
	return max_t(unsigned long, 1, totalram_pages() >>
				       (20 - PAGE_SHIFT + 3));
}

int bdsnap_cow_check_params(void)
{
	if (bdsnap_chunk_min_shift < PAGE_SHIFT ||
	    bdsnap_chunk_max_shift < bdsnap_chunk_min_shift ||
	    bdsnap_chunk_max_shift > 30) {
		pr_err("chunk_min_shift=%u, chunk_max_shift=%u: need %u <= min <= max <= 30\n",
		       bdsnap_chunk_min_shift, bdsnap_chunk_max_shift,
		       PAGE_SHIFT);
		return -EINVAL;
	}
	if (!bdsnap_chunk_max_count) {
		pr_err("chunk_max_count must not be 0\n");
		return -EINVAL;
	}
	/* Shown in sysfs as the value in use. */
	if (!bdsnap_chunk_memory_max_mib)
		bdsnap_chunk_memory_max_mib = bdsnap_chunk_memory_default_mib();
	return 0;
}

u32 bdsnap_cow_chunk_bytes(const struct bdsnap_cow *cow, unsigned long index)
{
	sector_t start = (sector_t)index << (cow->chunk_shift - SECTOR_SHIFT);
	sector_t left = cow->nr_sectors - start;
	u32 chunk = 1U << cow->chunk_shift;

	return min_t(u64, chunk, (u64)left << SECTOR_SHIFT);
}

/*
 * Chunks [*first, *last] covered by @nr sectors at @sector, clipped to the
 * device. Returns false if none is (a write past the end: not ours to hold).
 */
static bool bdsnap_cow_range(struct bdsnap_cow *cow, sector_t sector,
			     unsigned int nr, unsigned long *first,
			     unsigned long *last)
{
	unsigned int s = cow->chunk_shift - SECTOR_SHIFT;
	sector_t end;

	if (!nr || sector >= cow->nr_sectors)
		return false;
	end = min_t(sector_t, sector + nr, cow->nr_sectors);
	*first = sector >> s;
	*last = (end - 1) >> s;
	return true;
}

static int bdsnap_chunk_state(struct bdsnap_chunk *chunk)
{
	/* Pairs with the copy work's release: COPIED implies the slot. */
	return smp_load_acquire(&chunk->state);
}

static void bdsnap_cow_copy_work(struct work_struct *work);

/*
 * Mark @cow failed with @err right now, so that no image read can return
 * data a write about to pass brings; the snapshot's corruption (images
 * killed, held writes released, the event) follows from a work. Any
 * context; called without the xarray lock.
 */
static void bdsnap_cow_fail_first(struct bdsnap_cow *cow, int err)
{
	xa_lock(&cow->chunks);
	if (!cow->failed) {
		cow->error = err;
		WRITE_ONCE(cow->failed, true);
	}
	xa_unlock(&cow->chunks);
	bdsnap_snapshot_corrupt_async(cow->snap, cow->dev, err);
}

/*
 * Charge the memory of a new chunk at @index to the cow and the module:
 * its record, and an index node when it is the first entry of its leaf
 * (plus a share of the nodes above). Under the xarray lock. Returns 0 and
 * the bytes charged in *@bytes, or -EDQUOT past chunk_memory_max_mib.
 */
static int bdsnap_cow_charge(struct bdsnap_cow *cow, unsigned long index,
			     u64 *bytes)
{
	unsigned long first = index & ~(XA_CHUNK_SIZE - 1UL);
	unsigned int mib = READ_ONCE(bdsnap_chunk_memory_max_mib);
	u64 cost = kmem_cache_size(bdsnap_chunk_cache);
	u64 cap;

	cap = (u64)(mib ? mib : bdsnap_chunk_memory_default_mib()) << 20;

	lockdep_assert_held(&cow->chunks.xa_lock);
	if (!xa_find(&cow->chunks, &first, first + XA_CHUNK_SIZE - 1,
		     XA_PRESENT))
		cost += sizeof(struct xa_node) +
			sizeof(struct xa_node) / (XA_CHUNK_SIZE - 1);
	if (atomic64_add_return(cost, &bdsnap_chunk_memory) > cap) {
		atomic64_sub(cost, &bdsnap_chunk_memory);
		return -EDQUOT;
	}
	atomic64_add(cost, &cow->chunk_memory);
	*bytes = cost;
	return 0;
}

static void bdsnap_cow_uncharge(struct bdsnap_cow *cow, u64 bytes)
{
	atomic64_sub(bytes, &cow->chunk_memory);
	atomic64_sub(bytes, &bdsnap_chunk_memory);
}

/*
 * Insert @chunk at @index of the chunk table. Called and returns with the
 * xa_lock held; may drop and retake it to allocate xarray nodes (with
 * @gfp). Out of line and open to fault injection (fail_function), which
 * makes it fail as a node allocation would: -ENOMEM.
 */
static noinline int bdsnap_cow_insert_chunk(struct bdsnap_cow *cow,
					    unsigned long index,
					    struct bdsnap_chunk *chunk,
					    gfp_t gfp)
	__must_hold(&cow->chunks.xa_lock)
{
	return __xa_insert(&cow->chunks, index, chunk, gfp);
}
ALLOW_ERROR_INJECTION(bdsnap_cow_insert_chunk, ERRNO);

/*
 * The chunk @index with the xarray lock held, created if absent: then
 * *@created is set and the chunk is COPYING, its copy not queued (the
 * caller queues it, alone or in a batch, with bdsnap_cow_start_batch()).
 * Returns NULL with the lock released if the cow failed (*@err 0), if
 * @gfp may not wait and the memory could not be had (*@err -EAGAIN), or if
 * the chunk could not be made otherwise (*@err -ENOMEM or -EDQUOT: then
 * the snapshot is corrupted, the cow failed first). Sleeps only if @gfp
 * allows; called without the lock.
 */
static struct bdsnap_chunk *bdsnap_cow_get_chunk_locked(struct bdsnap_cow *cow,
							unsigned long index,
							gfp_t gfp,
							bool *created, int *err)
{
	struct bdsnap_chunk *chunk, *new = NULL;
	u64 charged = 0;
	int ret = 0;

	*created = false;
	xa_lock(&cow->chunks);
	for (;;) {
		if (cow->failed)
			goto out_unlock;
		chunk = xa_load(&cow->chunks, index);
		if (chunk)
			break;
		if (!new) {
			xa_unlock(&cow->chunks);
			new = kmem_cache_zalloc(bdsnap_chunk_cache,
						gfp | __GFP_NOWARN);
			if (!new) {
				ret = -ENOMEM;
				goto out_fail;
			}
			new->cow = cow;
			new->index = index;
			new->state = BDSNAP_CHUNK_COPYING;
			new->held_tail = &new->held_head;
			INIT_WORK(&new->work, bdsnap_cow_copy_work);
			xa_lock(&cow->chunks);
			continue;
		}
		if (!charged) {
			ret = bdsnap_cow_charge(cow, index, &charged);
			if (ret) {
				xa_unlock(&cow->chunks);
				goto out_fail;
			}
		}
		ret = bdsnap_cow_insert_chunk(cow, index, new, gfp);
		if (ret == -EBUSY)
			continue;	/* inserted meanwhile: use that one */
		if (ret) {
			xa_unlock(&cow->chunks);
			goto out_fail;
		}
		chunk = new;
		new = NULL;
		charged = 0;
		*created = true;
		break;
	}
	if (charged)
		bdsnap_cow_uncharge(cow, charged);
	if (new)
		kmem_cache_free(bdsnap_chunk_cache, new);
	*err = 0;
	return chunk;

out_fail:
	if (charged)
		bdsnap_cow_uncharge(cow, charged);
	if (new)
		kmem_cache_free(bdsnap_chunk_cache, new);
	if (ret == -ENOMEM && !gfpflags_allow_blocking(gfp)) {
		*err = -EAGAIN;		/* a retry that may wait will do */
		return NULL;
	}
	if (ret == -EDQUOT)
		pr_err("snapshot of %u:%u: the chunk maps reached chunk_memory_max_mib=%u: snapshot lost, writes pass\n",
		       MAJOR(cow->dev), MINOR(cow->dev),
		       READ_ONCE(bdsnap_chunk_memory_max_mib));
	/* Writes pass from now on; the snapshot is lost, the data is not. */
	bdsnap_cow_fail_first(cow, -ret);
	*err = ret;
	return NULL;

out_unlock:
	xa_unlock(&cow->chunks);
	if (new)
		kmem_cache_free(bdsnap_chunk_cache, new);
	*err = 0;
	return NULL;
}

/*
 * Queue the copy of @nr chunks created by the caller from @first on, in
 * state COPYING and not queued yet, or keep them for the gate to open.
 * Does nothing for @nr 0. Process context; may be called under the xarray
 * lock.
 */
static void bdsnap_cow_start_batch(struct bdsnap_cow *cow,
				   struct bdsnap_chunk *first, unsigned int nr)
{
	if (!nr)
		return;
	first->batch = nr;
	atomic_add(nr, &cow->pending);
	bdsnap_cow_get(cow);
	spin_lock(&cow->gate_lock);
	if (!cow->gate_open) {
		first->gate_next = cow->gated;
		cow->gated = first;
		spin_unlock(&cow->gate_lock);
		return;
	}
	spin_unlock(&cow->gate_lock);
	queue_work(bdsnap_cow_wq, &first->work);
}

void bdsnap_cow_open_gate(struct bdsnap_cow *cow)
{
	struct bdsnap_chunk *chunk, *next;

	spin_lock(&cow->gate_lock);
	cow->gate_open = true;
	chunk = cow->gated;
	cow->gated = NULL;
	spin_unlock(&cow->gate_lock);
	for (; chunk; chunk = next) {
		next = chunk->gate_next;
		queue_work(bdsnap_cow_wq, &chunk->work);
	}
}

/* Chunks one copy work may take on. */
static unsigned int bdsnap_cow_batch_max(struct bdsnap_cow *cow)
{
	return clamp_t(unsigned int, BDSNAP_COW_BATCH_BYTES >> cow->chunk_shift,
		       1, BDSNAP_COW_BATCH_MAX);
}

/*
 * Start the copies of the chunks @from..@last that have none yet, in
 * batches of adjacent chunks created here. @head, if not NULL, is a chunk
 * the caller created just before @from and did not queue: the first batch
 * begins with it. A bio that covers several chunks is held on one at a
 * time: without this, its chunks would be copied one after the other. A
 * chunk that cannot be made without waiting when @gfp may not wait is left
 * for the bio's later pass in the copy work. Sleeps only if @gfp allows.
 */
static void bdsnap_cow_start_range(struct bdsnap_cow *cow,
				   struct bdsnap_chunk *head,
				   unsigned long from, unsigned long last,
				   gfp_t gfp)
{
	unsigned int max = bdsnap_cow_batch_max(cow);
	unsigned int nr = head ? 1 : 0;
	struct bdsnap_chunk *chunk = NULL;
	unsigned long i;
	bool created;
	int err;

	for (i = from; i <= last; i++) {
		if (xa_load(&cow->chunks, i)) {
			created = false;
		} else {
			chunk = bdsnap_cow_get_chunk_locked(cow, i, gfp,
							    &created, &err);
			if (!chunk)
				break;	/* failed, or no memory now */
			xa_unlock(&cow->chunks);
		}
		if (created && nr && nr < max) {
			nr++;
			continue;
		}
		/* Not adjacent to the batch, or a full one: queue it. */
		bdsnap_cow_start_batch(cow, head, nr);
		head = created ? chunk : NULL;
		nr = created ? 1 : 0;
	}
	bdsnap_cow_start_batch(cow, head, nr);
}

/*
 * Hold @held on the first chunk of its bio that is not copied, and start
 * the copies of its later chunks. Sleeps only if @gfp allows.
 */
static enum bdsnap_hold bdsnap_cow_hold(struct bdsnap_cow *cow,
					struct bdsnap_held_bio *held,
					gfp_t gfp)
{
	unsigned long first, last, i;
	struct bdsnap_chunk *chunk;
	bool created;
	int err;

	if (!bdsnap_cow_range(cow, held->sector, held->nr_sectors, &first,
			      &last))
		return BDSNAP_HOLD_PASS;

	for (i = first; i <= last; i++) {
		chunk = xa_load(&cow->chunks, i);
		if (chunk && bdsnap_chunk_state(chunk) != BDSNAP_CHUNK_COPYING)
			continue;

		chunk = bdsnap_cow_get_chunk_locked(cow, i, gfp, &created,
						    &err);
		if (!chunk)	/* failed: pass everything; or wait, try again */
			return err == -EAGAIN ? BDSNAP_HOLD_AGAIN :
						BDSNAP_HOLD_PASS;
		if (chunk->state != BDSNAP_CHUNK_COPYING) {
			xa_unlock(&cow->chunks);
			continue;
		}
		/* From here on the bio is resubmitted by a worker. */
		bdsnap_bio_make_blocking(held->bio);
		held->next = NULL;
		*chunk->held_tail = held;
		chunk->held_tail = &held->next;
		xa_unlock(&cow->chunks);
		/*
		 * @held may be released from here on: use locals only. A
		 * chunk created here is queued by start_range(), with the
		 * chunks after it; until then its copy cannot complete.
		 */
		bdsnap_cow_start_range(cow, created ? chunk : NULL, i + 1,
				       last, gfp);
		return BDSNAP_HOLD_HELD;
	}
	return BDSNAP_HOLD_PASS;
}

/* Whether every chunk of the range is copied. Lockless; never sleeps. */
static bool bdsnap_cow_all_copied(struct bdsnap_cow *cow, unsigned long first,
				  unsigned long last)
{
	struct bdsnap_chunk *chunk;
	unsigned long i;

	for (i = first; i <= last; i++) {
		chunk = xa_load(&cow->chunks, i);
		if (!chunk || bdsnap_chunk_state(chunk) == BDSNAP_CHUNK_COPYING)
			return false;
	}
	return true;
}

enum bdfilter_result bdsnap_cow_submit_bio(struct bdsnap_cow *cow,
					   struct bio *bio, sector_t sector,
					   unsigned int nr_sectors)
{
	bool nowait = bio->bi_opf & REQ_NOWAIT;
	gfp_t gfp = nowait ? GFP_NOWAIT : GFP_NOIO;
	struct bdsnap_held_bio *held;
	unsigned long first, last;
	enum bdsnap_hold hold;

	if (READ_ONCE(cow->failed))
		return BDFILTER_PASS;
	if (!bdsnap_cow_range(cow, sector, nr_sectors, &first, &last))
		return BDFILTER_PASS;
	if (bdsnap_cow_all_copied(cow, first, last))
		return BDFILTER_PASS;

	/* Never fails unless it may not wait: entries come back with copies. */
	held = mempool_alloc(bdsnap_held_pool, gfp | __GFP_NOWARN);
	if (!held) {
		bio_wouldblock_error(bio);
		return BDFILTER_DONE;
	}
	held->bio = bio;
	held->sector = sector;
	held->nr_sectors = nr_sectors;
	hold = bdsnap_cow_hold(cow, held, gfp);
	if (hold == BDSNAP_HOLD_HELD)
		return BDFILTER_DONE;
	mempool_free(held, bdsnap_held_pool);
	if (hold == BDSNAP_HOLD_PASS)
		return BDFILTER_PASS;
	/* Only a REQ_NOWAIT bio gets here: its submitter retries, waiting. */
	bio_wouldblock_error(bio);
	return BDFILTER_DONE;
}

bool bdsnap_cow_drops(struct bdsnap_cow *cow, struct bio *bio)
{
	return bio_op(bio) == REQ_OP_DISCARD && !READ_ONCE(cow->failed);
}

void bdsnap_cow_drop(struct bdsnap_cow *cow, struct bio *bio)
{
	atomic64_inc(&cow->discards_dropped);
	bio_endio(bio);
}

int bdsnap_cow_read_lock(void)
{
	return srcu_read_lock(&bdsnap_cow_srcu);
}

void bdsnap_cow_read_unlock(int idx)
{
	srcu_read_unlock(&bdsnap_cow_srcu, idx);
}

struct bdsnap_cow *bdsnap_cow_deref(struct bdsnap_cow __rcu **slot)
{
	return srcu_dereference(*slot, &bdsnap_cow_srcu);
}

/*
 * Submit, or hold again, every bio of a list taken off a chunk. Process
 * context; sleeps.
 */
static void bdsnap_cow_release_held(struct bdsnap_cow *cow,
				    struct bdsnap_held_bio *held)
{
	struct bdsnap_held_bio *next;

	for (; held; held = next) {
		next = held->next;
		if (bdsnap_cow_hold(cow, held, GFP_NOIO) == BDSNAP_HOLD_HELD)
			continue;
		bdfilter_resubmit_bio(cow->flt, held->bio);
		mempool_free(held, bdsnap_held_pool);
	}
}

/* Completion of a copy's read of the original device. */
struct bdsnap_cow_read {
	struct completion done;
	blk_status_t status;
};

static void bdsnap_cow_read_end_io(struct bio *bio)
{
	struct bdsnap_cow_read *rd = bio->bi_private;

	rd->status = bio->bi_status;
	complete(&rd->done);
}

int bdsnap_cow_read_orig(struct bdsnap_cow *cow, sector_t sector,
			 const struct bio_vec *bvec, unsigned int nr)
{
	unsigned int lbs = bdev_logical_block_size(cow->orig.bdev);
	/* The next byte to read into: @off bytes into bvec[@idx]. */
	unsigned int idx = 0, off = 0;
	struct bdsnap_cow_read rd;
	struct bio *bio;

	while (idx < nr) {
		unsigned int segs = 0, i;
		u32 bytes = 0, left;

		/* Up to BDSNAP_COW_BIO_PAGES segments from (idx, off)... */
		for (i = idx; i < nr && segs < BDSNAP_COW_BIO_PAGES; i++, segs++)
			bytes += bvec[i].bv_len - (i == idx ? off : 0);
		/*
		 * ...ending on a logical block: segments of an image bio need
		 * not be whole blocks (a user buffer aligned only for DMA), so
		 * the cut may fall inside one, which the next bio continues.
		 */
		if (bytes < lbs)
			return -EIO;
		bytes -= bytes & (lbs - 1);

		/* A private bioset: held writes may hold every fs_bio_set bio. */
		bio = bdsnap_bio_alloc_bioset(cow->orig.bdev, segs,
					      REQ_OP_READ | REQ_SYNC, GFP_NOIO,
					      &bdsnap_cow_bioset);
		bio->bi_iter.bi_sector = sector;
		for (left = bytes; left; ) {
			const struct bio_vec *bv = &bvec[idx];
			u32 len = min(bv->bv_len - off, left);

			if (bio_add_page(bio, bv->bv_page, len,
					 bv->bv_offset + off) != len) {
				bio_put(bio);
				return -EIO;
			}
			left -= len;
			off += len;
			if (off == bv->bv_len) {
				idx++;
				off = 0;
			}
		}
		init_completion(&rd.done);
		bio->bi_private = &rd;
		bio->bi_end_io = bdsnap_cow_read_end_io;
		sector += bytes >> SECTOR_SHIFT;
		bdfilter_submit_bio(bio);
		wait_for_completion_io(&rd.done);
		bio_put(bio);
		if (rd.status)
			return blk_status_to_errno(rd.status);
	}
	return 0;
}

/*
 * Write the @len bytes at byte @off of a batch (@chunks[0..@nr), whose
 * data from @off on is in @bvec: whole pages, @off a multiple of the page
 * size) to their slots, one write per run of slots adjacent in the same
 * piece. Returns 0 or a negative errno.
 */
static int bdsnap_cow_write_range(struct bdsnap_cow *cow,
				  struct bdsnap_chunk **chunks, unsigned int nr,
				  u64 off, u64 len, const struct bio_vec *bvec)
{
	unsigned int shift = cow->chunk_shift;
	u64 pos = off, end = off + len;
	int ret;

	while (pos < end) {
		unsigned int i = pos >> shift, j;
		const struct bdsnap_diff_slot *slot = &chunks[i]->slot;
		u64 run_end, n;

		/* The run of adjacent slots from chunk i on. */
		for (j = i + 1; j < nr; j++) {
			const struct bdsnap_diff_slot *s = &chunks[j]->slot;

			if (s->piece != slot->piece ||
			    s->pos != slot->pos + ((loff_t)(j - i) << shift))
				break;
		}
		run_end = min_t(u64, end, (u64)j << shift);
		n = run_end - pos;
		ret = bdsnap_diff_storage_write_slot(slot, pos & ((1ULL << shift) - 1),
						     bvec + ((pos - off) >> PAGE_SHIFT),
						     DIV_ROUND_UP(n, PAGE_SIZE), n);
		if (ret)
			return ret;
		pos = run_end;
	}
	return 0;
}

/*
 * Copy the @nr adjacent chunks @chunks[] to new slots: the slots first,
 * then one read of the original and the writes, for the whole batch at
 * once, or piece by piece on the reserve buffer (the chunks stay COPYING
 * throughout, so their data cannot change between pieces). Runs in the
 * copy work, under bdsnap_diff_storage_io_begin(). Returns 0 or a negative
 * errno.
 */
static int bdsnap_cow_copy_batch(struct bdsnap_cow *cow,
				 struct bdsnap_chunk **chunks, unsigned int nr)
{
	unsigned long first = chunks[0]->index;
	sector_t start = (sector_t)first << (cow->chunk_shift - SECTOR_SHIFT);
	struct bdsnap_buffer buf;
	u64 bytes = 0, off, n;
	unsigned int i;
	int ret = 0;

	for (i = 0; i < nr; i++)
		bytes += bdsnap_cow_chunk_bytes(cow, first + i);
	for (i = 0; !ret && i < nr; i++)
		ret = bdsnap_diff_storage_alloc_slot(cow->storage,
						     1U << cow->chunk_shift,
						     &chunks[i]->slot);
	if (ret)
		return ret;

	bdsnap_buffer_get(&buf, bytes);
	if (buf.reserve)
		atomic64_add(nr, &cow->reserve_copies);
	for (off = 0; !ret && off < bytes; off += n) {
		n = min_t(u64, bytes - off, buf.bytes);
		bdsnap_buffer_fit(&buf, n);
		ret = bdsnap_cow_read_orig(cow, start + (off >> SECTOR_SHIFT),
					   buf.bvec, buf.nr);
		if (!ret)
			ret = bdsnap_cow_write_range(cow, chunks, nr, off, n,
						     buf.bvec);
	}
	bdsnap_buffer_put(&buf);
	return ret;
}

/*
 * Publish a chunk's copy result. Returns the writes that were held on it,
 * for the caller to release.
 */
static struct bdsnap_held_bio *
bdsnap_cow_finish_chunk(struct bdsnap_cow *cow, struct bdsnap_chunk *chunk,
			int ret)
{
	struct bdsnap_held_bio *held;

	xa_lock(&cow->chunks);
	/* The slot is written: publish it with the state (acquire: lookup). */
	smp_store_release(&chunk->state, ret ? BDSNAP_CHUNK_FAILED :
					       BDSNAP_CHUNK_COPIED);
	held = chunk->held_head;
	chunk->held_head = NULL;
	chunk->held_tail = &chunk->held_head;
	xa_unlock(&cow->chunks);
	return held;
}

static void bdsnap_cow_copy_work(struct work_struct *work)
{
	struct bdsnap_chunk *head = container_of(work, struct bdsnap_chunk,
						 work);
	struct bdsnap_held_bio *held[BDSNAP_COW_BATCH_MAX];
	struct bdsnap_chunk *chunks[BDSNAP_COW_BATCH_MAX];
	struct bdsnap_cow *cow = head->cow;
	bool already_failed = READ_ONCE(cow->failed);
	unsigned int nr = head->batch;
	unsigned int i, io;
	int ret;

	/*
	 * The batch's chunks were inserted before it was queued and live as
	 * long as the cow, which the work holds a reference to.
	 */
	for (i = 0; i < nr; i++)
		chunks[i] = xa_load(&cow->chunks, head->index + i);

	io = bdsnap_diff_storage_io_begin();
	/* A failed cow passes every write: no point in copying. */
	ret = already_failed ? -EIO : bdsnap_cow_copy_batch(cow, chunks, nr);
	for (i = 0; i < nr; i++)
		held[i] = bdsnap_cow_finish_chunk(cow, chunks[i], ret);
	wake_up_all(&cow->copy_wait);

	if (ret && !already_failed) {
		pr_err("snapshot of %u:%u: cannot copy chunks %lu-%lu: %d\n",
		       MAJOR(cow->dev), MINOR(cow->dev), head->index,
		       head->index + nr - 1, ret);
		/* Fails every cow of the snapshot, this one included. */
		bdsnap_snapshot_corrupt(cow->snap, cow->dev, -ret);
	} else if (!ret) {
		atomic64_add(nr, &cow->chunks_copied);
	}
	for (i = 0; i < nr; i++)
		bdsnap_cow_release_held(cow, held[i]);
	bdsnap_diff_storage_io_end(io);

	if (atomic_sub_and_test(nr, &cow->pending))
		wake_up_all(&cow->idle_wait);
	bdsnap_cow_put(cow);
}

void bdsnap_cow_fail(struct bdsnap_cow *cow, int err)
{
	struct bdsnap_held_bio *held;
	struct bdsnap_chunk *chunk;
	unsigned long index;

	xa_lock(&cow->chunks);
	if (!cow->failed) {
		cow->error = err;
		WRITE_ONCE(cow->failed, true);
	}
	xa_unlock(&cow->chunks);
	/* Copies kept for the gate run now, only to release their writes. */
	bdsnap_cow_open_gate(cow);

	/* No bio is held after failed was set: release the ones that are. */
	xa_for_each(&cow->chunks, index, chunk) {
		xa_lock(&cow->chunks);
		held = chunk->held_head;
		chunk->held_head = NULL;
		chunk->held_tail = &chunk->held_head;
		xa_unlock(&cow->chunks);
		bdsnap_cow_release_held(cow, held);
		cond_resched();
	}
	wake_up_all(&cow->copy_wait);
}

void bdsnap_cow_drain(struct bdsnap_cow *cow)
{
	wait_event(cow->idle_wait, !atomic_read(&cow->pending));
}

int bdsnap_cow_lookup(struct bdsnap_cow *cow, unsigned long index,
		      struct bdsnap_diff_slot *slot)
{
	struct bdsnap_chunk *chunk = xa_load(&cow->chunks, index);
	int state;

	if (READ_ONCE(cow->failed))
		return -EIO;
	if (!chunk)
		return 0;
	state = bdsnap_chunk_state(chunk);
	if (state == BDSNAP_CHUNK_FAILED)
		return -EIO;
	if (state == BDSNAP_CHUNK_COPIED) {
		*slot = chunk->slot;
		return BDSNAP_CHUNK_COPIED;
	}
	return 0;
}

int bdsnap_cow_copy_sync(struct bdsnap_cow *cow, unsigned long index,
			 struct bdsnap_diff_slot *slot)
{
	struct bdsnap_chunk *chunk;
	bool created;
	int state, err;

	chunk = bdsnap_cow_get_chunk_locked(cow, index, GFP_NOIO, &created,
					    &err);
	if (!chunk)
		return -EIO;
	/*
	 * Queued under the lock that checked cow->failed: a fail() after
	 * that finds the copy counted in pending, so drain() waits for it.
	 */
	if (created)
		bdsnap_cow_start_batch(cow, chunk, 1);
	xa_unlock(&cow->chunks);

	/* Chunks are freed only with the cow, which the caller holds. */
	wait_event(cow->copy_wait,
		   bdsnap_chunk_state(chunk) != BDSNAP_CHUNK_COPYING ||
		   READ_ONCE(cow->failed));
	state = bdsnap_chunk_state(chunk);
	if (state != BDSNAP_CHUNK_COPIED)
		return -EIO;
	*slot = chunk->slot;
	return 0;
}

void bdsnap_cow_publish(struct bdsnap_cow __rcu **slot, struct bdsnap_cow *cow)
{
	bdsnap_cow_get(cow);
	rcu_assign_pointer(*slot, cow);
}

struct bdsnap_cow *bdsnap_cow_unpublish(struct bdsnap_cow __rcu **slot)
{
	/* The publisher's caller serialises publish and unpublish. */
	struct bdsnap_cow *cow = rcu_dereference_protected(*slot, true);

	if (!cow)
		return NULL;
	RCU_INIT_POINTER(*slot, NULL);
	synchronize_srcu(&bdsnap_cow_srcu);
	return cow;
}

/* Pick the chunk size of a device of @nr_sectors. */
static int bdsnap_cow_chunk_shift(sector_t nr_sectors, unsigned int *shift,
				  unsigned long *count)
{
	u64 bytes = (u64)nr_sectors << SECTOR_SHIFT;
	unsigned int s = bdsnap_chunk_min_shift;
	u64 n = DIV_ROUND_UP_ULL(bytes, 1ULL << s);

	while (n > bdsnap_chunk_max_count && s < bdsnap_chunk_max_shift) {
		s++;
		n = DIV_ROUND_UP_ULL(bytes, 1ULL << s);
	}
	if (n > bdsnap_chunk_max_count || n > ULONG_MAX)
		return -EFBIG;
	*shift = s;
	*count = n;
	return 0;
}

struct bdsnap_cow *bdsnap_cow_create(struct bdsnap_snapshot *snap, dev_t dev,
				     const struct bdfilter *flt)
{
	struct bdsnap_cow *cow;
	int ret;

	cow = kzalloc(sizeof(*cow), GFP_KERNEL);
	if (!cow)
		return ERR_PTR(-ENOMEM);
	kref_init(&cow->kref);
	cow->dev = dev;
	cow->flt = flt;
	ret = bdfilter_bdev_open(dev, &cow->orig);
	if (ret)
		goto err_free;
	/* The size now, not when tracking began: the device may have grown. */
	cow->nr_sectors = bdfilter_bdev_nr_sectors(cow->orig.bdev);
	ret = cow->nr_sectors ? 0 : -EINVAL;
	if (!ret)
		ret = bdsnap_cow_chunk_shift(cow->nr_sectors, &cow->chunk_shift,
					     &cow->chunk_count);
	if (ret) {
		if (ret == -EFBIG)
			pr_err("%u:%u: %llu sectors need more than chunk_max_count=%u chunks of at most 2^%u bytes\n",
			       MAJOR(dev), MINOR(dev),
			       (unsigned long long)cow->nr_sectors,
			       bdsnap_chunk_max_count, bdsnap_chunk_max_shift);
		goto err_close;
	}
	xa_init(&cow->chunks);
	atomic_set(&cow->pending, 0);
	init_waitqueue_head(&cow->idle_wait);
	init_waitqueue_head(&cow->copy_wait);
	spin_lock_init(&cow->gate_lock);
	atomic64_set(&cow->chunks_copied, 0);
	atomic64_set(&cow->reserve_copies, 0);
	atomic64_set(&cow->discards_dropped, 0);
	atomic64_set(&cow->chunk_memory, 0);
	bdsnap_snapshot_get(snap);
	cow->snap = snap;
	cow->storage = bdsnap_snapshot_storage(snap);
	atomic_inc(&bdsnap_cow_live);
	return cow;

err_close:
	bdfilter_bdev_close(&cow->orig);
err_free:
	kfree(cow);
	return ERR_PTR(ret);
}

void bdsnap_cow_get(struct bdsnap_cow *cow)
{
	kref_get(&cow->kref);
}

/* Process context, sleeps: a map may hold millions of chunks. */
static void bdsnap_cow_release(struct kref *kref)
{
	struct bdsnap_cow *cow = container_of(kref, struct bdsnap_cow, kref);
	struct bdsnap_chunk *chunk;
	unsigned long index, freed = 0;

	might_sleep();
	/* No work holds a reference any more, so none is queued. */
	WARN_ON_ONCE(atomic_read(&cow->pending));
	xa_for_each(&cow->chunks, index, chunk) {
		/* Held bios were all released by fail() or by their copy. */
		WARN_ON_ONCE(chunk->held_head);
		kmem_cache_free(bdsnap_chunk_cache, chunk);
		if (!(++freed % BDSNAP_COW_FREE_BATCH))
			cond_resched();
	}
	xa_destroy(&cow->chunks);
	atomic64_sub(atomic64_read(&cow->chunk_memory), &bdsnap_chunk_memory);
	bdfilter_bdev_close(&cow->orig);
	bdsnap_snapshot_put(cow->snap);
	kfree(cow);
	/* A cow created meanwhile just allocates new pages again. */
	if (atomic_dec_and_test(&bdsnap_cow_live))
		bdsnap_buffer_trim();
}

void bdsnap_cow_put(struct bdsnap_cow *cow)
{
	kref_put(&cow->kref, bdsnap_cow_release);
}

int bdsnap_cow_init_module(void)
{
	int ret;

	ret = init_srcu_struct(&bdsnap_cow_srcu);
	if (ret)
		return ret;
	ret = bdsnap_buffer_init_module();
	if (ret)
		goto err_srcu;
	ret = bioset_init(&bdsnap_cow_bioset, BDSNAP_COW_BIO_POOL, 0,
			  BIOSET_NEED_BVECS);
	if (ret)
		goto err_buffer;
	ret = -ENOMEM;
	/* A rescuer: writers, and so writeback, wait for the copies. */
	bdsnap_cow_wq = alloc_workqueue("bdsnap-cow",
					WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!bdsnap_cow_wq)
		goto err_bioset;
	bdsnap_chunk_cache = KMEM_CACHE(bdsnap_chunk, 0);
	if (!bdsnap_chunk_cache)
		goto err_wq;
	bdsnap_held_pool =
		mempool_create_kmalloc_pool(BDSNAP_COW_POOL_MIN,
					    sizeof(struct bdsnap_held_bio));
	if (!bdsnap_held_pool)
		goto err_cache;
	return 0;

err_cache:
	kmem_cache_destroy(bdsnap_chunk_cache);
err_wq:
	destroy_workqueue(bdsnap_cow_wq);
err_bioset:
	bioset_exit(&bdsnap_cow_bioset);
err_buffer:
	bdsnap_buffer_exit_module();
err_srcu:
	cleanup_srcu_struct(&bdsnap_cow_srcu);
	return ret;
}

void bdsnap_cow_exit_module(void)
{
	mempool_destroy(bdsnap_held_pool);
	kmem_cache_destroy(bdsnap_chunk_cache);
	destroy_workqueue(bdsnap_cow_wq);
	bioset_exit(&bdsnap_cow_bioset);
	bdsnap_buffer_exit_module();
	cleanup_srcu_struct(&bdsnap_cow_srcu);
}
