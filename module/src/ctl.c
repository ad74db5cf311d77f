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
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/err.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <uapi/linux/bdsnap.h>

#include "cbt.h"
#include "compat.h"
#include "ctl.h"
#include "snapshot.h"
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

/*
 * Serialises the commands that change who may be in a snapshot, and where
 * storage may be, with the checks each makes of the others' effects:
 * TRACKER_ATTACH and SNAPSHOT_ADD (a tracked partition next to its tracked
 * disk, see bdsnap_tracker_has_sibling()), TRACKER_DETACH and SNAPSHOT_ADD
 * (a snapshot must never take a device whose filter a detach is removing),
 * SNAPSHOT_CREATE and APPEND_STORAGE against SNAPSHOT_ADD (storage never
 * where a snapshot's filter sees its writes). Outermost lock of the module;
 * nothing that waits for it holds another lock.
 */
static DEFINE_MUTEX(bdsnap_ctl_member_lock);

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
	if ((ctl.flags & ~(attach ? BDSNAP_TRACKER_FILTER_ONLY : 0)) ||
	    !bdsnap_ctl_all_zero(ctl.reserved, sizeof(ctl.reserved)))
		return -EINVAL;
	if (!bdsnap_ctl_devt(&ctl.dev, &dev))
		return attach ? -ENODEV : -ENOENT;

	mutex_lock(&bdsnap_ctl_member_lock);
	if (attach)
		ret = bdsnap_tracker_attach(dev,
					    ctl.flags & BDSNAP_TRACKER_FILTER_ONLY);
	else
		ret = bdsnap_tracker_detach(dev);
	mutex_unlock(&bdsnap_ctl_member_lock);
	return ret;
}

/*
 * The common part of the LIST ioctls. @fill(buf, room) writes at most @room
 * entries of @elem bytes and returns how many there are in all (@buf may be
 * NULL when @room is 0). Never allocates for more entries than exist,
 * whatever @want says; an entry added meanwhile is counted, not listed.
 * Copies the entries to @ubuf; returns 0 or -errno, *@total the full count.
 */
