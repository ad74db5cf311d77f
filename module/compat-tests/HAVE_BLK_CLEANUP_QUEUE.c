// SPDX-License-Identifier: GPL-2.0
/* blk_cleanup_queue() (until 5.19): a bio-based disk's queue is freed by it */
#include <linux/blkdev.h>

void (*const bdsnap_compat_fn)(struct request_queue *q) = blk_cleanup_queue;
