// SPDX-License-Identifier: GPL-2.0
/*
 * Control device /dev/bdsnap-ctl.
 *
 * User space talks to the module only through ioctls on this misc device;
 * their numbers and structures live in the UAPI header <linux/bdsnap.h>.
 * Every command requires CAP_SYS_ADMIN: the device node is 0600, but a root
 * process may have dropped the capability after opening it, so the check is
 * made per command and not at open time.
 *
 * All handlers run in process context and may sleep.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <uapi/linux/bdsnap.h>

#include "compat.h"
#include "ctl.h"

/* True when all @len bytes at @buf are zero. */
static bool bdsnap_ctl_all_zero(const void *buf, size_t len)
{
	return !memchr_inv(buf, 0, len);
}

static long bdsnap_ctl_version(struct bdsnap_version __user *uarg)
{
	struct bdsnap_version ver;

	if (copy_from_user(&ver, uarg, sizeof(ver)))
		return -EFAULT;

	/* Everything but @size is output only and must be zero on input. */
	if (ver.size != sizeof(ver) || ver.major || ver.minor || ver.patch ||
	    ver.reserved0 || ver.flags ||
	    !bdsnap_ctl_all_zero(ver.reserved, sizeof(ver.reserved)))
		return -EINVAL;

	ver.major = BDSNAP_VERSION_MAJOR;
	ver.minor = BDSNAP_VERSION_MINOR;
	ver.patch = BDSNAP_VERSION_PATCH;

	if (copy_to_user(uarg, &ver, sizeof(ver)))
		return -EFAULT;
	return 0;
}

static long bdsnap_ctl_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case BDSNAP_IOCTL_VERSION:
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		return bdsnap_ctl_version(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations bdsnap_ctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = bdsnap_ctl_ioctl,
	/* Structures have the same layout for 32-bit callers. */
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice bdsnap_ctl_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = BDSNAP_CTL_NAME,
	.fops = &bdsnap_ctl_fops,
	.mode = 0600,
};

int bdsnap_ctl_init(void)
{
	int ret;

	/* The ABI promises this size; a changed layout needs a new ioctl. */
	BUILD_BUG_ON(sizeof(struct bdsnap_version) != 64);

	ret = misc_register(&bdsnap_ctl_dev);
	if (ret)
		pr_err("cannot register /dev/%s: %d\n", BDSNAP_CTL_NAME, ret);
	return ret;
}

void bdsnap_ctl_exit(void)
{
	misc_deregister(&bdsnap_ctl_dev);
}
