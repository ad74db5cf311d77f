/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshot images: one block device per device of a taken snapshot,
 * /dev/bdsnap-imageN, showing the device as it was at the take. Reads come
 * from the difference storage for chunks copied since, from the original
 * device otherwise; writes go to the difference storage only.
 */
#ifndef BDSNAP_IMAGE_H
#define BDSNAP_IMAGE_H

#include <linux/atomic.h>
#include <linux/types.h>
#include <linux/wait.h>

struct bdsnap_cow;
struct bdsnap_snapshot;
struct gendisk;

struct bdsnap_image {
	struct gendisk *disk;
	/* Referenced: the chunk map and, through it, snapshot and storage. */
	struct bdsnap_cow *cow;
	int index;			/* N of bdsnap-imageN, the minor */
	bool added;			/* add_disk() succeeded */
	/* Set by bdsnap_image_kill(): every I/O fails with EIO. */
	bool dead;
	/* Image bios accepted and not yet ended; @idle woken at zero. */
	atomic_t inflight;
	wait_queue_head_t idle;
};

/* Module-wide: the block major, the index allocator, the workqueue. */
int bdsnap_image_init_module(void);
void bdsnap_image_exit_module(void);

/*
 * Allocate the image of @cow's device (the disk is not visible yet).
 * Process context, sleeps. Returns the image or an ERR_PTR.
 */
struct bdsnap_image *bdsnap_image_alloc(struct bdsnap_snapshot *snap,
					struct bdsnap_cow *cow);

/* Make the disk visible (add_disk). Process context, sleeps. */
int bdsnap_image_add(struct bdsnap_image *image);

/* Fail every I/O from now on. Any context; never sleeps. */
void bdsnap_image_kill(struct bdsnap_image *image);

/*
 * Remove the disk, wait for the I/O in flight, free everything. The image
 * must have been killed. Process context, sleeps.
 */
void bdsnap_image_destroy(struct bdsnap_image *image);

/* The image's device number (0 before bdsnap_image_add()). */
dev_t bdsnap_image_devt(struct bdsnap_image *image);

/* Whether @dev is a snapshot image (of any snapshot). Any context. */
bool bdsnap_image_dev(dev_t dev);

#endif /* BDSNAP_IMAGE_H */
