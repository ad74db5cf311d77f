// SPDX-License-Identifier: GPL-2.0
/*
 * Difference storage: pieces opened by path, slots handed out to chunks,
 * growth of regular files, slot I/O through the VFS.
 *
 * Locking (outer to inner):
 *   st->grow_lock (mutex)	adding pieces, growing a piece
 *     st->alloc_lock (spinlock)	piece list for readers, pieces' pos and
 *					end, used and total
 * The snapshot's event queue lock may be taken after dropping alloc_lock,
 * never under it (events.c keeps its lock innermost anyway).
 *
 * The piece list only grows while the storage is open, so a reader holding
 * alloc_lock, or grow_lock, may walk it; pieces are freed only by
 * bdsnap_diff_storage_close(), when nobody uses the storage any more.
 *
 * Slot I/O calls the file's ->read_iter()/->write_iter() with a synchronous
 * kiocb and a bvec iterator, the way the loop driver does, and brackets
 * writes with file_start_write()/file_end_write() itself: vfs_iter_write()
 * took that freeze protection itself only from 6.7 on, so calling the
 * method directly behaves the same on every kernel. The filesystem
 * allocates and writes its own blocks: nothing is written behind its back.
 *
 * Pieces are opened with O_DIRECT where the file allows it (block devices,
 * most disk filesystems; not tmpfs before 6.6, which gets buffered I/O),
 * and slot I/O aligned to BDSNAP_DIO_ALIGN goes straight to the device:
 * through the page cache, each copied chunk cost a page-cache allocation
 * (zeroed by init_on_alloc), a copy into it and writeback later, which
 * profiled at a quarter of the CPU time of sequential first writes.
 * Unaligned I/O (image writes of single sectors, a device's short last
 * chunk) clears IOCB_DIRECT and is buffered; the kernel keeps the two
 * coherent (direct I/O writes back and invalidates cached pages of its
 * range first).
 *
 * Memory and throttling: growth and slot I/O run in works inside
 * bdsnap_diff_storage_io_begin()/_end(): no reclaim I/O, and dirty
 * throttling against the storage's device only, so neither reclaim nor
 * balance_dirty_pages() can make them wait for the writeback of a
 * snapshotted device, whose writes may be waiting for this very work.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/namei.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/workqueue.h>
#include <uapi/linux/bdsnap.h>

#include "compat.h"
#include "diff_storage.h"
#include "events.h"
#include "stack.h"

/*
 * Bit of io_begin()'s state saying PF_LOCAL_THROTTLE was already set; the
 * rest is memalloc_noio_save()'s value, which is PF_MEMALLOC_NOIO or 0.
 */
#define BDSNAP_STORAGE_IO_LOCAL	0x1U

/* Slot I/O aligned to this (position, lengths, buffers) may be direct. */
#define BDSNAP_DIO_ALIGN	4096U

static struct workqueue_struct *bdsnap_storage_wq;

unsigned int bdsnap_diff_storage_io_begin(void)
{
	unsigned int noio = memalloc_noio_save();
	unsigned int local = current->flags & PF_LOCAL_THROTTLE;

	/* Kworkers are shared: the flag is restored by io_end(). */
	current->flags |= PF_LOCAL_THROTTLE;
	return noio | (local ? BDSNAP_STORAGE_IO_LOCAL : 0);
}

void bdsnap_diff_storage_io_end(unsigned int state)
{
	if (!(state & BDSNAP_STORAGE_IO_LOCAL))
		current->flags &= ~PF_LOCAL_THROTTLE;
	memalloc_noio_restore(state & ~BDSNAP_STORAGE_IO_LOCAL);
}

/* Size of the file or device behind @file, in bytes. */
static loff_t bdsnap_piece_size(struct file *file)
{
	/* For a block device node, f_mapping->host is the device's inode. */
	return i_size_read(file->f_mapping->host);
}

static void bdsnap_diff_storage_post(struct bdsnap_diff_storage *st, u32 code)
{
	struct bdsnap_event_entry e = { .code = code, .limit = st->limit };

	bdsnap_diff_storage_usage(st, &e.used, &e.total);
	bdsnap_events_post(st->events, &e);
}

