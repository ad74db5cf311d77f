// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write.
 *
 * The write path (bdsnap_cow_filter_bio(), in the writer's context):
 *  1. Without a lock, look every chunk of the bio up. All copied (or the
 *     cow failed): pass the bio. That is every write after the first to a
 *     chunk, at the cost of one xarray walk.
 *  2. Otherwise a REQ_NOWAIT bio fails with BLK_STS_AGAIN (its submitter
 *     retries from a context that may block); any other bio is held on the
 *     first chunk that is not copied, whose copy work is started if it was
 *     not yet, and the hook returns BDFILTER_DONE. The writer never waits
 *     for the copy itself: a writer inside a stacked driver's ->submit_bio()
 *     has current->bio_list set, so the copy's own bios would not even be
 *     issued until it returned.
 *  3. The copy work reads the chunk from the original device past the
 *     filters, writes it to a difference storage slot, marks the chunk
 *     copied, and runs each held bio through step 1-2 again: a bio spanning
 *     several chunks moves to the next one not copied, and is submitted past
 *     the filters when none is left. One chunk at a time per bio: no per-bio
 *     counters.
 *  Batches: the chunks of a bio that step 2 creates one after the other
 *  (up to BDSNAP_COW_BATCH_BYTES) are copied by one work, with one read of
 *  the original and one write per run of adjacent slots. Chunk by chunk, a
 *  1 MiB write cost 32 requests of 64 KiB, and the request count, not the
 *  bytes, bounded sequential first writes (profiled: the CPUs idle 42% of
 *  the time, waiting on those requests; dm-snapshot's merged ones made it
 *  three times faster).
 * Sleeping: the hook sleeps only in GFP_NOIO allocations (the held-bio
 * mempool, the chunk cache, xarray nodes), for bios without REQ_NOWAIT,
 * which bdfilter.h allows (the block layer itself may sleep for such a bio
 * in blk_queue_enter()). Held-bio entries come back when copy works, which
 * never wait for a writer, complete, so that mempool guarantees progress.
 * Chunks live until the cow is freed; failing to allocate one corrupts the
 * snapshot and the write passes.
 *
 * Locking: cow->chunks' xa_lock (plain spinlock, process context only)
 * guards chunk states, held lists and cow->failed. It is taken under no
 * other bdsnap lock and nothing is taken under it; __xa_insert() drops and
 * retakes it to allocate. bdsnap_cow_srcu protects the hook's use of a
 * published cow (SRCU: the hook may sleep).
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
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
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

static struct srcu_struct bdsnap_cow_srcu;
static struct workqueue_struct *bdsnap_cow_wq;
static struct kmem_cache *bdsnap_chunk_cache;
static mempool_t *bdsnap_held_pool;
/* Cows alive: the last one to go empties the copy-buffer cache. */
static atomic_t bdsnap_cow_live = ATOMIC_INIT(0);

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

	if (sector >= cow->nr_sectors)
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
 * A new chunk in state COPYING whose work is ready to queue, or NULL.
 * Chunks live as long as the cow, so a mempool reserve would not guarantee
 * anything: running out of memory here corrupts the snapshot instead.
 * May sleep (GFP_NOIO).
 */
static struct bdsnap_chunk *bdsnap_chunk_alloc(struct bdsnap_cow *cow,
					       unsigned long index)
{
	struct bdsnap_chunk *chunk;

	chunk = kmem_cache_zalloc(bdsnap_chunk_cache, GFP_NOIO | __GFP_NOWARN);
	if (!chunk)
		return NULL;
	chunk->cow = cow;
	chunk->index = index;
	chunk->state = BDSNAP_CHUNK_COPYING;
	chunk->held_tail = &chunk->held_head;
	INIT_WORK(&chunk->work, bdsnap_cow_copy_work);
	return chunk;
}

/*
 * Queue the copy of @nr chunks created by the caller from @first on, in
 * state COPYING and not queued yet. Does nothing for @nr 0. Any context.
 */
static void bdsnap_cow_start_batch(struct bdsnap_cow *cow,
				   struct bdsnap_chunk *first, unsigned int nr)
{
	if (!nr)
		return;
	first->batch = nr;
	atomic_add(nr, &cow->pending);
	bdsnap_cow_get(cow);
	queue_work(bdsnap_cow_wq, &first->work);
}

/* Chunks one copy work may take on. */
static unsigned int bdsnap_cow_batch_max(struct bdsnap_cow *cow)
{
	return clamp_t(unsigned int, BDSNAP_COW_BATCH_BYTES >> cow->chunk_shift,
		       1, BDSNAP_COW_BATCH_MAX);
}

/*
 * The chunk @index with the xarray lock held, created if absent: then
 * *@created is set and the chunk is COPYING, its copy not queued (the
 * caller queues it, alone or in a batch, with bdsnap_cow_start_batch()).
 * Returns NULL with the lock released if the cow failed or the chunk could
 * not be inserted (then the snapshot is corrupted). Process context; may
 * sleep; called without the lock.
 */
static struct bdsnap_chunk *bdsnap_cow_get_chunk_locked(struct bdsnap_cow *cow,
							unsigned long index,
							bool *created)
{
	struct bdsnap_chunk *chunk, *new = NULL;
	int ret;

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
			new = bdsnap_chunk_alloc(cow, index);
			if (!new) {
				ret = -ENOMEM;
				goto out_corrupt;
			}
			xa_lock(&cow->chunks);
			continue;
		}
		/* May drop and retake the lock to allocate xarray nodes. */
		ret = __xa_insert(&cow->chunks, index, new, GFP_NOIO);
		if (ret == -EBUSY)
			continue;	/* inserted meanwhile: use that one */
		if (ret) {
			xa_unlock(&cow->chunks);
			goto out_corrupt;
		}
		chunk = new;
		new = NULL;
		*created = true;
		break;
	}
	if (new)
		kmem_cache_free(bdsnap_chunk_cache, new);
	return chunk;

