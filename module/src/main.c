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

#include "cbt.h"
#include "cow.h"
#include "diff_storage.h"
#include "image.h"
#include "snapshot.h"
#include "compat.h"
#include "ctl.h"
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

static int __init bdsnap_init(void)
{
	int ret;

	ret = bdsnap_cbt_check_params();
	if (ret)
		return ret;
	ret = bdsnap_cow_check_params();
	if (ret)
		return ret;
	ret = bdsnap_cow_init_module();
	if (ret)
		return ret;
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

	pr_info("version %s loaded\n", BDSNAP_VERSION_STRING);
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
	return ret;
}

static void __exit bdsnap_exit(void)
{
	bdsnap_ctl_exit();
	bdsnap_tracker_exit();
	bdsnap_snapshot_exit_module();
	bdsnap_image_exit_module();
	bdsnap_diff_storage_exit_module();
	bdsnap_cow_exit_module();
	pr_info("unloaded\n");
}

module_init(bdsnap_init);
module_exit(bdsnap_exit);

MODULE_DESCRIPTION("Block device snapshots and changed block tracking");
MODULE_LICENSE("GPL");
MODULE_VERSION(BDSNAP_VERSION_STRING);