/* Growth: extend the last growable piece by one step. Process context. */
static void bdsnap_diff_storage_grow_work(struct work_struct *work)
{
	struct bdsnap_diff_storage *st =
		container_of(work, struct bdsnap_diff_storage, grow_work);
	struct bdsnap_diff_piece *piece, *grow = NULL;
	unsigned int io = bdsnap_diff_storage_io_begin();
	loff_t old_end;
	u64 step = 0;
	int ret;

	mutex_lock(&st->grow_lock);
	if (test_bit(BDSNAP_STORAGE_CLOSED, &st->flags))
		goto out_unlock;

	spin_lock(&st->alloc_lock);
	list_for_each_entry(piece, &st->pieces, link)
		if (piece->growable)
			grow = piece;
	if (grow && st->total < st->limit)
		step = min(st->grow_step, st->limit - st->total);
	spin_unlock(&st->alloc_lock);
	if (!step) {
		set_bit(BDSNAP_STORAGE_GROW_FAILED, &st->flags);
		goto out_unlock;
	}

	/* Only growth moves a piece's end, and growth holds grow_lock. */
	old_end = grow->end;
	ret = vfs_fallocate(grow->file, 0, old_end, step);
	if (ret) {
		pr_warn("difference storage: cannot extend a piece from %lld by %llu bytes: %d; it stays at its size\n",
			old_end, step, ret);
		set_bit(BDSNAP_STORAGE_GROW_FAILED, &st->flags);
		goto out_unlock;
	}

	spin_lock(&st->alloc_lock);
	grow->end = old_end + step;
	st->total += step;
	spin_unlock(&st->alloc_lock);
	bdsnap_diff_storage_post(st, BDSNAP_EVENT_STORAGE_GROWN);

out_unlock:
	mutex_unlock(&st->grow_lock);
	clear_bit(BDSNAP_STORAGE_GROWING, &st->flags);
	/* Allocators test the bit in their wait condition. */
	smp_mb__after_atomic();
	wake_up_all(&st->grow_wait);
	bdsnap_diff_storage_io_end(io);
}

int bdsnap_diff_storage_init_module(void)
{
	/*
	 * A rescuer: growth must progress under memory pressure, because
	 * writers of snapshotted devices (and so writeback) may wait for it.
	 */
	bdsnap_storage_wq = alloc_workqueue("bdsnap-storage",
					    WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	return bdsnap_storage_wq ? 0 : -ENOMEM;
}

void bdsnap_diff_storage_exit_module(void)
{
	destroy_workqueue(bdsnap_storage_wq);
}

void bdsnap_diff_storage_init(struct bdsnap_diff_storage *st, u64 limit,
			      u64 grow_step, u64 low_space,
			      struct bdsnap_event_queue *events)
{
	mutex_init(&st->grow_lock);
	spin_lock_init(&st->alloc_lock);
	INIT_LIST_HEAD(&st->pieces);
	st->used = 0;
	st->total = 0;
	st->limit = limit;
	st->grow_step = grow_step;
	st->low_space = low_space;
	st->flags = 0;
	INIT_WORK(&st->grow_work, bdsnap_diff_storage_grow_work);
	init_waitqueue_head(&st->grow_wait);
	st->events = events;
}

/*
 * The devices the writes to @path would reach, into *@chain (allocated),
 * their number into *@nr (0 for tmpfs and the like). Returns 0 or -EXDEV
 * when that cannot be told (a loop device's backing file not found),
 * -E2BIG, -ENOMEM, the errno of the lookup. Process context, sleeps.
 */
static int bdsnap_piece_chain(const char *path, struct bdsnap_place **chain,
			      int *nr)
{
	dev_t devs[BDSNAP_STACK_MAX];
	struct inode *inode;
	struct path kpath;
	dev_t dev = 0;
	int i, n, ret;

	*chain = NULL;
	*nr = 0;
	ret = kern_path(path, LOOKUP_FOLLOW, &kpath);
	if (ret)
		return ret;
	inode = d_backing_inode(kpath.dentry);
	if (S_ISBLK(inode->i_mode))
		dev = inode->i_rdev;
	else if (inode->i_sb->s_bdev)
		dev = inode->i_sb->s_bdev->bd_dev;
	path_put(&kpath);
	if (!dev)
		return 0;

	n = bdsnap_stack_walk(dev, true, devs);
	if (n == -ENOENT)
		return -EXDEV;	/* where its writes go is not known */
	if (n < 0)
		return n;
	*chain = kcalloc(n, sizeof(**chain), GFP_KERNEL);
	if (!*chain)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		(*chain)[i].dev = devs[i];
		ret = bdsnap_stack_disk_of(devs[i], &(*chain)[i].disk);
		if (ret) {
			kfree(*chain);
			*chain = NULL;
			return ret;
		}
	}
	*nr = n;
	return 0;
}

bool bdsnap_diff_storage_overlaps(struct bdsnap_diff_storage *st,
				  const struct bdsnap_place *place)
{
	struct bdsnap_diff_piece *piece;
	bool found = false;
	int i;

	spin_lock(&st->alloc_lock);
	list_for_each_entry(piece, &st->pieces, link)
		for (i = 0; i < piece->chain_nr; i++)
			if (bdsnap_place_overlap(&piece->chain[i], place))
				found = true;
	spin_unlock(&st->alloc_lock);
	return found;
}

/*
 * Check an opened piece and size it: a regular file is extended to @bytes
 * if shorter. Returns the usable size in *@end or a negative errno.
 */
