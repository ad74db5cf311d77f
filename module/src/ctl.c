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
 * All handlers run in process context and may sleep. Each one checks its
 * whole input (size, flags, reserved fields, device numbers, counts and
 * lengths, with overflow checks) before it allocates or touches a tracker;
 * a tracker is used only through a reference (bdsnap_tracker_get()), never
 * while holding a lock across a user copy that the I/O path could need.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <uapi/linux/bdsnap.h>

#include "cbt.h"
#include "compat.h"
#include "ctl.h"
#include "tracker.h"

/* True when all @len bytes at @buf are zero. */
static bool bdsnap_ctl_all_zero(const void *buf, size_t len)
{
	return !memchr_inv(buf, 0, len);
}

/*
 * Copy a command structure of @size bytes in. Its first member, @size, must
 * equal @size: checked before the rest is read, so that a caller built
 * against another layout gets -EINVAL rather than -EFAULT, and checked again
 * in the copy, which user space may have changed meanwhile.
 */
static int bdsnap_ctl_copy_in(void *karg, const void __user *uarg, u32 size)
{
	u32 usize;

	if (get_user(usize, (const u32 __user *)uarg))
		return -EFAULT;
	if (usize != size)
		return -EINVAL;
	if (copy_from_user(karg, uarg, size))
		return -EFAULT;
	if (*(u32 *)karg != size)
		return -EINVAL;
	return 0;
}

/*
 * The device numbered @id, or false when the numbers do not fit a dev_t
 * (then no such device can exist).
 */
static bool bdsnap_ctl_devt(const struct bdsnap_dev_id *id, dev_t *dev)
{
	*dev = MKDEV(id->major, id->minor);
	return MAJOR(*dev) == id->major && MINOR(*dev) == id->minor;
}

static long bdsnap_ctl_version(struct bdsnap_version __user *uarg)
{
	struct bdsnap_version ver;
	int ret;

	ret = bdsnap_ctl_copy_in(&ver, uarg, sizeof(ver));
	if (ret)
		return ret;

	/* Everything but @size is output only and must be zero on input. */
	if (ver.major || ver.minor || ver.patch || ver.reserved0 || ver.flags ||
	    !bdsnap_ctl_all_zero(ver.reserved, sizeof(ver.reserved)))
		return -EINVAL;

	ver.major = BDSNAP_VERSION_MAJOR;
	ver.minor = BDSNAP_VERSION_MINOR;
	ver.patch = BDSNAP_VERSION_PATCH;

	if (copy_to_user(uarg, &ver, sizeof(ver)))
		return -EFAULT;
	return 0;
}

/* TRACKER_ATTACH (@attach) and TRACKER_DETACH. */
static long bdsnap_ctl_tracker(struct bdsnap_tracker_ctl __user *uarg,
			       bool attach)
{
	struct bdsnap_tracker_ctl ctl;
	dev_t dev;
	int ret;

	ret = bdsnap_ctl_copy_in(&ctl, uarg, sizeof(ctl));
	if (ret)
		return ret;
	if (ctl.flags || !bdsnap_ctl_all_zero(ctl.reserved, sizeof(ctl.reserved)))
		return -EINVAL;
	if (!bdsnap_ctl_devt(&ctl.dev, &dev))
		return attach ? -ENODEV : -ENOENT;

	return attach ? bdsnap_tracker_attach(dev) : bdsnap_tracker_detach(dev);
}

static long bdsnap_ctl_tracker_list(struct bdsnap_tracker_list __user *uarg)
{
	struct bdsnap_tracker_list list;
	struct bdsnap_dev_id *ids = NULL;
	u32 room, total;
	int ret;

	ret = bdsnap_ctl_copy_in(&list, uarg, sizeof(list));
	if (ret)
		return ret;
	if (!bdsnap_ctl_all_zero(list.reserved, sizeof(list.reserved)))
		return -EINVAL;

	/*
	 * Never allocate for more entries than there are trackers, whatever
	 * @count says; a tracker attached meanwhile is counted, not listed.
	 */
	room = min(list.count, bdsnap_tracker_count());
	if (room) {
		ids = kvmalloc_array(room, sizeof(*ids), GFP_KERNEL);
		if (!ids)
			return -ENOMEM;
	}
	total = bdsnap_tracker_list(ids, room);
	room = min(room, total);

	if (room && copy_to_user(u64_to_user_ptr(list.devs), ids,
				 array_size(room, sizeof(*ids)))) {
		ret = -EFAULT;
		goto out_free;
	}
	list.count = total;
	if (copy_to_user(uarg, &list, sizeof(list)))
		ret = -EFAULT;
out_free:
	kvfree(ids);
	return ret;
}

