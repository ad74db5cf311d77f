// SPDX-License-Identifier: GPL-2.0
/*
 * How block devices are stacked, read from sysfs objects.
 *
 * Every block device (disk or partition) is a device of the block class. A
 * disk or partition with something stacked on it has a "holders" directory
 * with an entry per holder, named after it; a dm or md disk has a "slaves"
 * directory with an entry per device under it. Those directories cannot be
 * listed from a module, but an entry can be looked up by name
 * (kernfs_find_and_get_ns()), so the devices related to one are found by
 * trying the name of every block device. Partitions are the block-class
 * children of their disk's device. A loop device registers no holder: its
 * backing file is read from its sysfs attribute loop/backing_file through
 * the VFS and looked up in the caller's namespace, and the file's device is
 * the one its data lands on (the file's filesystem's, or a device node's).
 *
 * Contexts: process context only; everything here sleeps. No lock of ours
 * is taken.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/kernfs.h>
#include <linux/major.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "compat.h"
#include "stack.h"

/* sysfs text of a loop device's backing file path, at most. */
#define BDSNAP_STACK_PATH_MAX	PATH_MAX

/*
 * The device of @dev's disk, referenced (put_device()): its ->class is the
 * block class, which is not exported and whose type differs between
 * kernels, and its devt the whole disk's.
 */
static int bdsnap_stack_disk_device(dev_t dev, struct device **disk)
{
	struct bdfilter_bdev_ref ref;
	int ret;

	ret = bdfilter_bdev_open(dev, &ref);
	if (ret)
		return ret == -ENXIO ? -ENODEV : ret;
	*disk = get_device(disk_to_dev(ref.bdev->bd_disk));
	bdfilter_bdev_close(&ref);
	return 0;
}

int bdsnap_stack_disk_of(dev_t dev, dev_t *disk)
{
	struct device *d;
	int ret;

	ret = bdsnap_stack_disk_device(dev, &d);
	if (ret)
		return ret;
	*disk = d->devt;
	put_device(d);
	return 0;
}

/* Whether the sysfs directory @dir of @dev has an entry named @name. */
static bool bdsnap_stack_has_entry(struct device *dev, const char *dir,
				   const char *name)
{
	struct kernfs_node *kn, *entry = NULL;

	kn = kernfs_find_and_get_ns(dev->kobj.sd, dir, NULL);
	if (kn) {
		entry = kernfs_find_and_get_ns(kn, name, NULL);
		kernfs_put(kn);
	}
	if (entry)
		kernfs_put(entry);
	return entry;
}

/* The walk's state: the devices found, in order. */
struct bdsnap_stack_walk {
	dev_t *devs;
	int nr;
	struct device *class_dev;	/* its ->class is the block class */
};

/* Add @dev unless it is there already. Returns 0 or -E2BIG. */
static int bdsnap_stack_add(struct bdsnap_stack_walk *w, dev_t dev)
{
	int i;

	for (i = 0; i < w->nr; i++)
		if (w->devs[i] == dev)
			return 0;
	if (w->nr == BDSNAP_STACK_MAX)
		return -E2BIG;
	w->devs[w->nr++] = dev;
	return 0;
}

/*
 * The device a loop device's backing file lives on (0: none, e.g. tmpfs),
 * or -ENOENT when the file cannot be found (deleted, or sysfs or the path
 * not visible here).
 */
static int bdsnap_stack_loop_backing(dev_t dev, dev_t *backing)
{
	char attr[64];
	struct inode *inode;
	struct path path;
	struct file *f;
	loff_t pos = 0;
	ssize_t len;
	char *buf;
	int ret;

	snprintf(attr, sizeof(attr), "/sys/dev/block/%u:%u/loop/backing_file",
		 MAJOR(dev), MINOR(dev));
	f = filp_open(attr, O_RDONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f) == -ENOENT ? 0 : -ENOENT;	/* not bound */
	buf = kmalloc(BDSNAP_STACK_PATH_MAX, GFP_KERNEL);
	if (!buf) {
		filp_close(f, NULL);
		return -ENOMEM;
	}
	len = kernel_read(f, buf, BDSNAP_STACK_PATH_MAX - 1, &pos);
	filp_close(f, NULL);
	if (len <= 0) {
		kfree(buf);
		return -ENOENT;
	}
	buf[len] = '\0';
	strim(buf);
	ret = kern_path(buf, LOOKUP_FOLLOW, &path);
	if (ret) {
		pr_info("loop device %u:%u: backing file %s not found: %d\n",
			MAJOR(dev), MINOR(dev), buf, ret);
		kfree(buf);
		return -ENOENT;
	}
	kfree(buf);
	inode = d_backing_inode(path.dentry);
	if (S_ISBLK(inode->i_mode))
		*backing = inode->i_rdev;
	else
		*backing = inode->i_sb->s_bdev ? inode->i_sb->s_bdev->bd_dev : 0;
	path_put(&path);
	return 0;
}

/* Partitions: the block-class children of a disk's device. */
static int bdsnap_stack_child(struct device *child, void *data)
{
	struct bdsnap_stack_walk *w = data;

	if (child->class != w->class_dev->class || !child->devt)
		return 0;
	return bdsnap_stack_add(w, child->devt);
}

/* Add the devices directly above (@down false) or below @dev. */
static int bdsnap_stack_neighbours(struct bdsnap_stack_walk *w, dev_t dev,
				   bool down)
{
	struct class_dev_iter iter;
	struct device *d, *other;
	int ret = 0;

	d = class_find_device_by_devt(w->class_dev->class, dev);
	if (!d)
		return 0;	/* gone meanwhile: nothing stacked on it now */
	if (!down)
		ret = device_for_each_child(d, w, bdsnap_stack_child);
	class_dev_iter_init(&iter, w->class_dev->class, NULL, NULL);
	while (!ret && (other = class_dev_iter_next(&iter))) {
		if (other == d)
			continue;
		if (bdsnap_stack_has_entry(d, down ? "slaves" : "holders",
					   dev_name(other)))
			ret = bdsnap_stack_add(w, other->devt);
	}
	class_dev_iter_exit(&iter);
	put_device(d);

	if (!ret && down && MAJOR(dev) == LOOP_MAJOR) {
		dev_t backing = 0;

		ret = bdsnap_stack_loop_backing(dev, &backing);
		if (!ret && backing)
			ret = bdsnap_stack_add(w, backing);
	}
	return ret;
}

int bdsnap_stack_walk(dev_t dev, bool down, dev_t *devs)
{
	struct bdsnap_stack_walk w = { .devs = devs };
	int i, ret;

	ret = bdsnap_stack_disk_device(dev, &w.class_dev);
	if (ret)
		return ret;
	ret = bdsnap_stack_add(&w, dev);
	/* Breadth first: w.nr grows while the loop runs. */
	for (i = 0; !ret && i < w.nr; i++)
		ret = bdsnap_stack_neighbours(&w, w.devs[i], down);
	put_device(w.class_dev);
	return ret ? ret : w.nr;
}
