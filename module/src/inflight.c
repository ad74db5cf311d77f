// SPDX-License-Identifier: GPL-2.0
/*
 * Writes in flight.
 *
 * Why: a write that passed the hook before a snapshot's switch, but reaches
 * the device after a copy of its chunk read the old data, would be in
 * neither the image nor (its CBT mark being in the old generation) the next
 * incremental backup. So a take waits, after the switch and before the
 * first copy, for every write counted before it. A stacked driver (dm-delay,
 * a RAID resync, a multipath queue) can hold such a write for long after it
 * passed us, which freezing a filesystem does not cover (raw writers), nor
 * waiting for the disk's request queue (a bio-based driver has no requests).
 *
 * How: every data-changing bio of a tracked device gets its completion
 * routed through a small context (bi_end_io and bi_private saved, restored
 * at completion, then the saved end_io called directly, exactly what
 * bio_endio() would have done next). The context names the epoch counter
 * the bio was counted in. Calling bio_endio() a second time instead would
 * run rq_qos_done_bio() twice (io.latency and io.cost accounting). A saved
 * end_io that is the block layer's chain completion is not called but
 * open-coded: since 7.2 that function only marks chained bios and BUG()s if
 * called; its address is learnt at load from bio_chain() itself.
 *
 * Lifetime: the counters are embedded in their tracker, whose free waits
 * for both to reach zero and then frees it after an RCU grace period: a
 * completion decrements and wakes inside rcu_read_lock(). The tracker pins
 * the module until it is freed, so no completion can outlive this code.
 *
 * Contexts: track() runs in the submitter's context under a spinlock
 * (GFP_NOWAIT: a mempool reserve, then nothing); completions in any
 * context; waits in process context.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/mempool.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/wait.h>

#include "compat.h"
#include "inflight.h"

/* Contexts kept in reserve: one per write of a few deep queues. */
#define BDSNAP_INFLIGHT_POOL_MIN	256

struct bdsnap_inflight_ctx {
	bio_end_io_t *end_io;
	void *private;
	struct bdsnap_inflight *fl;
	atomic_t *count;
};

static struct kmem_cache *bdsnap_inflight_cache;
static mempool_t *bdsnap_inflight_pool;
/* The block layer's bio_chain_endio(), static in block/bio.c. */
static bio_end_io_t *bdsnap_chain_endio;

void bdsnap_inflight_init(struct bdsnap_inflight *fl)
{
	atomic_set(&fl->count[0], 0);
	atomic_set(&fl->count[1], 0);
	fl->epoch = 0;
	init_waitqueue_head(&fl->idle);
}

/* Any context. */
static void bdsnap_inflight_end_io(struct bio *bio)
{
	struct bdsnap_inflight_ctx *ctx = bio->bi_private;
	struct bdsnap_inflight *fl = ctx->fl;
	atomic_t *count = ctx->count;

	bio->bi_end_io = ctx->end_io;
	bio->bi_private = ctx->private;
	mempool_free(ctx, bdsnap_inflight_pool);

	/* Pairs with the free of the counters' owner (see the top). */
	rcu_read_lock();
	if (atomic_dec_and_test(count))
		wake_up_all(&fl->idle);
	rcu_read_unlock();

	if (bio->bi_end_io == bdsnap_chain_endio) {
		/* What the chain completion does, without calling it. */
		struct bio *parent = bio->bi_private;

		if (bio->bi_status && !parent->bi_status)
			parent->bi_status = bio->bi_status;
		bio_put(bio);
		bio_endio(parent);
	} else if (bio->bi_end_io) {
		bio->bi_end_io(bio);
	}
}

bool bdsnap_inflight_track(struct bdsnap_inflight *fl, struct bio *bio)
{
	struct bdsnap_inflight_ctx *ctx;

	ctx = mempool_alloc(bdsnap_inflight_pool, GFP_NOWAIT | __GFP_NOWARN);
	if (!ctx)
		return false;
	ctx->end_io = bio->bi_end_io;
	ctx->private = bio->bi_private;
	ctx->fl = fl;
	ctx->count = &fl->count[fl->epoch];
	atomic_inc(ctx->count);
	bio->bi_private = ctx;
	bio->bi_end_io = bdsnap_inflight_end_io;
	return true;
}

u32 bdsnap_inflight_flip(struct bdsnap_inflight *fl)
{
	unsigned int old = fl->epoch;

	WRITE_ONCE(fl->epoch, old ^ 1);
	return atomic_read(&fl->count[old]);
}

long bdsnap_inflight_wait_other(struct bdsnap_inflight *fl, long timeout)
{
	atomic_t *count = &fl->count[READ_ONCE(fl->epoch) ^ 1];

	return wait_event_timeout(fl->idle, !atomic_read(count), timeout);
}

bool bdsnap_inflight_busy(struct bdsnap_inflight *fl)
{
	return atomic_read(&fl->count[0]) || atomic_read(&fl->count[1]);
}

int bdsnap_inflight_init_module(void)
{
	bdsnap_chain_endio = bdsnap_bio_chain_endio();
	bdsnap_inflight_cache = KMEM_CACHE(bdsnap_inflight_ctx, 0);
	if (!bdsnap_inflight_cache)
		return -ENOMEM;
	bdsnap_inflight_pool = mempool_create_slab_pool(BDSNAP_INFLIGHT_POOL_MIN,
							bdsnap_inflight_cache);
	if (!bdsnap_inflight_pool) {
		kmem_cache_destroy(bdsnap_inflight_cache);
		return -ENOMEM;
	}
	return 0;
}

void bdsnap_inflight_exit_module(void)
{
	mempool_destroy(bdsnap_inflight_pool);
	kmem_cache_destroy(bdsnap_inflight_cache);
}
