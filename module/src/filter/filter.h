/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bdfilter.ko internals shared by its files: the registry of attached
 * filters (registry.c) and the ftrace hooks that feed it (hook.c).
 */
#ifndef BDFILTER_FILTER_H
#define BDFILTER_FILTER_H

#include <linux/list.h>
#include <linux/srcu.h>
#include <bdfilter.h>

/*
 * A detach or a disk removal in progress, on its caller's stack, listed
 * while it runs so that others can wait for it or stay away from its disk.
 * Exactly one of @flt and @disk is set.
 */
struct bdfilter_op {
	struct list_head node;
	const struct bdfilter *flt;	/* this filter's ->detached() pending */
	const struct gendisk *disk;	/* this disk is being deleted */
};

/* registry.c */
int bdfilter_registry_init(void);
void bdfilter_registry_exit(void);
enum bdfilter_result bdfilter_filter_bio(struct bio *bio);
enum bdfilter_result bdfilter_filter_bio_after(const struct bdfilter *after,
					       struct bio *bio);
void bdfilter_removal_begin(struct bdfilter_op *removal, struct gendisk *disk);
void bdfilter_removal_end(struct bdfilter_op *removal);

/* hook.c */
int bdfilter_hooks_init(void);
void bdfilter_hooks_exit(void);

#endif /* BDFILTER_FILTER_H */
