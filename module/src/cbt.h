/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Changed-block tracking (CBT) map of one tracked device.
 *
 * The device is cut into tracking blocks of 2^block_shift bytes. Each map
 * holds one byte per block: the snapshot generation (snap_number, 1..255)
 * that was current when the block was last written, 0 if it has not been
 * written since tracking began. The live map follows every write; the read
 * map is the copy the last bdsnap_cbt_switch() took, stable until the next.
 */
#ifndef BDSNAP_CBT_H
#define BDSNAP_CBT_H

#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uuid.h>

struct bdsnap_cbt_info;
struct bdsnap_sector_range;

/*
 * Tunables, defined and documented in main.c, checked by
 * bdsnap_cbt_check_params() at module load and read only afterwards.
 */
extern unsigned int bdsnap_tracking_block_min_shift;
extern unsigned int bdsnap_tracking_block_max_shift;
extern unsigned int bdsnap_tracking_block_max_count;

struct bdsnap_cbt {
	/*
	 * Serialises the readers of @read_map with bdsnap_cbt_switch(), which
	 * rewrites it. Never taken in the I/O path. Held only across copies
	 * between kernel buffers, never across a copy to user space: a take
	 * needs it while filesystems are frozen, and a user buffer may fault
	 * on one of them.
	 */
	struct mutex switch_lock;
	/* Switches so far, under @switch_lock: a reader's consistency check. */
	u64 switch_seq;
	/*
	 * Protects @snap_number, @generation_id, @state and the contents of
	 * both maps against concurrent writers. Taken with interrupts off:
	 * bios may be submitted from any context.
	 */
	spinlock_t lock;

	/* Fixed from creation on. */
	sector_t device_sectors;	/* size the maps cover */
	unsigned int block_shift;	/* log2 of the block size in bytes */
	u32 block_count;		/* bytes in each map */
	u8 *live_map;
	u8 *read_map;

	/* Under @lock. */
	u8 snap_number;
	uuid_t generation_id;
	u32 state;			/* BDSNAP_CBT_* */
};

/* Check the module parameters. Returns 0 or -EINVAL (and logs why). */
int bdsnap_cbt_check_params(void);

/*
 * Create the map of a device of @device_sectors sectors. Process context,
 * may sleep (GFP_KERNEL). Returns the map or an ERR_PTR: -ENOMEM, -EFBIG
 * (the device needs more than tracking_block_max_count blocks of the
 * largest block size), -EINVAL (empty device).
 */
struct bdsnap_cbt *bdsnap_cbt_create(sector_t device_sectors);

/* Free a map. Process context, may sleep. */
void bdsnap_cbt_destroy(struct bdsnap_cbt *cbt);

/*
 * The map's spinlock, for a caller that must decide more than the mark
 * atomically with a switch (the tracker's hook: whether a snapshot is
 * taken, which epoch a write is counted in). Any context; nothing under it
 * may sleep.
 */
static inline unsigned long bdsnap_cbt_lock(struct bdsnap_cbt *cbt)
	__acquires(&cbt->lock)
{
	unsigned long irqflags;

	spin_lock_irqsave(&cbt->lock, irqflags);
	return irqflags;
}

static inline void bdsnap_cbt_unlock(struct bdsnap_cbt *cbt,
				     unsigned long irqflags)
	__releases(&cbt->lock)
{
	spin_unlock_irqrestore(&cbt->lock, irqflags);
}

/*
 * Record a write of @nr_sectors sectors at @sector (relative to the device),
 * with the lock held. A write ending beyond the size the map covers sets
 * BDSNAP_CBT_RESIZED and changes the generation id; only the part within
 * the map is recorded. Returns true when this call did that (so the caller
 * can log it once). Never sleeps, never allocates.
 */
bool bdsnap_cbt_mark_locked(struct bdsnap_cbt *cbt, sector_t sector,
			    u64 nr_sectors);

/*
 * History was lost (a write could not be followed): change the generation
 * id, with the lock held, so that the next backup is a full one.
 */
void bdsnap_cbt_lose_history_locked(struct bdsnap_cbt *cbt);

/*
 * Start a new generation: copy the live map to the read map and increment
 * snap_number; past 255, clear both maps, restart at 1 and change the
 * generation id. @at_switch(@arg), if given, runs under the map's lock at
 * the same instant (a take starts copy-on-write there), so every write is
 * marked either before both or after both. Process context, may sleep.
 * Returns 0.
 */
int bdsnap_cbt_switch(struct bdsnap_cbt *cbt, void (*at_switch)(void *arg),
		      void *arg);

/* Fill the output fields of @info (not @size, @flags, @dev). May sleep. */
void bdsnap_cbt_get_info(struct bdsnap_cbt *cbt, struct bdsnap_cbt_info *info);

/*
 * Copy @length bytes of a map from block @offset on to user space. The
 * caller checked that the range lies within the map. The read map goes
 * through a kernel buffer in pieces: see struct bdsnap_cbt_read. Process
 * context, may sleep. Returns 0, -EFAULT, -ENOMEM, -EINTR (fatal signal)
 * or -EAGAIN (the read map was switched between two pieces).
 */
int bdsnap_cbt_copy_to_user(struct bdsnap_cbt *cbt, bool live, u64 offset,
			    u32 length, u8 __user *buf);

/*
 * Mark @count ranges dirty in the current generation after checking that
 * every one of them is non-empty and within the device: all or nothing.
 * Process context. Returns 0 or -EINVAL.
 */
int bdsnap_cbt_mark_ranges(struct bdsnap_cbt *cbt,
			   const struct bdsnap_sector_range *ranges, u32 count);

#endif /* BDSNAP_CBT_H */