out_corrupt:
	/* Writes pass from now on; the snapshot is lost, the data is not. */
	bdsnap_snapshot_corrupt_async(cow->snap, cow->dev, -ret);
	if (new)
		kmem_cache_free(bdsnap_chunk_cache, new);
	return NULL;

out_unlock:
	xa_unlock(&cow->chunks);
	if (new)
		kmem_cache_free(bdsnap_chunk_cache, new);
	return NULL;
}

/*
 * Start the copies of the chunks @from..@last that have none yet, in
 * batches of adjacent chunks created here. @head, if not NULL, is a chunk
 * the caller created just before @from and did not queue: the first batch
 * begins with it. A bio that covers several chunks is held on one at a
 * time: without this, its chunks would be copied one after the other.
 * Process context; may sleep.
 */
static void bdsnap_cow_start_range(struct bdsnap_cow *cow,
				   struct bdsnap_chunk *head,
				   unsigned long from, unsigned long last)
{
	unsigned int max = bdsnap_cow_batch_max(cow);
	unsigned int nr = head ? 1 : 0;
	struct bdsnap_chunk *chunk = NULL;
	unsigned long i;
	bool created;

	for (i = from; i <= last; i++) {
		if (xa_load(&cow->chunks, i)) {
			created = false;
		} else {
			chunk = bdsnap_cow_get_chunk_locked(cow, i, &created);
			if (!chunk)
				break;	/* failed: nothing to copy any more */
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
 * the copies of its later chunks. Returns true if it is held now, false if
 * it may be submitted (all chunks copied, or the cow failed). Process
 * context; may sleep.
 */
static bool bdsnap_cow_hold(struct bdsnap_cow *cow,
			    struct bdsnap_held_bio *held)
{
	unsigned long first, last, i;
	struct bdsnap_chunk *chunk;
	bool created;

	if (!bdsnap_cow_range(cow, held->sector, bio_sectors(held->bio),
			      &first, &last))
		return false;

	for (i = first; i <= last; i++) {
		chunk = xa_load(&cow->chunks, i);
		if (chunk && bdsnap_chunk_state(chunk) != BDSNAP_CHUNK_COPYING)
			continue;

		chunk = bdsnap_cow_get_chunk_locked(cow, i, &created);
		if (!chunk)
			return false;	/* failed: pass everything */
		if (chunk->state != BDSNAP_CHUNK_COPYING) {
			xa_unlock(&cow->chunks);
			continue;
		}
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
				       last);
		return true;
	}
	return false;
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

static enum bdfilter_result bdsnap_cow_submit_bio(struct bdsnap_cow *cow,
						  struct bio *bio,
						  sector_t sector)
{
	struct bdsnap_held_bio *held;
	unsigned long first, last;

	if (READ_ONCE(cow->failed) || !bdsnap_bio_changes_data(bio) ||
	    !bio_sectors(bio))
		return BDFILTER_PASS;
	if (!bdsnap_cow_range(cow, sector, bio_sectors(bio), &first, &last))
		return BDFILTER_PASS;
	if (bdsnap_cow_all_copied(cow, first, last))
		return BDFILTER_PASS;

	if (bio->bi_opf & REQ_NOWAIT) {
		bio_wouldblock_error(bio);
		return BDFILTER_DONE;
	}

	held = mempool_alloc(bdsnap_held_pool, GFP_NOIO);
	held->bio = bio;
	held->sector = sector;
	if (bdsnap_cow_hold(cow, held))
		return BDFILTER_DONE;
	mempool_free(held, bdsnap_held_pool);
	return BDFILTER_PASS;
}

enum bdfilter_result bdsnap_cow_filter_bio(struct bdsnap_cow __rcu **slot,
					   struct bio *bio, sector_t sector)
{
	enum bdfilter_result res = BDFILTER_PASS;
	struct bdsnap_cow *cow;
	int idx;

	idx = srcu_read_lock(&bdsnap_cow_srcu);
	cow = srcu_dereference(*slot, &bdsnap_cow_srcu);
	if (cow)
		res = bdsnap_cow_submit_bio(cow, bio, sector);
	srcu_read_unlock(&bdsnap_cow_srcu, idx);
	return res;
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
		if (bdsnap_cow_hold(cow, held))
			continue;
		bdfilter_submit_bio(held->bio);
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

		bio = bdsnap_bio_alloc(cow->orig.bdev, segs,
				       REQ_OP_READ | REQ_SYNC, GFP_NOIO);
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
 * Write the chunks @chunks[0..@nr) of a batch from @bvec (whole pages per
 * chunk; only a device's last chunk may end inside a page) to their slots,
 * one write per run of slots adjacent in the same piece. Returns 0 or a
 * negative errno.
 */
static int bdsnap_cow_write_batch(struct bdsnap_cow *cow,
				  struct bdsnap_chunk **chunks, unsigned int nr,
				  const struct bio_vec *bvec)
{
	unsigned int pages_per_chunk = (1U << cow->chunk_shift) >> PAGE_SHIFT;
	unsigned int start, end;
	int ret;

	for (start = 0; start < nr; start = end) {
		const struct bdsnap_diff_slot *slot = &chunks[start]->slot;
		size_t bytes = 0;

		for (end = start; end < nr; end++) {
			const struct bdsnap_diff_slot *s = &chunks[end]->slot;

			if (s->piece != slot->piece ||
			    s->pos != slot->pos + ((loff_t)(end - start) <<
						   cow->chunk_shift))
				break;
			bytes += bdsnap_cow_chunk_bytes(cow,
							chunks[end]->index);
		}
		ret = bdsnap_diff_storage_write_slot(slot, 0,
						     bvec + start * pages_per_chunk,
						     DIV_ROUND_UP(bytes, PAGE_SIZE),
						     bytes);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Copy the @nr adjacent chunks @chunks[] to new slots: one read of the
 * original, then the writes. Runs in the copy work, under
 * memalloc_noio_save(). Returns 0 or a negative errno.
 */
static int bdsnap_cow_copy_batch(struct bdsnap_cow *cow,
				 struct bdsnap_chunk **chunks, unsigned int nr)
{
	unsigned long first = chunks[0]->index;
	struct bio_vec *bvec;
	unsigned int i, nr_pages;
	u32 bytes = 0;
	int ret;

	for (i = 0; i < nr; i++)
		bytes += bdsnap_cow_chunk_bytes(cow, first + i);
	bvec = bdsnap_buffer_alloc(bytes, &nr_pages);
	if (!bvec)
		return -ENOMEM;
	ret = bdsnap_cow_read_orig(cow, (sector_t)first <<
				   (cow->chunk_shift - SECTOR_SHIFT),
				   bvec, nr_pages);
	for (i = 0; !ret && i < nr; i++)
		ret = bdsnap_diff_storage_alloc_slot(cow->storage,
						     1U << cow->chunk_shift,
						     &chunks[i]->slot);
	if (!ret)
		ret = bdsnap_cow_write_batch(cow, chunks, nr, bvec);
	bdsnap_buffer_free(bvec, nr_pages);
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
	int state;

	chunk = bdsnap_cow_get_chunk_locked(cow, index, &created);
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
				     sector_t nr_sectors)
{
	struct bdsnap_cow *cow;
	int ret;

	if (!nr_sectors)
		return ERR_PTR(-EINVAL);
	cow = kzalloc(sizeof(*cow), GFP_KERNEL);
	if (!cow)
		return ERR_PTR(-ENOMEM);
	kref_init(&cow->kref);
	cow->dev = dev;
	cow->nr_sectors = nr_sectors;
	ret = bdsnap_cow_chunk_shift(nr_sectors, &cow->chunk_shift,
				     &cow->chunk_count);
	if (ret)
		goto err_free;
	ret = bdfilter_bdev_open(dev, &cow->orig);
	if (ret)
		goto err_free;
	xa_init(&cow->chunks);
	atomic_set(&cow->pending, 0);
	init_waitqueue_head(&cow->idle_wait);
	init_waitqueue_head(&cow->copy_wait);
	atomic64_set(&cow->chunks_copied, 0);
	bdsnap_snapshot_get(snap);
	cow->snap = snap;
	cow->storage = bdsnap_snapshot_storage(snap);
	atomic_inc(&bdsnap_cow_live);
	return cow;

err_free:
	kfree(cow);
	return ERR_PTR(ret);
}

void bdsnap_cow_get(struct bdsnap_cow *cow)
{
	kref_get(&cow->kref);
}

static void bdsnap_cow_release(struct kref *kref)
{
	struct bdsnap_cow *cow = container_of(kref, struct bdsnap_cow, kref);
	struct bdsnap_chunk *chunk;
	unsigned long index;

	/* No work holds a reference any more, so none is queued. */
	WARN_ON_ONCE(atomic_read(&cow->pending));
	xa_for_each(&cow->chunks, index, chunk) {
		/* Held bios were all released by fail() or by their copy. */
		WARN_ON_ONCE(chunk->held_head);
		kmem_cache_free(bdsnap_chunk_cache, chunk);
	}
	xa_destroy(&cow->chunks);
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
	ret = -ENOMEM;
	/* A rescuer: writers, and so writeback, wait for the copies. */
	bdsnap_cow_wq = alloc_workqueue("bdsnap-cow",
					WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!bdsnap_cow_wq)
		goto err_srcu;
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
err_srcu:
	cleanup_srcu_struct(&bdsnap_cow_srcu);
	return ret;
}

void bdsnap_cow_exit_module(void)
{
	bdsnap_buffer_trim();
	mempool_destroy(bdsnap_held_pool);
	kmem_cache_destroy(bdsnap_chunk_cache);
	destroy_workqueue(bdsnap_cow_wq);
	cleanup_srcu_struct(&bdsnap_cow_srcu);
}
