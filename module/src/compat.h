/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the supported kernels (5.10 and newer).
 *
 * This is the only file that may test HAVE_xxx macros or kernel versions;
 * everything else calls the bdsnap_* shims below. The HAVE_xxx macros come
 * from compat_config.h, which the build generates by compiling each snippet
 * in compat-tests/ against the target kernel's headers: a feature is there
 * when its snippet compiles, whatever the version number says (distribution
 * kernels backport).
 */
#ifndef BDSNAP_COMPAT_H
#define BDSNAP_COMPAT_H

#include "compat_config.h"

#include <linux/ftrace.h>

/*
 * Type of the last argument of an ftrace callback: struct ftrace_regs since
 * 5.11, struct pt_regs before.
 */
#ifdef HAVE_FTRACE_FUNC_T_FTRACE_REGS
#define bdsnap_ftrace_regs ftrace_regs
#else
#define bdsnap_ftrace_regs pt_regs
#endif

/*
 * Make an IPMODIFY ftrace callback resume at @ip instead of the traced
 * function. The ftrace_ops must have FTRACE_OPS_FL_SAVE_REGS on kernels whose
 * callbacks get struct pt_regs.
 */
static inline void bdsnap_ftrace_set_ip(struct bdsnap_ftrace_regs *regs,
					unsigned long ip)
{
#if defined(HAVE_FTRACE_REGS_SET_INSTRUCTION_POINTER)
	ftrace_regs_set_instruction_pointer(regs, ip);
#elif defined(HAVE_FTRACE_INSTRUCTION_POINTER_SET)
	ftrace_instruction_pointer_set(regs, ip);
#elif !defined(HAVE_FTRACE_FUNC_T_FTRACE_REGS)
	instruction_pointer_set(regs, ip);
#else
#error "no way to set the instruction pointer from an ftrace callback"
#endif
}

/* ---- bdsnap ---- */

#include <linux/bio.h>
#include <linux/blk_types.h>

/*
 * REQ_OP_WRITE_SAME (one sector's data written over a range) existed until
 * 5.17: a write of the whole range for changed-block tracking.
 */
static inline bool bdsnap_bio_is_write_same(struct bio *bio)
{
#ifdef HAVE_REQ_OP_WRITE_SAME
	return bio_op(bio) == REQ_OP_WRITE_SAME;
#else
	return false;
#endif
}

/*
 * True for the operations that change the data of their range: what the
 * CBT marks (tracker.c) and what copy-on-write holds (cow.c).
 */
static inline bool bdsnap_bio_changes_data(struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_WRITE_ZEROES:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
		return true;
	default:
		return bdsnap_bio_is_write_same(bio);
	}
}

/* ---- bdfilter ---- */

/*
 * Shims for bdfilter.ko (src/filter/); their names start with bdfilter_.
 */

#include <linux/blkdev.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/rcupdate.h>

/*
 * Before 5.11, ftrace wrapped a callback without FTRACE_OPS_FL_RECURSION_SAFE
 * in a recursion guard that skips the callback when it trips: a bio would
 * then bypass the filter. bdfilter's callback cannot recurse, so it says so.
 * Since 5.11 the default is the reverse (FTRACE_OPS_FL_RECURSION asks for
 * the guard), and bdfilter does not ask.
 */
#ifdef HAVE_FTRACE_OPS_FL_RECURSION_SAFE
#define BDFILTER_FTRACE_FL_RECURSION_SAFE FTRACE_OPS_FL_RECURSION_SAFE
#else
#define BDFILTER_FTRACE_FL_RECURSION_SAFE 0
#endif

/* Partition number of a block device (0 for a whole disk). */
static inline u8 bdfilter_bdev_partno(struct block_device *bdev)
{
#ifdef HAVE_BDEV_PARTNO
	return bdev_partno(bdev);
#else
	return bdev->bd_partno;
#endif
}

static inline sector_t bdfilter_bdev_nr_sectors(struct block_device *bdev)
{
#ifdef HAVE_BDEV_NR_SECTORS
	return bdev_nr_sectors(bdev);
#else
	return i_size_read(bdev->bd_inode) >> SECTOR_SHIFT;
#endif
}

/* The disk a bio is addressed to: bi_bdev since 5.12, bi_disk before. */
static inline struct gendisk *bdfilter_bio_disk(struct bio *bio)
{
#ifdef HAVE_BIO_BI_BDEV
	return bio->bi_bdev->bd_disk;
#else
	return bio->bi_disk;
#endif
}