static int bdsnap_ctl_list_out(u32 want, size_t elem,
			       u32 (*fill)(void *buf, u32 room), u64 ubuf,
			       u32 *total)
{
	u32 room = min(want, fill(NULL, 0));
	void *buf = NULL;
	int ret = 0;

	if (room) {
		buf = kvmalloc_array(room, elem, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}
	*total = fill(buf, room);
	room = min(room, *total);
	if (room && copy_to_user(u64_to_user_ptr(ubuf), buf,
				 array_size(room, elem)))
		ret = -EFAULT;
	kvfree(buf);
	return ret;
}

static u32 bdsnap_ctl_fill_trackers(void *buf, u32 room)
{
	return bdsnap_tracker_list(buf, room);
}

static long bdsnap_ctl_tracker_list(struct bdsnap_tracker_list __user *uarg)
{
	struct bdsnap_tracker_list list;
	u32 total;
	int ret;

	ret = bdsnap_ctl_copy_in(&list, uarg, sizeof(list));
	if (ret)
		return ret;
	if (!bdsnap_ctl_all_zero(list.reserved, sizeof(list.reserved)))
		return -EINVAL;

	ret = bdsnap_ctl_list_out(list.count, sizeof(struct bdsnap_dev_id),
				  bdsnap_ctl_fill_trackers, list.devs, &total);
	if (ret)
		return ret;
	list.count = total;
	if (copy_to_user(uarg, &list, sizeof(list)))
		return -EFAULT;
	return 0;
}

/*
 * The tracker of @dev with a reference, for a CBT ioctl: -ENOENT if @dev
 * is not tracked, -ENODATA if its tracker keeps no map (filter only).
 */
static int bdsnap_ctl_cbt_tracker(dev_t dev, struct bdsnap_tracker **out)
{
	struct bdsnap_tracker *tracker = bdsnap_tracker_get(dev);

	if (!tracker)
		return -ENOENT;
	if (!tracker->cbt) {
		bdsnap_tracker_put(tracker);
		return -ENODATA;
	}
	*out = tracker;
	return 0;
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

	ret = bdsnap_ctl_cbt_tracker(dev, &tracker);
	if (ret)
		return ret;
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
	ret = bdsnap_ctl_cbt_tracker(dev, &tracker);
	if (ret)
		return ret;
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

	ret = bdsnap_ctl_cbt_tracker(dev, &tracker);
	if (ret)
		goto out_free;
	ret = bdsnap_cbt_mark_ranges(tracker->cbt, ranges, md.count);
	bdsnap_tracker_put(tracker);
out_free:
	kvfree(ranges);
	return ret;
}

/* ---- snapshots ---- */

/* Most devices SNAPSHOT_INFO reports in one call. */
#define BDSNAP_CTL_INFO_MAX_DEVS	4096

/* Check a storage piece's header and copy its path in. */
static char *bdsnap_ctl_storage_path(const struct bdsnap_snapshot_storage *st)
{
	if (st->size != sizeof(*st) || st->flags ||
	    !bdsnap_ctl_all_zero(st->reserved, sizeof(st->reserved)))
		return ERR_PTR(-EINVAL);
	return strndup_user(u64_to_user_ptr(st->path),
			    BDSNAP_STORAGE_PATH_MAX);
}

static long bdsnap_ctl_snapshot_create(struct bdsnap_snapshot_create __user *uarg)
{
	struct bdsnap_snapshot_create c;
	char *path;
	u64 id;
	int ret;

	ret = bdsnap_ctl_copy_in(&c, uarg, sizeof(c));
	if (ret)
		return ret;
	if (c.flags || c.id ||
	    !bdsnap_ctl_all_zero(c.reserved, sizeof(c.reserved)))
		return -EINVAL;
	path = bdsnap_ctl_storage_path(&c.storage);
	if (IS_ERR(path))
		return PTR_ERR(path);
	mutex_lock(&bdsnap_ctl_member_lock);
	ret = bdsnap_snapshot_create(&c, path, &id);
	mutex_unlock(&bdsnap_ctl_member_lock);
	kfree(path);
	if (ret)
		return ret;

	c.id = id;
	if (copy_to_user(uarg, &c, sizeof(c))) {
		/* Nobody could ever name it: do not leave it behind. */
		bdsnap_snapshot_destroy(id);
		return -EFAULT;
	}
	return 0;
}

static long bdsnap_ctl_snapshot_add(struct bdsnap_snapshot_dev __user *uarg)
{
	struct bdsnap_snapshot_dev d;
	dev_t dev;
	int ret;

	ret = bdsnap_ctl_copy_in(&d, uarg, sizeof(d));
	if (ret)
		return ret;
	if (d.flags || !bdsnap_ctl_all_zero(d.reserved, sizeof(d.reserved)))
		return -EINVAL;
	if (!bdsnap_ctl_devt(&d.dev, &dev))
		return -ENOENT;
	mutex_lock(&bdsnap_ctl_member_lock);
	ret = bdsnap_snapshot_add(d.id, dev);
	mutex_unlock(&bdsnap_ctl_member_lock);
	return ret;
}

/* SNAPSHOT_TAKE (@take) and SNAPSHOT_DESTROY. */
static long bdsnap_ctl_snapshot_ctl(struct bdsnap_snapshot_ctl __user *uarg,
				    bool take)
{
	u32 allowed = take ? BDSNAP_TAKE_NO_FREEZE : 0;
	struct bdsnap_take_times times;
	struct bdsnap_snapshot_ctl c;
	int ret;

	ret = bdsnap_ctl_copy_in(&c, uarg, sizeof(c));
	if (ret)
		return ret;
	if ((c.flags & ~allowed) || c.take_ns || c.wait_ns ||
	    c.writes_waited || c.reserved0 ||
	    !bdsnap_ctl_all_zero(c.reserved, sizeof(c.reserved)))
		return -EINVAL;
	if (!take)
		return bdsnap_snapshot_destroy(c.id);

	ret = bdsnap_snapshot_take(c.id, c.flags, &times);
	if (ret)
		return ret;
	c.take_ns = times.take_ns;
	c.wait_ns = times.wait_ns;
	c.writes_waited = times.writes_waited;
	if (copy_to_user(uarg, &c, sizeof(c)))
		return -EFAULT;
	return 0;
}

static long bdsnap_ctl_snapshot_info(struct bdsnap_snapshot_info __user *uarg)
{
	struct bdsnap_snapshot_dev_info *devs = NULL;
	struct bdsnap_snapshot_info info;
	u32 room;
	int ret;

	ret = bdsnap_ctl_copy_in(&info, uarg, sizeof(info));
	if (ret)
		return ret;
	if (info.flags || info.reserved0 ||
	    !bdsnap_ctl_all_zero(info.reserved, sizeof(info.reserved)))
		return -EINVAL;

	room = min_t(u32, info.count, BDSNAP_CTL_INFO_MAX_DEVS);
	if (room) {
		devs = kvcalloc(room, sizeof(*devs), GFP_KERNEL);
		if (!devs)
			return -ENOMEM;
	}
	ret = bdsnap_snapshot_info(info.id, &info, devs, room);
	if (ret)
		goto out_free;
	room = min(room, info.count);
	if (room && copy_to_user(u64_to_user_ptr(info.devs), devs,
				 array_size(room, sizeof(*devs)))) {
		ret = -EFAULT;
		goto out_free;
	}
	if (copy_to_user(uarg, &info, sizeof(info)))
		ret = -EFAULT;
out_free:
	kvfree(devs);
	return ret;
}

static u32 bdsnap_ctl_fill_snapshots(void *buf, u32 room)
{
	return bdsnap_snapshot_list(buf, room);
}

static long bdsnap_ctl_snapshot_list(struct bdsnap_snapshot_list __user *uarg)
{
	struct bdsnap_snapshot_list list;
	u32 total;
	int ret;

	ret = bdsnap_ctl_copy_in(&list, uarg, sizeof(list));
	if (ret)
		return ret;
	if (!bdsnap_ctl_all_zero(list.reserved, sizeof(list.reserved)))
		return -EINVAL;

	ret = bdsnap_ctl_list_out(list.count, sizeof(u64),
				  bdsnap_ctl_fill_snapshots, list.ids, &total);
	if (ret)
		return ret;
	list.count = total;
	if (copy_to_user(uarg, &list, sizeof(list)))
		return -EFAULT;
	return 0;
}

static long
bdsnap_ctl_snapshot_append(struct bdsnap_snapshot_storage __user *uarg)
{
	struct bdsnap_snapshot_storage st;
	char *path;
	int ret;

	ret = bdsnap_ctl_copy_in(&st, uarg, sizeof(st));
	if (ret)
		return ret;
	path = bdsnap_ctl_storage_path(&st);
	if (IS_ERR(path))
		return PTR_ERR(path);
	mutex_lock(&bdsnap_ctl_member_lock);
	ret = bdsnap_snapshot_append_storage(st.id, path, st.bytes);
	mutex_unlock(&bdsnap_ctl_member_lock);
	kfree(path);
	return ret;
}

static long bdsnap_ctl_snapshot_wait(struct bdsnap_event __user *uarg)
{
	struct bdsnap_event ev;
	int ret;

	ret = bdsnap_ctl_copy_in(&ev, uarg, sizeof(ev));
	if (ret)
		return ret;
	if (ev.flags || ev.reserved0 ||
	    !bdsnap_ctl_all_zero(ev.reserved, sizeof(ev.reserved)))
		return -EINVAL;
	ret = bdsnap_snapshot_wait_event(ev.id, ev.timeout_ms, &ev);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &ev, sizeof(ev)))
		return -EFAULT;
	return 0;
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
	case BDSNAP_IOCTL_SNAPSHOT_CREATE:
		return bdsnap_ctl_snapshot_create(uarg);
	case BDSNAP_IOCTL_SNAPSHOT_ADD:
		return bdsnap_ctl_snapshot_add(uarg);
	case BDSNAP_IOCTL_SNAPSHOT_TAKE:
		return bdsnap_ctl_snapshot_ctl(uarg, true);
	case BDSNAP_IOCTL_SNAPSHOT_DESTROY:
		return bdsnap_ctl_snapshot_ctl(uarg, false);
	case BDSNAP_IOCTL_SNAPSHOT_INFO:
		return bdsnap_ctl_snapshot_info(uarg);
	case BDSNAP_IOCTL_SNAPSHOT_LIST:
		return bdsnap_ctl_snapshot_list(uarg);
	case BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE:
		return bdsnap_ctl_snapshot_append(uarg);
	case BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT:
		return bdsnap_ctl_snapshot_wait(uarg);
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
	case BDSNAP_IOCTL_SNAPSHOT_CREATE:
	case BDSNAP_IOCTL_SNAPSHOT_ADD:
	case BDSNAP_IOCTL_SNAPSHOT_TAKE:
	case BDSNAP_IOCTL_SNAPSHOT_DESTROY:
	case BDSNAP_IOCTL_SNAPSHOT_INFO:
	case BDSNAP_IOCTL_SNAPSHOT_LIST:
	case BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE:
	case BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT:
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
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_storage) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_create) != 128);
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_dev) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_ctl) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_dev_info) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_info) != 128);
	BUILD_BUG_ON(sizeof(struct bdsnap_snapshot_list) != 64);
	BUILD_BUG_ON(sizeof(struct bdsnap_event) != 128);

	ret = misc_register(&bdsnap_ctl_dev);
	if (ret)
		pr_err("cannot register /dev/%s: %d\n", BDSNAP_CTL_NAME, ret);
	return ret;
}

void bdsnap_ctl_exit(void)
{
	misc_deregister(&bdsnap_ctl_dev);
}
