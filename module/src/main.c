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

#include "compat.h"
#include "ctl.h"

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

static int __init bdsnap_init(void)
{
	int ret;

	ret = bdsnap_ctl_init();
	if (ret)
		return ret;

	pr_info("version %s loaded\n", BDSNAP_VERSION_STRING);
	if (debug)
		pr_info("debug logging on\n");
	return 0;
}

static void __exit bdsnap_exit(void)
{
	bdsnap_ctl_exit();
	pr_info("unloaded\n");
}

module_init(bdsnap_init);
module_exit(bdsnap_exit);

MODULE_DESCRIPTION("Block device snapshots and changed block tracking");
MODULE_LICENSE("GPL");
MODULE_VERSION(BDSNAP_VERSION_STRING);