/* The partition number a bio is addressed to (0: the whole disk). */
static inline u8 bdfilter_bio_partno(struct bio *bio)
{
#ifdef HAVE_BIO_BI_BDEV
	return bdfilter_bdev_partno(bio->bi_bdev);
#else
	return bio->bi_partno;
#endif
}

/*
 * Whether a partition's bio already counts its sector from the start of the
 * disk: the block layer remapped it, split it, and submits the rest again.
 * Since 5.12 such a bio keeps its partition and carries BIO_REMAPPED; 5.10
 * resets bi_partno to 0 instead, so it looks like a whole-disk bio there.
 */
static inline bool bdfilter_bio_remapped(struct bio *bio)
{
#ifdef HAVE_BIO_BI_BDEV
	return bio_flagged(bio, BIO_REMAPPED);
#else
	return false;
#endif
}

/*
 * First sector of the partition a bio is addressed to, in its disk.
 * Must not sleep (called for every bio).
 */
static inline sector_t bdfilter_bio_part_start(struct bio *bio)
{
#ifdef HAVE_BIO_BI_BDEV
	return get_start_sect(bio->bi_bdev);
#else
	struct disk_part_tbl *tbl;
	struct hd_struct *part;
	sector_t start = 0;

	rcu_read_lock();
	tbl = rcu_dereference(bio->bi_disk->part_tbl);
	if (bio->bi_partno < tbl->len) {
		part = rcu_dereference(tbl->part[bio->bi_partno]);
		if (part)
			start = part->start_sect;
	}
	rcu_read_unlock();
	return start;
#endif
}

/*
 * Where partition @partno of @disk lies now, in sectors of the disk: false
 * if it does not exist (any more). Must not sleep (called for bios).
 */
static inline bool bdfilter_part_range(struct gendisk *disk, u8 partno,
				       sector_t *start, sector_t *nr)
{
	bool found = false;

	rcu_read_lock();
#ifdef HAVE_DISK_PART_TBL_XARRAY
	{
		struct block_device *part = xa_load(&disk->part_tbl, partno);

		if (part) {
			*start = part->bd_start_sect;
			*nr = bdev_nr_sectors(part);
			found = true;
		}
	}
#else
	{
		struct disk_part_tbl *tbl = rcu_dereference(disk->part_tbl);
		struct hd_struct *part = NULL;

		if (partno < tbl->len)
			part = rcu_dereference(tbl->part[partno]);
		if (part) {
			*start = part->start_sect;
			*nr = READ_ONCE(part->nr_sects);
			found = true;
		}
	}
#endif
	rcu_read_unlock();
	return found && *nr;
}

/*
 * A block device opened read-only and not exclusively: by
 * bdev_file_open_by_dev() since 6.9, blkdev_get_by_dev() before (with
 * holder ops 6.5 to 6.8).
 */
struct bdfilter_bdev_ref {
	struct block_device *bdev;
#ifdef HAVE_BDEV_FILE_OPEN_BY_DEV
	struct file *file;
#endif
};

/* May sleep. Returns 0 or a negative errno. */
static inline int bdfilter_bdev_open(dev_t dev, struct bdfilter_bdev_ref *ref)
{
#if defined(HAVE_BDEV_FILE_OPEN_BY_DEV)
	struct file *file = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL,
						  NULL);

	if (IS_ERR(file))
		return PTR_ERR(file);
	ref->file = file;
	ref->bdev = file_bdev(file);
	return 0;
#else
	struct block_device *bdev;

#if defined(HAVE_BLKDEV_GET_BY_DEV_HOLDER_OPS)
	bdev = blkdev_get_by_dev(dev, BLK_OPEN_READ, NULL, NULL);
#else
	bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);
#endif
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	ref->bdev = bdev;
	return 0;
#endif
}

/* May sleep. */
static inline void bdfilter_bdev_close(struct bdfilter_bdev_ref *ref)
{
#if defined(HAVE_BDEV_FILE_OPEN_BY_DEV)
	fput(ref->file);
#elif defined(HAVE_BLKDEV_GET_BY_DEV_HOLDER_OPS)
	blkdev_put(ref->bdev, NULL);
#else
	blkdev_put(ref->bdev, FMODE_READ);
#endif
}

