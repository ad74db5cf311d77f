// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: block device snapshots and changed block tracking.
 *
 * Module life cycle: set up each subsystem in order on load, tear them down
 * in reverse order on unload.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <uapi/linux/bdsnap.h>

#include "buffer.h"
#include "cbt.h"
#include "compat.h"
#include "cow.h"
#include "ctl.h"
#include "diff_storage.h"
#include "image.h"
#include "inflight.h"
#include "snapshot.h"
#include "tracker.h"

#define BDSNAP_VERSION_STRING __stringify(BDSNAP_VERSION_MAJOR) "." \
			      __stringify(BDSNAP_VERSION_MINOR) "." \
			      __stringify(BDSNAP_VERSION_PATCH)

/*
 * Extra diagnostics in the kernel log. Writable at run time through
 * /sys/module/bdsnap/parameters/debug, so a problem can be traced without
 * reloading the module.
 */
static bool debug;
module_param(debug, bool, 0644);
MODULE_PARM_DESC(debug, "Log extra diagnostics (default: off)");

/*
 * Changed-block tracking granularity. A tracked device is cut into blocks of
 * 2^shift bytes, one map byte each (two maps: live and read). The block size
 * is the smallest power of two from 2^tracking_block_min_shift on for which
 * the device has at most tracking_block_max_count blocks, but no more than
 * 2^tracking_block_max_shift; a device that needs more blocks even then
 * cannot be tracked (-EFBIG). With the defaults (64 KiB, 2^21 blocks, 64 MiB)
 * a device up to 128 GiB gets 64 KiB blocks, a 1 TiB device 512 KiB blocks
 * (2 x 2 MiB of maps), and devices up to 128 TiB can be tracked. Read only
 * after loading: trackers created with other values would not compare.
 */
unsigned int bdsnap_tracking_block_min_shift = 16;
module_param_named(tracking_block_min_shift, bdsnap_tracking_block_min_shift,
		   uint, 0444);
MODULE_PARM_DESC(tracking_block_min_shift,
		 "log2 of the smallest CBT block size in bytes, 9..31 (default: 16, 64 KiB)");

unsigned int bdsnap_tracking_block_max_shift = 26;
module_param_named(tracking_block_max_shift, bdsnap_tracking_block_max_shift,
		   uint, 0444);
MODULE_PARM_DESC(tracking_block_max_shift,
		 "log2 of the largest CBT block size in bytes, tracking_block_min_shift..31 (default: 26, 64 MiB)");

unsigned int bdsnap_tracking_block_max_count = 2097152;
module_param_named(tracking_block_max_count, bdsnap_tracking_block_max_count,
		   uint, 0444);
MODULE_PARM_DESC(tracking_block_max_count,
		 "Most CBT blocks (bytes per map) of one device, 1..2^31-1 (default: 2097152)");

unsigned int bdsnap_chunk_min_shift = 16;
module_param_named(chunk_min_shift, bdsnap_chunk_min_shift, uint, 0444);
MODULE_PARM_DESC(chunk_min_shift, "log2 of the smallest COW chunk in bytes (default: 16, 64 KiB)");
unsigned int bdsnap_chunk_max_shift = 24;
module_param_named(chunk_max_shift, bdsnap_chunk_max_shift, uint, 0444);
MODULE_PARM_DESC(chunk_max_shift, "log2 of the largest COW chunk in bytes (default: 24, 16 MiB)");
unsigned int bdsnap_chunk_max_count = 16777216;
module_param_named(chunk_max_count, bdsnap_chunk_max_count, uint, 0444);
MODULE_PARM_DESC(chunk_max_count, "Most COW chunks of one device (default: 2^24)");

/*
 * Kernel memory for the chunk maps of all snapshots: a record per copied
 * chunk (about 100 bytes) and the index nodes holding them, about 1.6 MiB
 * per GiB of difference storage at 64 KiB chunks (more for sparse random
 * first writes, whose records share index nodes less). A snapshot whose
 * next record would pass the cap is corrupted with EDQUOT (an event says
 * so) and its writes pass. 0 means an eighth of RAM (at load, that value
 * is shown here instead); it may be changed at run time.
 */
unsigned int bdsnap_chunk_memory_max_mib;
module_param_named(chunk_memory_max_mib, bdsnap_chunk_memory_max_mib, uint,
		   0644);
MODULE_PARM_DESC(chunk_memory_max_mib,
		 "Most MiB of chunk maps of all snapshots (default 0: an eighth of RAM)");

/*
 * How long a take waits for the writes that had passed the filter before
 * its switch (held by a stacked driver, say) before it gives up with
 * ETIMEDOUT, leaving the snapshot untaken. Writes after the switch wait
 * with it (held, not failed).
 */
unsigned int bdsnap_take_wait_ms = 30000;
module_param_named(take_wait_ms, bdsnap_take_wait_ms, uint, 0644);
MODULE_PARM_DESC(take_wait_ms,
		 "Most milliseconds a take waits for the writes in flight at its switch (default: 30000)");

/*
 * Test knob for the forward-progress scenario: every copy runs on the one
 * preallocated reserve buffer, as when memory cannot be had without
 * reclaim. Copies are then serialised, and slower.
 */
bool bdsnap_force_copy_reserve;
module_param_named(force_copy_reserve, bdsnap_force_copy_reserve, bool, 0644);
MODULE_PARM_DESC(force_copy_reserve,
		 "Testing: every copy uses the preallocated reserve buffer (default: off)");

static int __init bdsnap_init(void)
{
	int ret;

	ret = bdsnap_cbt_check_params();
	if (ret)
		return ret;
	ret = bdsnap_cow_check_params();
	if (ret)
		return ret;
	ret = bdsnap_inflight_init_module();
	if (ret)
		return ret;
	ret = bdsnap_tracker_init_module();
	if (ret)
		goto err_inflight;
	ret = bdsnap_cow_init_module();
	if (ret)
		goto err_tracker;
	ret = bdsnap_diff_storage_init_module();
	if (ret)
		goto err_cow;
	ret = bdsnap_image_init_module();
	if (ret)
		goto err_storage;
	ret = bdsnap_snapshot_init_module();
	if (ret)
		goto err_image;

	/* Last: once the control device exists, user space can call in. */
	ret = bdsnap_ctl_init();
	if (ret)
		goto err_snapshot;

	pr_info("version %s loaded (chunk maps up to %u MiB)\n",
		BDSNAP_VERSION_STRING, bdsnap_chunk_memory_max_mib);
	if (debug)
		pr_info("debug logging on\n");
	return 0;

err_snapshot:
	bdsnap_snapshot_exit_module();
err_image:
	bdsnap_image_exit_module();
err_storage:
	bdsnap_diff_storage_exit_module();
err_cow:
	bdsnap_cow_exit_module();
err_tracker:
	bdsnap_tracker_exit();
err_inflight:
	bdsnap_inflight_exit_module();
	return ret;
}

static void __exit bdsnap_exit(void)
{
	bdsnap_ctl_exit();
	bdsnap_snapshot_exit_module();
	bdsnap_image_exit_module();
	bdsnap_diff_storage_exit_module();
	bdsnap_cow_exit_module();
	bdsnap_tracker_exit();
	bdsnap_inflight_exit_module();
	pr_info("unloaded\n");
}

module_init(bdsnap_init);
module_exit(bdsnap_exit);

MODULE_DESCRIPTION("Block device snapshots and changed block tracking");
MODULE_LICENSE("GPL");
MODULE_VERSION(BDSNAP_VERSION_STRING);