static int bdsnap_piece_prepare(struct file *file, u64 bytes, loff_t *end,
				bool *growable)
{
	struct inode *inode = file_inode(file);
	loff_t size = bdsnap_piece_size(file);
	int ret;

	if (!file->f_op->read_iter || !file->f_op->write_iter)
		return -EINVAL;

	if (S_ISBLK(inode->i_mode)) {
		if (bytes > size)
			return -EINVAL;
		*end = bytes ? bytes : size;
		*growable = false;
		return *end ? 0 : -EINVAL;
	}
	if (!S_ISREG(inode->i_mode))
		return -EINVAL;
	if (IS_SWAPFILE(inode))
		return -ETXTBSY;
	if (IS_IMMUTABLE(inode) || IS_APPEND(inode))
		return -EPERM;

	if (bytes > size) {
		/* Allocated now, so that slot writes cannot meet ENOSPC. */
		ret = vfs_fallocate(file, 0, size, bytes - size);
		if (ret)
			return ret;
		size = bytes;
	}
	*end = bytes ? bytes : size;
	*growable = true;
	return 0;
}

int bdsnap_diff_storage_add_path(struct bdsnap_diff_storage *st,
				 const char *path, u64 bytes,
				 bdsnap_place_refused_t refused, void *arg)
{
	struct bdsnap_diff_piece *piece;
	struct bdsnap_place *chain;
	int flags = O_RDWR | O_LARGEFILE | O_NOATIME;
	struct file *file;
	struct path kpath;
	int chain_nr;
	int ret;

	if (bytes > LLONG_MAX)
		return -EINVAL;

	/* Before anything is opened (a block device, exclusively). */
	ret = bdsnap_piece_chain(path, &chain, &chain_nr);
	if (ret)
		return ret;
	if (refused(chain, chain_nr, arg)) {
		kfree(chain);
		return -EXDEV;
	}

	/* A block device is claimed exclusively: nobody else may write it. */
	ret = kern_path(path, LOOKUP_FOLLOW, &kpath);
	if (ret)
		goto err_chain;
	if (S_ISBLK(d_inode(kpath.dentry)->i_mode))
		flags |= O_EXCL;
	path_put(&kpath);

	ret = -ENOMEM;
	piece = kzalloc(sizeof(*piece), GFP_KERNEL);
	if (!piece)
		goto err_chain;
	piece->chain = chain;
	piece->chain_nr = chain_nr;

	/* O_DIRECT where the file supports it (see the top of this file). */
	file = filp_open(path, flags | O_DIRECT, 0);
	if (file == ERR_PTR(-EINVAL))
		file = filp_open(path, flags, 0);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		/* A directory is "not a file or block device", like a pipe. */
		if (ret == -EISDIR)
			ret = -EINVAL;
		goto err_free;
	}
	piece->file = file;

	mutex_lock(&st->grow_lock);
	if (test_bit(BDSNAP_STORAGE_CLOSED, &st->flags)) {
		ret = -ENOENT;
		goto err_unlock;
	}
	ret = bdsnap_piece_prepare(file, bytes, &piece->end,
				   &piece->growable);
	if (ret)
		goto err_unlock;

	spin_lock(&st->alloc_lock);
	list_add_tail(&piece->link, &st->pieces);
	st->total += piece->end;
	spin_unlock(&st->alloc_lock);
	/* New room: a later shortage may report low space again. */
	clear_bit(BDSNAP_STORAGE_LOW_SENT, &st->flags);
	mutex_unlock(&st->grow_lock);
	/* Allocators waiting for growth may use the new piece. */
	wake_up_all(&st->grow_wait);
	return 0;

err_unlock:
	mutex_unlock(&st->grow_lock);
	filp_close(file, NULL);
err_free:
	kfree(piece);
err_chain:
	kfree(chain);
	return ret;
}

/*
 * Take a slot from the first piece with room. Under alloc_lock. Returns
 * true if one was found.
 */
static bool bdsnap_diff_storage_take(struct bdsnap_diff_storage *st,
				     u32 size, struct bdsnap_diff_slot *slot)
{
	struct bdsnap_diff_piece *piece;

	lockdep_assert_held(&st->alloc_lock);
	list_for_each_entry(piece, &st->pieces, link) {
		loff_t pos = round_up(piece->pos, (loff_t)size);

		if (pos + size > piece->end)
			continue;
		piece->pos = pos + size;
		st->used += size;
		slot->piece = piece;
		slot->pos = pos;
		return true;
	}
	return false;
}

int bdsnap_diff_storage_alloc_slot(struct bdsnap_diff_storage *st, u32 size,
				   struct bdsnap_diff_slot *slot)
{
	bool found, can_grow, low;
	u64 free;

