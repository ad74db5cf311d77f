// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot images: bio-based block devices.
 *
 * Bio-based rather than blk-mq: every image bio needs process context
 * anyway (difference storage I/O goes through the VFS, reads of the
 * original wait), so ->submit_bio() only hands the bio to a work on
 * bdsnap_image_wq; no tag set, no request allocation.
 *
 * A bio is cut at chunk boundaries into parts, one per chunk:
 *  - read of a copied chunk: from its difference storage slot;
 *  - read of chunks not copied: adjacent ones together, in one read of the
 *    original device past the filters (chunk by chunk, a 1 MiB read cost 16
 *    synchronous requests, one after the other), then each chunk is looked
 *    up again. If one became copied while the read ran, writes to the
 *    original may have been let through (they are released only after the
 *    chunk is marked copied), so its part is read again from the slot.
 *    Otherwise the original still held the data of the take when the read
 *    completed. No lock is held across I/O, and a read races with at most
 *    one copy per chunk, so there is at most one retry;
 *  - write: the chunk is copied first if it was not (the same copy an
 *    original write triggers, waited for here), then written in its slot.
 *    The original device is never written by an image.
 *
 * Teardown: bdsnap_image_kill() makes new and queued bios fail with EIO;
 * bdsnap_image_destroy() deletes the disk and shuts its queue down, after
 * which the block layer calls ->submit_bio() no more (6.x: del_gendisk()
 * marks the disk dead; 5.10: only blk_cleanup_queue() marks the queue
 * dying, which bdsnap_disk_shutdown() does), then waits for the works
 * still running, then frees. The private data is not used after that.
 *
 * Contexts: ->submit_bio() runs in the submitter's context and never
 * sleeps; the works run in process context inside
 * bdsnap_diff_storage_io_begin()/_end() (no reclaim I/O, local dirty
 * throttling), because the writeback of a snapshotted device may wait for
 * a copy an image write started.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/error-injection.h>
#include <linux/idr.h>
#include <linux/kernel.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "cow.h"
#include "image.h"
#include "snapshot.h"

#define BDSNAP_IMAGE_NAME	"bdsnap-image"
/*
 * max_hw_sectors advertised (512 KiB): what upper layers build bios to; a
 * bio-based driver still gets whatever it is sent, and copes.
 */
#define BDSNAP_IMAGE_MAX_SECTORS	1024U
#define BDSNAP_IMAGE_POOL_MIN		16

static int bdsnap_image_major;
static DEFINE_IDA(bdsnap_image_ida);
static struct workqueue_struct *bdsnap_image_wq;
static mempool_t *bdsnap_image_io_pool;

/* One image bio on its way through bdsnap_image_wq. */
struct bdsnap_image_io {
	struct work_struct work;
	struct bdsnap_image *image;
	struct bio *bio;
};

static void bdsnap_image_io_done(struct bdsnap_image *image)
{
	if (atomic_dec_and_test(&image->inflight))
		wake_up_all(&image->idle);
}

/* The part of an image bio that falls in one chunk. */
struct bdsnap_image_part {
	unsigned long index;	/* chunk */
	u32 off;		/* first byte within the chunk */
	u32 bytes;
	unsigned int vec;	/* first of its entries in the vector array */
	unsigned int nr_vecs;
};

/*
 * Write @part (its data in @vecs) into its chunk's slot, copying the chunk
 * first if it was not. Process context, sleeps. Returns 0 or -errno.
 */
static int bdsnap_image_write_part(struct bdsnap_image *image,
				   const struct bdsnap_image_part *part,
				   const struct bio_vec *vecs)
{
	struct bdsnap_diff_slot slot;
	int ret;

	ret = bdsnap_cow_copy_sync(image->cow, part->index, &slot);
	if (ret)
		return ret;
	return bdsnap_diff_storage_write_slot(&slot, part->off,
					      vecs + part->vec, part->nr_vecs,
					      part->bytes);
}

/*
 * Read @part from its chunk's slot if the chunk is copied. Returns 1 if it
 * was, 0 if the chunk is not copied (nothing read), or -errno.
 */