static long bdsnap_ctl_cbt_info(struct bdsnap_cbt_info __user *uarg)
{
	struct bdsnap_tracker *tracker;
	struct bdsnap_cbt_info info;
	dev_t dev;
	int ret;

	ret = bdsnap_ctl_copy_in(&info, uarg, sizeof(info));
	if (ret)
		return ret;
	if (info.flags ||
	    !bdsnap_ctl_all_zero(info.reserved0, sizeof(info.reserved0)) ||
	    !bdsnap_ctl_all_zero(info.reserved, sizeof(info.reserved)))
		return -EINVAL;
	if (!bdsnap_ctl_devt(&info.dev, &dev))
		return -ENOENT;

	tracker = bdsnap_tracker_get(dev);
	if (!tracker)
		return -ENOENT;
	bdsnap_cbt_get_info(tracker->cbt, &info);
	bdsnap_tracker_put(tracker);

	if (copy_to_user(uarg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static long bdsnap_ctl_cbt_read(struct bdsnap_cbt_read __user *uarg)
{
	struct bdsnap_tracker *tracker;
	struct bdsnap_cbt_read rd;
	u32 block_count;
	dev_t dev;
	int ret;

	ret = bdsnap_ctl_copy_in(&rd, uarg, sizeof(rd));
	if (ret)
		return ret;
	if ((rd.flags & ~BDSNAP_CBT_READ_LIVE) || rd.reserved0 ||
	    !bdsnap_ctl_all_zero(rd.reserved, sizeof(rd.reserved)))
		return -EINVAL;
	if (!bdsnap_ctl_devt(&rd.dev, &dev))
		return -ENOENT;

	/* The reference keeps the map alive, even if the tracker detaches. */
	tracker = bdsnap_tracker_get(dev);
	if (!tracker)
		return -ENOENT;
	block_count = tracker->cbt->block_count;
	if (rd.offset > block_count || rd.length > block_count - rd.offset)
		ret = -EINVAL;
	else if (rd.length)
		ret = bdsnap_cbt_copy_to_user(tracker->cbt,
					      rd.flags & BDSNAP_CBT_READ_LIVE,
					      rd.offset, rd.length,
					      u64_to_user_ptr(rd.buf));
	bdsnap_tracker_put(tracker);
	return ret;
}

static long bdsnap_ctl_cbt_mark_dirty(struct bdsnap_cbt_mark_dirty __user *uarg)
{
	struct bdsnap_sector_range *ranges;
	struct bdsnap_cbt_mark_dirty md;
	struct bdsnap_tracker *tracker;
	dev_t dev;
	int ret;

	ret = bdsnap_ctl_copy_in(&md, uarg, sizeof(md));
	if (ret)
		return ret;
	if (md.flags || md.reserved0 ||
	    !bdsnap_ctl_all_zero(md.reserved, sizeof(md.reserved)) ||
	    !md.count || md.count > BDSNAP_MARK_DIRTY_MAX)
		return -EINVAL;
	if (!bdsnap_ctl_devt(&md.dev, &dev))
		return -ENOENT;

	/* At most BDSNAP_MARK_DIRTY_MAX * 16 bytes: 1 MiB. */
	ranges = kvmalloc_array(md.count, sizeof(*ranges), GFP_KERNEL);
	if (!ranges)
		return -ENOMEM;
	if (copy_from_user(ranges, u64_to_user_ptr(md.ranges),
			   array_size(md.count, sizeof(*ranges)))) {
		ret = -EFAULT;
		goto out_free;
	}

	tracker = bdsnap_tracker_get(dev);
	if (!tracker) {
		ret = -ENOENT;
		goto out_free;
	}
	ret = bdsnap_cbt_mark_ranges(tracker->cbt, ranges, md.count);
	bdsnap_tracker_put(tracker);
out_free:
	kvfree(ranges);
	return ret;
}

static long bdsnap_ctl_dispatch(unsigned int cmd, void __user *uarg)
{
	switch (cmd) {
	case BDSNAP_IOCTL_VERSION:
		return bdsnap_ctl_version(uarg);
	case BDSNAP_IOCTL_TRACKER_ATTACH:
		return bdsnap_ctl_tracker(uarg, true);
	case BDSNAP_IOCTL_TRACKER_DETACH:
		return bdsnap_ctl_tracker(uarg, false);
	case BDSNAP_IOCTL_TRACKER_LIST:
		return bdsnap_ctl_tracker_list(uarg);
	case BDSNAP_IOCTL_CBT_INFO:
		return bdsnap_ctl_cbt_info(uarg);
	case BDSNAP_IOCTL_CBT_READ:
		return bdsnap_ctl_cbt_read(uarg);
	case BDSNAP_IOCTL_CBT_MARK_DIRTY:
		return bdsnap_ctl_cbt_mark_dirty(uarg);
	default:
		return -ENOTTY;
	}
}

static long bdsnap_ctl_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	/* An unknown command is -ENOTTY for everyone, a known one needs root. */
	switch (cmd) {
	case BDSNAP_IOCTL_VERSION:
	case BDSNAP_IOCTL_TRACKER_ATTACH:
	case BDSNAP_IOCTL_TRACKER_DETACH:
	case BDSNAP_IOCTL_TRACKER_LIST:
	case BDSNAP_IOCTL_CBT_INFO:
	case BDSNAP_IOCTL_CBT_READ:
	case BDSNAP_IOCTL_CBT_MARK_DIRTY:
		break;
	default:
		return -ENOTTY;
	}
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	return bdsnap_ctl_dispatch(cmd, (void __user *)arg);
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
	BUILD_BUG_ON(sizeof(struct bdsnap_tracker_ctl) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_tracker_list) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_cbt_info) != 96);
	BUILD_BUG_ON(sizeof(struct bdsnap_cbt_read) != 72);
	BUILD_BUG_ON(sizeof(struct bdsnap_sector_range) != 16);
	BUILD_BUG_ON(sizeof(struct bdsnap_cbt_mark_dirty) != 64);

	ret = misc_register(&bdsnap_ctl_dev);
	if (ret)
		pr_err("cannot register /dev/%s: %d\n", BDSNAP_CTL_NAME, ret);
	return ret;
}

void bdsnap_ctl_exit(void)
{
	misc_deregister(&bdsnap_ctl_dev);
}