	for (;;) {
		spin_lock(&st->alloc_lock);
		found = bdsnap_diff_storage_take(st, size, slot);
		free = st->total - st->used;
		can_grow = st->limit && st->total < st->limit &&
			   !test_bit(BDSNAP_STORAGE_GROW_FAILED, &st->flags) &&
			   !test_bit(BDSNAP_STORAGE_CLOSED, &st->flags);
		spin_unlock(&st->alloc_lock);

		low = free < st->low_space;
		if (low && !test_and_set_bit(BDSNAP_STORAGE_LOW_SENT, &st->flags))
			bdsnap_diff_storage_post(st, BDSNAP_EVENT_LOW_SPACE);
		else if (!low)
			clear_bit(BDSNAP_STORAGE_LOW_SENT, &st->flags);

		/* Grow ahead of need, and always when nothing fits. */
		if (can_grow && (!found || free < st->grow_step) &&
		    !test_and_set_bit(BDSNAP_STORAGE_GROWING, &st->flags))
			queue_work(bdsnap_storage_wq, &st->grow_work);

		if (found)
			return 0;
		if (!can_grow)
			return -ENOSPC;
		wait_event(st->grow_wait,
			   !test_bit(BDSNAP_STORAGE_GROWING, &st->flags));
	}
}

static int bdsnap_diff_storage_rw(const struct bdsnap_diff_slot *slot,
				  u32 offset, const struct bio_vec *bvec,
				  unsigned int nr_bvec, size_t len, bool write)
{
	struct file *file = slot->piece->file;
	struct iov_iter iter;
	bool direct = file->f_flags & O_DIRECT;
	struct kiocb kiocb;
	ssize_t ret;

again:
	iov_iter_bvec(&iter, write ? BDSNAP_ITER_SOURCE : BDSNAP_ITER_DEST,
		      bvec, nr_bvec, len);
	/* init_sync_kiocb() sets IOCB_DIRECT from the file's O_DIRECT. */
	init_sync_kiocb(&kiocb, file);
	kiocb.ki_pos = slot->pos + offset;
	if (direct && ((kiocb.ki_pos | iov_iter_alignment(&iter)) &
		       (BDSNAP_DIO_ALIGN - 1)))
		direct = false;
	if (!direct)
		kiocb.ki_flags &= ~IOCB_DIRECT;

	if (write) {
		file_start_write(file);
		ret = file->f_op->write_iter(&kiocb, &iter);
		file_end_write(file);
	} else {
		ret = file->f_op->read_iter(&kiocb, &iter);
	}
	/* A device with larger logical blocks refuses it: go buffered. */
	if (ret == -EINVAL && direct) {
		direct = false;
		goto again;
	}
	if (ret < 0)
		return ret;
	return ret == len ? 0 : -EIO;
}

int bdsnap_diff_storage_write_slot(const struct bdsnap_diff_slot *slot,
				   u32 offset, const struct bio_vec *bvec,
				   unsigned int nr_bvec, size_t len)
{
	return bdsnap_diff_storage_rw(slot, offset, bvec, nr_bvec, len, true);
}

int bdsnap_diff_storage_read_slot(const struct bdsnap_diff_slot *slot,
				  u32 offset, const struct bio_vec *bvec,
				  unsigned int nr_bvec, size_t len)
{
	return bdsnap_diff_storage_rw(slot, offset, bvec, nr_bvec, len, false);
}

int bdsnap_diff_storage_sync(struct bdsnap_diff_storage *st)
{
	struct bdsnap_diff_piece *piece;
	int ret = 0;

	/* grow_lock: the list may be walked while pieces are added. */
	mutex_lock(&st->grow_lock);
	list_for_each_entry(piece, &st->pieces, link) {
		int err = vfs_fsync(piece->file, 1);

		if (err && !ret)
			ret = err;
	}
	mutex_unlock(&st->grow_lock);
	return ret;
}

void bdsnap_diff_storage_usage(struct bdsnap_diff_storage *st, u64 *used,
			       u64 *total)
{
	spin_lock(&st->alloc_lock);
	*used = st->used;
	*total = st->total;
	spin_unlock(&st->alloc_lock);
}

void bdsnap_diff_storage_close(struct bdsnap_diff_storage *st)
{
	struct bdsnap_diff_piece *piece, *next;

	mutex_lock(&st->grow_lock);
	set_bit(BDSNAP_STORAGE_CLOSED, &st->flags);
	mutex_unlock(&st->grow_lock);
	/* A queued growth sees CLOSED and only clears GROWING. */
	flush_work(&st->grow_work);
	wake_up_all(&st->grow_wait);

	list_for_each_entry_safe(piece, next, &st->pieces, link) {
		list_del(&piece->link);
		filp_close(piece->file, NULL);
		kfree(piece->chain);
		kfree(piece);
	}
	mutex_destroy(&st->grow_lock);
}
