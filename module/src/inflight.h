/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Writes in flight on a tracked device: counted from the moment they pass
 * the tracker's hook until the device completes them, in two epochs, so that
 * a snapshot's take can wait for exactly the writes that passed before its
 * switch while later ones keep coming.
 */
#ifndef BDSNAP_INFLIGHT_H
#define BDSNAP_INFLIGHT_H

#include <linux/atomic.h>
#include <linux/types.h>
#include <linux/wait.h>

struct bio;

struct bdsnap_inflight {
	/*
	 * Writes in flight per epoch. A write is counted in the epoch that
	 * was current when it passed the hook (chosen under the CBT map's
	 * lock, the lock a switch flips the epoch under).
	 */
	atomic_t count[2];
	/* The current epoch, 0 or 1: written under the CBT map's lock. */
	unsigned int epoch;
	/* Woken whenever an epoch's count falls to zero. */
	wait_queue_head_t idle;
};

/* Module-wide: the context cache and pool. Process context. */
int bdsnap_inflight_init_module(void);
void bdsnap_inflight_exit_module(void);

void bdsnap_inflight_init(struct bdsnap_inflight *fl);

/*
 * Count @bio in the current epoch until it completes: its completion is
 * routed through a small context (allocated without waiting). Call under
 * the lock that serialises with bdsnap_inflight_flip(). Any context, never
 * sleeps. Returns false, counting nothing, when no context could be had.
 */
bool bdsnap_inflight_track(struct bdsnap_inflight *fl, struct bio *bio);

/*
 * Start a new epoch (under the same lock as bdsnap_inflight_track()).
 * Returns the writes in flight in the epoch that ended.
 */
u32 bdsnap_inflight_flip(struct bdsnap_inflight *fl);

/*
 * Wait, at most @timeout jiffies, until the epoch that is not current has
 * no write in flight: before a flip, the one the flip will start again
 * (normally empty long since); after a flip, the one that just ended.
 * Only a take flips, so the epoch is stable here. Returns the jiffies left
 * (at least 1) or 0 on timeout. Process context, sleeps.
 */
long bdsnap_inflight_wait_other(struct bdsnap_inflight *fl, long timeout);

/* Whether any write is in flight in either epoch. Any context. */
bool bdsnap_inflight_busy(struct bdsnap_inflight *fl);

#endif /* BDSNAP_INFLIGHT_H */