/*
 * submit_bio_noacct() returned a polling cookie (blk_qc_t, an unsigned int)
 * before 5.16 and returns nothing since. bdfilter's replacement always
 * returns an unsigned int: the real cookie where callers use one (so that a
 * polled bio passed through still polls), and 0 where the return register is
 * ignored by callers of a void function.
 */
#ifdef HAVE_SUBMIT_BIO_NOACCT_VOID
#define BDFILTER_NO_COOKIE 0U
#else
#define BDFILTER_NO_COOKIE BLK_QC_T_NONE
#endif

static inline unsigned int bdfilter_real_submit_bio_noacct(struct bio *bio)
{
#ifdef HAVE_SUBMIT_BIO_NOACCT_VOID
	submit_bio_noacct(bio);
	return BDFILTER_NO_COOKIE;
#else
	return submit_bio_noacct(bio);
#endif
}

/* ---- end bdfilter ---- */

/* ---- bdsnap snapshots (issue 4) ---- */

#include <linux/err.h>
#include <linux/uio.h>

/* Iterator directions: ITER_SOURCE/ITER_DEST since 6.3 (Debian 6.1 too). */
#ifdef HAVE_ITER_SOURCE
#define BDSNAP_ITER_SOURCE ITER_SOURCE
#define BDSNAP_ITER_DEST ITER_DEST
#else
#define BDSNAP_ITER_SOURCE WRITE
#define BDSNAP_ITER_DEST READ
#endif

/* A bio for @bdev: bio_alloc(bdev, ...) since 5.18. Mempool-backed. */
static inline struct bio *bdsnap_bio_alloc(struct block_device *bdev,
					   unsigned short nr_vecs,
					   unsigned int opf, gfp_t gfp)
{
#ifdef HAVE_BIO_ALLOC_BDEV
	return bio_alloc(bdev, nr_vecs, (__force blk_opf_t)opf, gfp);
#else
	struct bio *bio = bio_alloc(gfp, nr_vecs);

	if (bio) {
		bio_set_dev(bio, bdev);
		bio->bi_opf = opf;
	}
	return bio;
#endif
}

/* A bio from @bs for @bdev (bio_alloc_bioset(bdev, ...) since 5.18). */
static inline struct bio *bdsnap_bio_alloc_bioset(struct block_device *bdev,
						  unsigned short nr_vecs,
						  unsigned int opf, gfp_t gfp,
						  struct bio_set *bs)
{
#ifdef HAVE_BIO_ALLOC_BDEV
	return bio_alloc_bioset(bdev, nr_vecs, (__force blk_opf_t)opf, gfp,
				bs);
#else
	struct bio *bio = bio_alloc_bioset(gfp, nr_vecs, bs);

	if (bio) {
		bio_set_dev(bio, bdev);
		bio->bi_opf = opf;
	}
	return bio;
#endif
}

/*
 * A bio a filter held and resubmits later from a worker: it must not keep
 * REQ_NOWAIT (a late BLK_STS_AGAIN would reach a caller that was already
 * told the bio was accepted) nor its polling flag (REQ_POLLED since 5.16,
 * REQ_HIPRI before): its submitter polls a cookie it never got, and on 5.10
 * a polled queue has no interrupt to complete it. Cleared, the bio
 * completes by interrupt, which io_uring's polling loop notices.
 */
static inline void bdsnap_bio_make_blocking(struct bio *bio)
{
	bio->bi_opf &= ~REQ_NOWAIT;
#if defined(HAVE_BIO_CLEAR_POLLED)
	bio_clear_polled(bio);
#elif defined(REQ_POLLED)
	bio->bi_opf &= ~REQ_POLLED;
#else
	bio->bi_opf &= ~REQ_HIPRI;
#endif
}

/*
 * The completion bio_chain() gives a child bio (bio_chain_endio(), static
 * in block/bio.c), learnt from bio_chain() on two bios on the stack, which
 * are never submitted. Process context.
 */
static inline bio_end_io_t *bdsnap_bio_chain_endio(void)
{
	struct bio parent, child;

#ifdef HAVE_BIO_INIT_BDEV
	bio_init(&parent, NULL, NULL, 0, 0);
	bio_init(&child, NULL, NULL, 0, 0);
#else
	bio_init(&parent, NULL, 0);
	bio_init(&child, NULL, 0);
#endif
	bio_chain(&child, &parent);
	return child.bi_end_io;
}

/* Filesystem freeze around the take; 5.10 must keep the super block. */
struct bdsnap_freeze_state {
#if !defined(HAVE_BDEV_FREEZE) && !defined(HAVE_FREEZE_BDEV_INT)
	struct super_block *sb;
#endif
};

