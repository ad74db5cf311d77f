// SPDX-License-Identifier: GPL-2.0
/*
 * Changed-block tracking map.
 *
 * Locking (outer to inner):
 *   cbt->switch_lock (mutex)	read map readers vs. bdsnap_cbt_switch()
 *     cbt->lock (spinlock, irqsave)	snap_number, generation_id, state and
 *					the bytes of both maps
 *
 * Writers of the live map come from the I/O path in any context (a stacked
 * driver may submit from softirq), so cbt->lock is taken with interrupts
 * off and nothing under it sleeps or allocates. A plain spinlock rather than
 * lock-free byte stores: a switch must copy the live map and bump
 * snap_number as one step with respect to writers, or a write racing with
 * it could land in the old generation in the read map and in neither
 * generation's "written since" set; the lock makes that impossible at the
 * cost of one uncontended lock per write bio.
 *
 * Readers of the live map (CBT_READ with BDSNAP_CBT_READ_LIVE) copy it
 * without the spinlock: the result is a moment's view, each byte a value
 * that was really stored, which is all the live map promises. Readers of
 * the read map copy it under switch_lock into a kernel buffer, piece by
 * piece, and to user space without any lock (see bdsnap_cbt_copy_to_user()).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/limits.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/uuid.h>
#include <uapi/linux/bdsnap.h>

#include "cbt.h"

/* Largest shift whose block size still fits the UAPI's __u32 block_size. */
#define BDSNAP_CBT_SHIFT_LIMIT		31
/* Copy maps to user space in pieces this big, to reschedule in between. */
#define BDSNAP_CBT_COPY_CHUNK		SZ_1M

int bdsnap_cbt_check_params(void)
{
	unsigned int min_shift = bdsnap_tracking_block_min_shift;
	unsigned int max_shift = bdsnap_tracking_block_max_shift;
	unsigned int max_count = bdsnap_tracking_block_max_count;

	if (min_shift < SECTOR_SHIFT || min_shift > BDSNAP_CBT_SHIFT_LIMIT) {
		pr_err("tracking_block_min_shift=%u: must be %u..%u\n",
		       min_shift, SECTOR_SHIFT, BDSNAP_CBT_SHIFT_LIMIT);
		return -EINVAL;
	}
	if (max_shift < min_shift || max_shift > BDSNAP_CBT_SHIFT_LIMIT) {
		pr_err("tracking_block_max_shift=%u: must be %u..%u\n",
		       max_shift, min_shift, BDSNAP_CBT_SHIFT_LIMIT);
		return -EINVAL;
	}
	/* kvmalloc() refuses (and warns about) more than INT_MAX bytes. */
	if (max_count < 1 || max_count > INT_MAX) {
		pr_err("tracking_block_max_count=%u: must be 1..%d\n",
		       max_count, INT_MAX);
		return -EINVAL;
	}
	return 0;
}

/* Number of blocks of 2^@shift bytes that cover @sectors sectors. */
static u64 bdsnap_cbt_blocks(sector_t sectors, unsigned int shift)
{
	unsigned int s = shift - SECTOR_SHIFT;

	return (sectors >> s) + !!(sectors & ((1ULL << s) - 1));
}

struct bdsnap_cbt *bdsnap_cbt_create(sector_t device_sectors)
{
	unsigned int max_shift = bdsnap_tracking_block_max_shift;
	u64 max_count = bdsnap_tracking_block_max_count;
	unsigned int shift = bdsnap_tracking_block_min_shift;
	struct bdsnap_cbt *cbt;
	u64 count;

	if (!device_sectors)
		return ERR_PTR(-EINVAL);

	/* The smallest block size whose map is small enough. */
	count = bdsnap_cbt_blocks(device_sectors, shift);
	while (count > max_count && shift < max_shift) {
		shift++;
		count = bdsnap_cbt_blocks(device_sectors, shift);
	}
	if (count > max_count) {
		pr_err("a device of %llu sectors needs %llu tracking blocks of 2^%u bytes, more than tracking_block_max_count=%llu\n",
		       (unsigned long long)device_sectors, count, shift,
		       max_count);
		return ERR_PTR(-EFBIG);
	}

	cbt = kzalloc(sizeof(*cbt), GFP_KERNEL);
	if (!cbt)
		return ERR_PTR(-ENOMEM);
	mutex_init(&cbt->switch_lock);
	spin_lock_init(&cbt->lock);
	cbt->device_sectors = device_sectors;
	cbt->block_shift = shift;
	cbt->block_count = count;

	cbt->live_map = kvzalloc(count, GFP_KERNEL);
	if (!cbt->live_map)
		goto err_free_cbt;
	cbt->read_map = kvzalloc(count, GFP_KERNEL);
	if (!cbt->read_map)
		goto err_free_live;

	cbt->snap_number = 1;
	uuid_gen(&cbt->generation_id);
	return cbt;

err_free_live:
	kvfree(cbt->live_map);
err_free_cbt:
	kfree(cbt);
	return ERR_PTR(-ENOMEM);
}

void bdsnap_cbt_destroy(struct bdsnap_cbt *cbt)
{
	kvfree(cbt->read_map);
	kvfree(cbt->live_map);
	mutex_destroy(&cbt->switch_lock);
	kfree(cbt);
}

/*
 * Store the current generation into the blocks of [@sector, @end), which the
 * caller clipped to the device. Called with cbt->lock held.
 */
static void bdsnap_cbt_store(struct bdsnap_cbt *cbt, sector_t sector,
			     sector_t end)
{
	unsigned int s = cbt->block_shift - SECTOR_SHIFT;
	u64 first = sector >> s;
	u64 last = (end - 1) >> s;

	memset(cbt->live_map + first, cbt->snap_number, last - first + 1);
}

