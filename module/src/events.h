/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshot events: a bounded queue per snapshot that user space drains with
 * BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT.
 */
#ifndef BDSNAP_EVENTS_H
#define BDSNAP_EVENTS_H

#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>

struct bdsnap_event;

/* Events kept per snapshot before the oldest are dropped. */
#define BDSNAP_EVENT_QUEUE_LEN	64

/* One queued event: the output fields of struct bdsnap_event. */
struct bdsnap_event_entry {
	u32 code;		/* enum bdsnap_event_code */
	u32 error;		/* positive errno, or 0 */
	dev_t dev;		/* device concerned, or 0 */
	u64 time_ns;		/* ktime_get_boottime_ns() when posted */
	u64 used;		/* storage bytes used when posted */
	u64 total;		/* storage bytes available when posted */
	u64 limit;		/* storage growth limit */
};

struct bdsnap_event_queue {
	/* Protects everything below. Any context: taken with irqsave. */
	spinlock_t lock;
	wait_queue_head_t wait;
	unsigned int head;	/* index of the oldest entry */
	unsigned int count;	/* entries queued */
	bool overflow;		/* entries were dropped since the last read */
	bool closed;		/* the snapshot is being destroyed */
	struct bdsnap_event_entry ring[BDSNAP_EVENT_QUEUE_LEN];
};

/* Initialise an embedded queue. Any context. */
void bdsnap_events_init(struct bdsnap_event_queue *q);

/*
 * Queue @e (its time_ns is filled in here) and wake the waiters. Never
 * sleeps, never allocates: callable from any context, also from the I/O
 * path. A full queue drops its oldest entry and remembers the overflow.
 */
void bdsnap_events_post(struct bdsnap_event_queue *q,
			const struct bdsnap_event_entry *e);

/*
 * Take the oldest event into @out's output fields, waiting up to
 * @timeout_ms for one. Process context, sleeps. Returns 0 (with @out->code
 * BDSNAP_EVENT_NONE when the time ran out), -EINTR (signal) or -ENOENT
 * (the queue was closed: the snapshot is being destroyed).
 */
int bdsnap_events_wait(struct bdsnap_event_queue *q, u32 timeout_ms,
		       struct bdsnap_event *out);

/* Close the queue and wake every waiter (destroy). Any context. */
void bdsnap_events_close(struct bdsnap_event_queue *q);

#endif /* BDSNAP_EVENTS_H */