static int bdsnap_image_read_copied(struct bdsnap_image *image,
				    const struct bdsnap_image_part *part,
				    const struct bio_vec *vecs)
{
	struct bdsnap_diff_slot slot;
	int ret;

	ret = bdsnap_cow_lookup(image->cow, part->index, &slot);
	if (ret != BDSNAP_CHUNK_COPIED)
		return ret;
	ret = bdsnap_diff_storage_read_slot(&slot, part->off,
					    vecs + part->vec, part->nr_vecs,
					    part->bytes);
	return ret ? ret : 1;
}

/*
 * Read @nr parts, from @parts on: copied chunks from their slots, each run
 * of adjacent chunks not copied in one read of the original (see the top
 * of this file). Process context, sleeps. Returns 0 or -errno.
 */
static int bdsnap_image_read_parts(struct bdsnap_image *image,
				   const struct bdsnap_image_part *parts,
				   unsigned int nr, const struct bio_vec *vecs)
{
	struct bdsnap_cow *cow = image->cow;
	unsigned int i, end, k, nr_vecs;
	sector_t sector;
	int ret;

	for (i = 0; i < nr; i = end) {
		ret = bdsnap_image_read_copied(image, &parts[i], vecs);
		if (ret < 0)
			return ret;
		if (ret) {
			end = i + 1;
			continue;
		}
		/* parts[i] is not copied: so is the run up to parts[end - 1]. */
		nr_vecs = parts[i].nr_vecs;
		for (end = i + 1; end < nr; end++) {
			struct bdsnap_diff_slot slot;

			ret = bdsnap_cow_lookup(cow, parts[end].index, &slot);
			if (ret < 0)
				return ret;
			if (ret)
				break;
			nr_vecs += parts[end].nr_vecs;
		}
		sector = ((sector_t)parts[i].index <<
			  (cow->chunk_shift - SECTOR_SHIFT)) +
			 (parts[i].off >> SECTOR_SHIFT);
		ret = bdsnap_cow_read_orig(cow, sector, vecs + parts[i].vec,
					   nr_vecs);
		if (ret)
			return ret;
		/* The data read must be older than the states looked at next. */
		smp_mb();
		for (k = i; k < end; k++) {
			ret = bdsnap_image_read_copied(image, &parts[k], vecs);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/*
 * Cut @bio's data at chunk boundaries and transfer each part. Process
 * context, sleeps. Returns 0 or -errno.
 */
static int bdsnap_image_rw(struct bdsnap_image *image, struct bio *bio,
			   bool write)
{
	unsigned int shift = image->cow->chunk_shift;
	u64 mask = (1ULL << shift) - 1;
	u64 pos = (u64)bio->bi_iter.bi_sector << SECTOR_SHIFT;
	struct bdsnap_image_part *parts, *part = NULL;
	unsigned int max_parts, nr_parts = 0;
	struct bvec_iter iter;
	struct bio_vec *vecs;
	unsigned int n = 0;
	struct bio_vec bv;
	unsigned int i;
	int ret = 0;

	/*
	 * Each single-page segment is cut at most once, by a chunk edge.
	 * GFP_KERNEL under the work's memalloc_noio_save(): a large bio's
	 * arrays may come from vmalloc.
	 */
	max_parts = ((bio->bi_iter.bi_size + mask) >> shift) + 1;
	vecs = kvmalloc_array(2 * bio_segments(bio) + 1, sizeof(*vecs),
			      GFP_KERNEL);
	parts = kvmalloc_array(max_parts, sizeof(*parts), GFP_KERNEL);
	if (!vecs || !parts) {
		ret = -ENOMEM;
		goto out;
	}

	/*
	 * bio_for_each_segment() advances by the bvec it handed out: cut a
	 * copy of it, never the loop's own.
	 */
	bio_for_each_segment(bv, bio, iter) {
		struct bio_vec piece = bv;

		while (piece.bv_len) {
			unsigned long index = pos >> shift;
			u32 off = pos & mask;
			u32 len = min_t(u64, piece.bv_len, mask + 1 - off);

			if (!part || part->index != index) {
				if (WARN_ON_ONCE(nr_parts == max_parts)) {
					ret = -EIO;
					goto out;
				}
				part = &parts[nr_parts++];
				part->index = index;
				part->off = off;
				part->bytes = 0;
				part->vec = n;
				part->nr_vecs = 0;
			}
			vecs[n].bv_page = piece.bv_page;
			vecs[n].bv_offset = piece.bv_offset;
			vecs[n].bv_len = len;
			n++;
			part->nr_vecs++;
			part->bytes += len;
			pos += len;
			piece.bv_offset += len;
			piece.bv_len -= len;
		}
	}

	if (!write) {
		ret = bdsnap_image_read_parts(image, parts, nr_parts, vecs);
		goto out;
	}
	for (i = 0; i < nr_parts && !ret; i++)
		ret = bdsnap_image_write_part(image, &parts[i], vecs);
out:
	kvfree(parts);
	kvfree(vecs);
	return ret;
}

static void bdsnap_image_io_work(struct work_struct *work)
{
	struct bdsnap_image_io *io = container_of(work, struct bdsnap_image_io,
						  work);
	struct bdsnap_image *image = io->image;
	struct bdsnap_diff_storage *st;
	struct bio *bio = io->bio;
	unsigned int io_state;
	int ret = 0;

	mempool_free(io, bdsnap_image_io_pool);
	if (READ_ONCE(image->dead)) {
		bio_io_error(bio);
		goto out;
	}

	io_state = bdsnap_diff_storage_io_begin();
	st = image->cow->storage;
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		ret = bdsnap_image_rw(image, bio, false);
		break;
	case REQ_OP_WRITE:
		if (bio->bi_opf & REQ_PREFLUSH)
			ret = bdsnap_diff_storage_sync(st);
		if (!ret && bio_sectors(bio))
			ret = bdsnap_image_rw(image, bio, true);
		if (!ret && (bio->bi_opf & REQ_FUA))
			ret = bdsnap_diff_storage_sync(st);
		break;
	case REQ_OP_FLUSH:
		ret = bdsnap_diff_storage_sync(st);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	bdsnap_diff_storage_io_end(io_state);

	bio->bi_status = errno_to_blk_status(ret);
	bio_endio(bio);
out:
	bdsnap_image_io_done(image);
}

/* The submitter's context: never sleeps. */
static void bdsnap_image_submit(struct bio *bio)
{
	struct bdsnap_image *image = bdfilter_bio_disk(bio)->private_data;
	struct bdsnap_image_io *io;

	if (READ_ONCE(image->dead)) {
		bio_io_error(bio);
		return;
	}
	/* Everything is deferred: a bio that must not wait cannot go on. */
	if (bio->bi_opf & REQ_NOWAIT) {
		bio_wouldblock_error(bio);
		return;
	}
	io = mempool_alloc(bdsnap_image_io_pool, GFP_NOIO);
	INIT_WORK(&io->work, bdsnap_image_io_work);
	io->image = image;
	io->bio = bio;
	atomic_inc(&image->inflight);
	queue_work(bdsnap_image_wq, &io->work);
}

static BDSNAP_SUBMIT_BIO_RET bdsnap_image_submit_bio(struct bio *bio)
{
	bdsnap_image_submit(bio);
	return BDSNAP_SUBMIT_BIO_DONE;
}

/* Image nodes are root only, also under devtmpfs without udev. */
static char *bdsnap_image_devnode(struct gendisk *disk, umode_t *mode)
{
	if (mode)
		*mode = 0600;
	return NULL;
}

static const struct block_device_operations bdsnap_image_fops = {
	.owner = THIS_MODULE,
	.submit_bio = bdsnap_image_submit_bio,
	.devnode = bdsnap_image_devnode,
};

struct bdsnap_image *bdsnap_image_alloc(struct bdsnap_snapshot *snap,
					struct bdsnap_cow *cow)
{
	struct block_device *orig = cow->orig.bdev;
	struct bdsnap_image *image;
	struct gendisk *disk;
	int ret;

	image = kzalloc(sizeof(*image), GFP_KERNEL);
	if (!image)
		return ERR_PTR(-ENOMEM);
	atomic_set(&image->inflight, 0);
	init_waitqueue_head(&image->idle);

	ret = ida_alloc_max(&bdsnap_image_ida, MINORMASK, GFP_KERNEL);
	if (ret < 0)
		goto err_free;
	image->index = ret;

	disk = bdsnap_alloc_disk(bdev_logical_block_size(orig),
				 bdev_physical_block_size(orig),
				 BDSNAP_IMAGE_MAX_SECTORS);
	if (IS_ERR(disk)) {
		ret = PTR_ERR(disk);
		goto err_ida;
	}
	disk->major = bdsnap_image_major;
	disk->first_minor = image->index;
	disk->minors = 1;
	disk->flags |= BDSNAP_GENHD_FL_NO_PART;
	disk->fops = &bdsnap_image_fops;
	disk->private_data = image;
	snprintf(disk->disk_name, sizeof(disk->disk_name), "%s%d",
		 BDSNAP_IMAGE_NAME, image->index);
	set_capacity(disk, cow->nr_sectors);

	bdsnap_cow_get(cow);
	image->cow = cow;
	image->disk = disk;
	return image;

err_ida:
	ida_free(&bdsnap_image_ida, image->index);
err_free:
	kfree(image);
	return ERR_PTR(ret);
}

/* Fault injection (fail_function) fails it as its allocations would. */
ALLOW_ERROR_INJECTION(bdsnap_image_alloc, ERRNO);

int bdsnap_image_add(struct bdsnap_image *image)
{
	int ret = bdsnap_add_disk(image->disk);

	if (!ret)
		image->added = true;
	return ret;
}

void bdsnap_image_kill(struct bdsnap_image *image)
{
	WRITE_ONCE(image->dead, true);
}

void bdsnap_image_destroy(struct bdsnap_image *image)
{
	WARN_ON_ONCE(!READ_ONCE(image->dead));
	if (image->added)
		del_gendisk(image->disk);
	/* From here on ->submit_bio() is not called any more. */
	bdsnap_disk_shutdown(image->disk, image->added);
	/* Works queued before the disk went away end with EIO. */
	wait_event(image->idle, !atomic_read(&image->inflight));
	put_disk(image->disk);
	ida_free(&bdsnap_image_ida, image->index);
	bdsnap_cow_put(image->cow);
	kfree(image);
}

dev_t bdsnap_image_devt(struct bdsnap_image *image)
{
	return image->added ? disk_devt(image->disk) : 0;
}

bool bdsnap_image_dev(dev_t dev)
{
	return MAJOR(dev) == bdsnap_image_major;
}

int bdsnap_image_init_module(void)
{
	int ret;

	bdsnap_image_major = register_blkdev(0, BDSNAP_IMAGE_NAME);
	if (bdsnap_image_major < 0)
		return bdsnap_image_major;
	ret = -ENOMEM;
	bdsnap_image_wq = alloc_workqueue("bdsnap-image",
					  WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!bdsnap_image_wq)
		goto err_blkdev;
	bdsnap_image_io_pool =
		mempool_create_kmalloc_pool(BDSNAP_IMAGE_POOL_MIN,
					    sizeof(struct bdsnap_image_io));
	if (!bdsnap_image_io_pool)
		goto err_wq;
	return 0;

err_wq:
	destroy_workqueue(bdsnap_image_wq);
err_blkdev:
	unregister_blkdev(bdsnap_image_major, BDSNAP_IMAGE_NAME);
	return ret;
}

void bdsnap_image_exit_module(void)
{
	mempool_destroy(bdsnap_image_io_pool);
	destroy_workqueue(bdsnap_image_wq);
	unregister_blkdev(bdsnap_image_major, BDSNAP_IMAGE_NAME);
	ida_destroy(&bdsnap_image_ida);
}
