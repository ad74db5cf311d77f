// SPDX-License-Identifier: GPL-2.0
/*
 * bdfilter: the generic block-layer filter (see include/bdfilter.h).
 *
 * Module life cycle: the registry first, then the hooks that feed it; torn
 * down in reverse order. Unloading while filters are attached cannot happen:
 * each filter holds a reference on its owner module, which depends on this
 * one.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

#include "filter.h"

static int __init bdfilter_init(void)
{
	int ret;

	ret = bdfilter_registry_init();
	if (ret)
		return ret;
	ret = bdfilter_hooks_init();
	if (ret)
		goto err_registry;
	pr_info("loaded (hooks on submit_bio_noacct, del_gendisk)\n");
	return 0;

err_registry:
	bdfilter_registry_exit();
	return ret;
}

static void __exit bdfilter_exit(void)
{
	bdfilter_hooks_exit();
	bdfilter_registry_exit();
	pr_info("unloaded\n");
}

module_init(bdfilter_init);
module_exit(bdfilter_exit);

MODULE_DESCRIPTION("Generic block-layer filter: intercepts bios of chosen block devices");
MODULE_LICENSE("GPL");