bool bdsnap_cbt_mark_locked(struct bdsnap_cbt *cbt, sector_t sector,
			    u64 nr_sectors)
{
	bool history_lost = false;
	sector_t end;

	lockdep_assert_held(&cbt->lock);
	if (!nr_sectors)
		return false;
	if (check_add_overflow(sector, (sector_t)nr_sectors, &end))
		end = (sector_t)-1;

	if (end > cbt->device_sectors) {
		/*
		 * The device grew (or the write is past its end and will fail):
		 * the map cannot follow without allocating, so the history is
		 * incomplete from now on.
		 */
		if (!(cbt->state & BDSNAP_CBT_RESIZED)) {
			cbt->state |= BDSNAP_CBT_RESIZED;
			uuid_gen(&cbt->generation_id);
			history_lost = true;
		}
		end = cbt->device_sectors;
	}
	if (sector < end)
		bdsnap_cbt_store(cbt, sector, end);
	return history_lost;
}

void bdsnap_cbt_lose_history_locked(struct bdsnap_cbt *cbt)
{
	lockdep_assert_held(&cbt->lock);
	uuid_gen(&cbt->generation_id);
}

int bdsnap_cbt_switch(struct bdsnap_cbt *cbt, void (*at_switch)(void *arg),
		      void *arg)
{
	unsigned long irqflags;

	mutex_lock(&cbt->switch_lock);
	cbt->switch_seq++;
	spin_lock_irqsave(&cbt->lock, irqflags);
	if (cbt->snap_number == U8_MAX) {
		/* No byte value left: start over with a new history. */
		memset(cbt->live_map, 0, cbt->block_count);
		memset(cbt->read_map, 0, cbt->block_count);
		cbt->snap_number = 1;
		uuid_gen(&cbt->generation_id);
	} else {
		memcpy(cbt->read_map, cbt->live_map, cbt->block_count);
		cbt->snap_number++;
		/*
		 * After a resize, writes beyond the map go unrecorded in every
		 * generation: no two generations can be compared.
		 */
		if (cbt->state & BDSNAP_CBT_RESIZED)
			uuid_gen(&cbt->generation_id);
	}
	if (at_switch)
		at_switch(arg);
	spin_unlock_irqrestore(&cbt->lock, irqflags);
	mutex_unlock(&cbt->switch_lock);
	return 0;
}

void bdsnap_cbt_get_info(struct bdsnap_cbt *cbt, struct bdsnap_cbt_info *info)
{
	unsigned long irqflags;

	info->device_sectors = cbt->device_sectors;
	info->block_size = 1U << cbt->block_shift;
	info->block_count = cbt->block_count;

	spin_lock_irqsave(&cbt->lock, irqflags);
	BUILD_BUG_ON(sizeof(info->generation_id) != sizeof(cbt->generation_id));
	memcpy(info->generation_id, &cbt->generation_id,
	       sizeof(info->generation_id));
	info->snap_number = cbt->snap_number;
	info->state = cbt->state;
	spin_unlock_irqrestore(&cbt->lock, irqflags);
}

/* The live map straight to user space, in pieces: no lock to hold. */
static int bdsnap_cbt_copy_live(struct bdsnap_cbt *cbt, u64 offset,
				u32 length, u8 __user *buf)
{
	u32 done = 0;

	while (done < length) {
		u32 n = min_t(u32, length - done, BDSNAP_CBT_COPY_CHUNK);

		if (copy_to_user(buf + done, cbt->live_map + offset + done, n))
			return -EFAULT;
		done += n;
		if (done < length) {
			if (fatal_signal_pending(current))
				return -EINTR;
			cond_resched();
		}
	}
	return 0;
}

int bdsnap_cbt_copy_to_user(struct bdsnap_cbt *cbt, bool live, u64 offset,
			    u32 length, u8 __user *buf)
{
	u32 piece = min_t(u32, length, BDSNAP_CBT_COPY_CHUNK);
	u32 done = 0;
	u64 seq = 0;
	u8 *bounce;
	int ret = 0;

	if (live)
		return bdsnap_cbt_copy_live(cbt, offset, length, buf);

	bounce = kvmalloc(piece, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	while (done < length) {
		u32 n = min_t(u32, length - done, piece);

		if (mutex_lock_killable(&cbt->switch_lock)) {
			ret = -EINTR;
			break;
		}
		if (!done)
			seq = cbt->switch_seq;
		else if (seq != cbt->switch_seq)
			ret = -EAGAIN;	/* the pieces would mix generations */
		if (!ret)
			memcpy(bounce, cbt->read_map + offset + done, n);
		mutex_unlock(&cbt->switch_lock);
		if (ret)
			break;
		/* No lock held: this may fault, and wait, for as long as it takes. */
		if (copy_to_user(buf + done, bounce, n)) {
			ret = -EFAULT;
			break;
		}
		done += n;
		if (done < length) {
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
			cond_resched();
		}
	}
	kvfree(bounce);
	return ret;
}

int bdsnap_cbt_mark_ranges(struct bdsnap_cbt *cbt,
			   const struct bdsnap_sector_range *ranges, u32 count)
{
	unsigned long irqflags;
	u32 i;

	for (i = 0; i < count; i++) {
		u64 end;

		if (!ranges[i].count ||
		    check_add_overflow(ranges[i].sector, ranges[i].count, &end) ||
		    end > cbt->device_sectors)
			return -EINVAL;
	}

	for (i = 0; i < count; i++) {
		spin_lock_irqsave(&cbt->lock, irqflags);
		bdsnap_cbt_store(cbt, ranges[i].sector,
				 ranges[i].sector + ranges[i].count);
		spin_unlock_irqrestore(&cbt->lock, irqflags);
		cond_resched();
	}
	return 0;
}