static inline int bdsnap_freeze(struct block_device *bdev,
				struct bdsnap_freeze_state *st)
{
#if defined(HAVE_BDEV_FREEZE)
	return bdev_freeze(bdev);
#elif defined(HAVE_FREEZE_BDEV_INT)
	return freeze_bdev(bdev);
#else
	struct super_block *sb = freeze_bdev(bdev);

	if (IS_ERR(sb))
		return PTR_ERR(sb);
	st->sb = sb;
	return 0;
#endif
}

static inline int bdsnap_thaw(struct block_device *bdev,
			      struct bdsnap_freeze_state *st)
{
#if defined(HAVE_BDEV_FREEZE)
	return bdev_thaw(bdev);
#elif defined(HAVE_FREEZE_BDEV_INT)
	return thaw_bdev(bdev);
#else
	return thaw_bdev(bdev, st->sb);
#endif
}

/* A bio-based disk with these limits, not added yet; ERR_PTR on failure. */
static inline struct gendisk *bdsnap_alloc_disk(unsigned int lbs,
						unsigned int pbs,
						unsigned int max_sectors)
{
#if defined(HAVE_BLK_ALLOC_DISK_LIM)
	struct queue_limits lim = {
		.logical_block_size = lbs,
		.physical_block_size = pbs,
		.max_hw_sectors = max_sectors,
	};

	return blk_alloc_disk(&lim, NUMA_NO_NODE);
#else
	struct gendisk *disk;

#if defined(HAVE_BLK_ALLOC_DISK)
	disk = blk_alloc_disk(NUMA_NO_NODE);
	if (!disk)
		return ERR_PTR(-ENOMEM);
#else
	struct request_queue *q = blk_alloc_queue(NUMA_NO_NODE);

	if (!q)
		return ERR_PTR(-ENOMEM);
	disk = alloc_disk(1);
	if (!disk) {
		blk_cleanup_queue(q);
		return ERR_PTR(-ENOMEM);
	}
	disk->queue = q;
#endif
	blk_queue_logical_block_size(disk->queue, lbs);
	blk_queue_physical_block_size(disk->queue, pbs);
	blk_queue_max_hw_sectors(disk->queue, max_sectors);
	return disk;
#endif
}

static inline int bdsnap_add_disk(struct gendisk *disk)
{
#ifdef HAVE_ADD_DISK_INT
	return add_disk(disk);
#else
	add_disk(disk);
	return 0;
#endif
}

/*
 * After del_gendisk() (or instead, for a disk never added, @added false):
 * make sure the disk's ->submit_bio() is not called any more. 6.x:
 * del_gendisk() marked the disk dead already, and put_disk() alone frees a
 * disk never added with its queue. 5.10: only blk_cleanup_queue() marks the
 * queue dying, which also waits for the callers inside ->submit_bio(), and
 * drops the queue reference blk_alloc_queue() made; add_disk() had taken
 * one more, which put_disk()'s release drops. A disk never added has no
 * such reference: its queue pointer is cleared, or the release would drop
 * a reference to a queue already freed (as 5.10's own drivers do on their
 * error paths). The disk is then freed with put_disk().
 */
static inline void bdsnap_disk_shutdown(struct gendisk *disk, bool added)
{
#ifdef HAVE_BLK_CLEANUP_QUEUE
	blk_cleanup_queue(disk->queue);
	if (!added)
		disk->queue = NULL;
#endif
}

#ifdef HAVE_GENHD_FL_NO_PART
#define BDSNAP_GENHD_FL_NO_PART GENHD_FL_NO_PART
#else
#define BDSNAP_GENHD_FL_NO_PART GENHD_FL_NO_PART_SCAN
#endif

/*
 * Return type and value of a block_device_operations.submit_bio method:
 * void since 5.16 (the value is then empty: "return ;"), a blk_qc_t polling
 * cookie before.
 */
#ifdef HAVE_SUBMIT_BIO_VOID
#define BDSNAP_SUBMIT_BIO_RET void
#define BDSNAP_SUBMIT_BIO_DONE
#else
#define BDSNAP_SUBMIT_BIO_RET blk_qc_t
#define BDSNAP_SUBMIT_BIO_DONE BLK_QC_T_NONE
#endif

/* ---- end bdsnap snapshots ---- */

#endif /* BDSNAP_COMPAT_H */
