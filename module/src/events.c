// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot events.
 *
 * Each snapshot embeds a fixed ring of BDSNAP_EVENT_QUEUE_LEN entries, so
 * posting an event needs no memory: the I/O path (storage exhausted, a copy
 * failed) can report without a way to fail. A full ring drops its oldest
 * entry; the next reader first gets a BDSNAP_EVENT_OVERFLOW event so that
 * user space knows it missed some.
 *
 * Locking: q->lock (spinlock, irqsave) is the innermost lock of bdsnap;
 * nothing else is taken under it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/kdev_t.h>
#include <linux/sched/signal.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/wait.h>
#include <uapi/linux/bdsnap.h>

#include "events.h"

void bdsnap_events_init(struct bdsnap_event_queue *q)
{
	spin_lock_init(&q->lock);
	init_waitqueue_head(&q->wait);
	q->head = 0;
	q->count = 0;
	q->overflow = false;
	q->closed = false;
}

void bdsnap_events_post(struct bdsnap_event_queue *q,
			const struct bdsnap_event_entry *e)
{
	struct bdsnap_event_entry *slot;
	unsigned long irqflags;

	spin_lock_irqsave(&q->lock, irqflags);
	if (q->closed) {
		spin_unlock_irqrestore(&q->lock, irqflags);
		return;
	}
	if (q->count == BDSNAP_EVENT_QUEUE_LEN) {
		q->head = (q->head + 1) % BDSNAP_EVENT_QUEUE_LEN;
		q->count--;
		q->overflow = true;
	}
	slot = &q->ring[(q->head + q->count) % BDSNAP_EVENT_QUEUE_LEN];
	*slot = *e;
	slot->time_ns = ktime_get_boottime_ns();
	q->count++;
	spin_unlock_irqrestore(&q->lock, irqflags);
	wake_up_all(&q->wait);
}

/* Whether a waiter has something to return. Takes q->lock. */
static bool bdsnap_events_ready(struct bdsnap_event_queue *q)
{
	unsigned long irqflags;
	bool ready;

	spin_lock_irqsave(&q->lock, irqflags);
	ready = q->count || q->overflow || q->closed;
	spin_unlock_irqrestore(&q->lock, irqflags);
	return ready;
}

/* Fill the output fields of @out from @e. */
static void bdsnap_events_fill(struct bdsnap_event *out,
			       const struct bdsnap_event_entry *e)
{
	out->code = e->code;
	out->time_ns = e->time_ns;
	out->dev.major = MAJOR(e->dev);
	out->dev.minor = MINOR(e->dev);
	out->error = e->error;
	out->used = e->used;
	out->total = e->total;
	out->limit = e->limit;
}

int bdsnap_events_wait(struct bdsnap_event_queue *q, u32 timeout_ms,
		       struct bdsnap_event *out)
{
	struct bdsnap_event_entry e = { .code = BDSNAP_EVENT_NONE };
	unsigned long irqflags;
	long left;

	if (timeout_ms) {
		unsigned long jiffies_left = msecs_to_jiffies(timeout_ms);

		left = wait_event_interruptible_timeout(q->wait,
							bdsnap_events_ready(q),
							jiffies_left);
		if (left < 0)
			return -EINTR;
	}

	spin_lock_irqsave(&q->lock, irqflags);
	if (q->overflow) {
		/* Reported before the entries that survived it. */
		q->overflow = false;
		e.code = BDSNAP_EVENT_OVERFLOW;
		e.time_ns = ktime_get_boottime_ns();
	} else if (q->count) {
		e = q->ring[q->head];
		q->head = (q->head + 1) % BDSNAP_EVENT_QUEUE_LEN;
		q->count--;
	} else if (q->closed) {
		spin_unlock_irqrestore(&q->lock, irqflags);
		return -ENOENT;
	}
	spin_unlock_irqrestore(&q->lock, irqflags);

	bdsnap_events_fill(out, &e);
	return 0;
}

void bdsnap_events_close(struct bdsnap_event_queue *q)
{
	unsigned long irqflags;

	spin_lock_irqsave(&q->lock, irqflags);
	q->closed = true;
	spin_unlock_irqrestore(&q->lock, irqflags);
	wake_up_all(&q->wait);
}
