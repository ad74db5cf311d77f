/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * bdsnap control interface: ioctls on /dev/bdsnap-ctl.
 *
 * This header is the single source of truth for the user space ABI: the
 * kernel module, the harness and its Rust bindings all derive from it.
 *
 * Rules every command structure follows, so that the ABI can grow without
 * breaking old tools:
 *  - fixed-width types only, explicit padding, no pointers-as-longs, so the
 *    layout is identical for 32-bit and 64-bit callers (compat_ioctl is a
 *    plain pass-through);
 *  - the first member is @size, set by the caller to sizeof(the struct it was
 *    built against); the module rejects a size it does not know with -EINVAL;
 *  - every reserved field must be zero on input (-EINVAL otherwise), so a
 *    later version can give it a meaning;
 *  - every command requires CAP_SYS_ADMIN (-EPERM otherwise); an unknown
 *    command fails with -ENOTTY.
 */
#ifndef _UAPI_LINUX_BDSNAP_H
#define _UAPI_LINUX_BDSNAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Version of the module and of this interface. */
#define BDSNAP_VERSION_MAJOR	0
#define BDSNAP_VERSION_MINOR	3
#define BDSNAP_VERSION_PATCH	0

/* Name of the control device node, relative to /dev. */
#define BDSNAP_CTL_NAME		"bdsnap-ctl"

/* ioctl type byte of every bdsnap command. */
#define BDSNAP_IOCTL_MAGIC	0xBD

/**
 * struct bdsnap_version - answer of %BDSNAP_IOCTL_VERSION
 * @size:      in: sizeof(struct bdsnap_version); out: the same.
 * @major:     out: major version; in: must be zero.
 * @minor:     out: minor version; in: must be zero.
 * @patch:     out: patch level; in: must be zero.
 * @reserved0: must be zero on input; zero on output.
 * @flags:     out: feature flags (none defined yet, always zero); in: must
 *             be zero.
 * @reserved:  must be zero on input; zero on output.
 *
 * 64 bytes, no implicit padding.
 */
struct bdsnap_version {
	__u32 size;
	__u16 major;
	__u16 minor;
	__u16 patch;
	__u16 reserved0;
	__u32 flags;
	__u8 reserved[48];
};

/* Query the module version. */
#define BDSNAP_IOCTL_VERSION	_IOWR(BDSNAP_IOCTL_MAGIC, 0x00, struct bdsnap_version)

/**
 * struct bdsnap_dev_id - a block device (whole disk or partition) by number
 * @major: major number, as in stat(2)'s st_rdev.
 * @minor: minor number.
 */
struct bdsnap_dev_id {
	__u32 major;
	__u32 minor;
};

/**
 * struct bdsnap_tracker_ctl - argument of %BDSNAP_IOCTL_TRACKER_ATTACH and
 * %BDSNAP_IOCTL_TRACKER_DETACH
 * @size:     sizeof(struct bdsnap_tracker_ctl).
 * @flags:    ATTACH: 0 or %BDSNAP_TRACKER_FILTER_ONLY; DETACH: must be zero.
 * @dev:      the device to start or stop tracking.
 * @reserved: must be zero.
 *
 * Attach fails with -EBUSY if @dev is already tracked or if a partition of
 * it or its whole disk is in a snapshot, -ENODEV if it does not exist,
 * -EOPNOTSUPP if it is a zoned device (zone append and zone resets cannot be
 * tracked or copied on write); detach fails with -ENOENT if @dev is not
 * tracked and -EBUSY while it is in a snapshot.
 */
struct bdsnap_tracker_ctl {
	__u32 size;
	__u32 flags;
	struct bdsnap_dev_id dev;
	__u8 reserved[48];
};

/*
 * Attach the filter without a CBT map: every bio passes untouched. For
 * measuring the filter's own cost; CBT ioctls on such a device fail with
 * -ENODATA and it cannot be added to a snapshot (-EINVAL).
 */
#define BDSNAP_TRACKER_FILTER_ONLY	0x00000001U

/**
 * struct bdsnap_tracker_list - argument of %BDSNAP_IOCTL_TRACKER_LIST
 * @size:     sizeof(struct bdsnap_tracker_list).
 * @count:    in: number of entries @devs has room for; out: number of
 *            tracked devices (may exceed the room given: then only the first
 *            entries were written).
 * @devs:     user pointer to an array of struct bdsnap_dev_id; may be zero
 *            when @count is zero.
 * @reserved: must be zero.
 */
struct bdsnap_tracker_list {
	__u32 size;
	__u32 count;
	__u64 devs;
	__u8 reserved[48];
};

/*
 * Changed-block tracking (CBT). Every tracked device is divided into tracking
 * blocks of @block_size bytes; the map holds one byte per block: the number
 * of the snapshot generation that was current when the block was last
 * written (0: not written since tracking began). The live map changes with
 * every write; the read map is a copy taken when the generation last
 * switched (snapshot taken), stable until the next switch. When history is
 * lost (tracker reset, generation wrap past 255, device resize, map
 * overflow), @generation_id changes: a backup tool that sees a different id
 * than at its last backup must take a full backup.
 */

/* The state flags of struct bdsnap_cbt_info. */
#define BDSNAP_CBT_RESIZED	0x00000001U	/* the device changed size */

/**
 * struct bdsnap_cbt_info - argument of %BDSNAP_IOCTL_CBT_INFO
 * @size:           sizeof(struct bdsnap_cbt_info).
 * @flags:          must be zero.
 * @dev:            in: a tracked device.
 * @device_sectors: out: device size in 512-byte sectors the map covers.
 * @block_size:     out: bytes per tracking block, a power of two.
 * @block_count:    out: number of tracking blocks (bytes in each map).
 * @generation_id:  out: UUID of the tracking history (see above).
 * @snap_number:    out: the generation written into the live map now (1..255).
 * @reserved0:      zero.
 * @state:          out: BDSNAP_CBT_* state flags.
 * @reserved:       must be zero.
 */
struct bdsnap_cbt_info {
	__u32 size;
	__u32 flags;
	struct bdsnap_dev_id dev;
	__u64 device_sectors;
	__u32 block_size;
	__u32 block_count;
	__u8 generation_id[16];
	__u8 snap_number;
	__u8 reserved0[3];
	__u32 state;
	__u8 reserved[40];
};

/* Flags of struct bdsnap_cbt_read. */
#define BDSNAP_CBT_READ_LIVE	0x00000001U	/* the live map, not the read map */

/**
 * struct bdsnap_cbt_read - argument of %BDSNAP_IOCTL_CBT_READ
 * @size:      sizeof(struct bdsnap_cbt_read).
 * @flags:     0 or %BDSNAP_CBT_READ_LIVE.
 * @dev:       a tracked device.
 * @offset:    first block to copy.
 * @length:    number of blocks (bytes) to copy; @offset + @length must not
 *             exceed the block count (-EINVAL).
 * @reserved0: must be zero.
 * @buf:       user pointer to @length bytes.
 * @reserved:  must be zero.
 *
 * The read map is copied in pieces of at most 1 MiB, each under the lock
 * that a snapshot's take also needs, but never across the copy to user
 * space (a buffer whose pages fault on a frozen filesystem must not hold up
 * a take). A call of more than 1 MiB during which a take switched the
 * generation fails with -EAGAIN: nothing it copied may be used; retry.
 */
struct bdsnap_cbt_read {
	__u32 size;
	__u32 flags;
	struct bdsnap_dev_id dev;
	__u64 offset;
	__u32 length;
	__u32 reserved0;
	__u64 buf;
	__u8 reserved[32];
};

/**
 * struct bdsnap_sector_range - a range of 512-byte sectors
 * @sector: first sector, relative to the start of the tracked device.
 * @count:  number of sectors (non-zero).
 */
struct bdsnap_sector_range {
	__u64 sector;
	__u64 count;
};

/* Most ranges one %BDSNAP_IOCTL_CBT_MARK_DIRTY call takes. */
#define BDSNAP_MARK_DIRTY_MAX	65536

/**
 * struct bdsnap_cbt_mark_dirty - argument of %BDSNAP_IOCTL_CBT_MARK_DIRTY
 * @size:      sizeof(struct bdsnap_cbt_mark_dirty).
 * @flags:     must be zero.
 * @dev:       a tracked device.
 * @count:     number of ranges, 1..%BDSNAP_MARK_DIRTY_MAX.
 * @reserved0: must be zero.
 * @ranges:    user pointer to @count struct bdsnap_sector_range; each range
 *             must lie within the device (-EINVAL otherwise, nothing marked).
 * @reserved:  must be zero.
 *
 * Marks the blocks of every range as written in the current generation, as
 * if user space had written them (e.g. a tool that changed the device while
 * it was not tracked).
 */
struct bdsnap_cbt_mark_dirty {
	__u32 size;
	__u32 flags;
	struct bdsnap_dev_id dev;
	__u32 count;
	__u32 reserved0;
	__u64 ranges;
	__u8 reserved[32];
};

#define BDSNAP_IOCTL_TRACKER_ATTACH \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x01, struct bdsnap_tracker_ctl)
#define BDSNAP_IOCTL_TRACKER_DETACH \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x02, struct bdsnap_tracker_ctl)
#define BDSNAP_IOCTL_TRACKER_LIST \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x03, struct bdsnap_tracker_list)
#define BDSNAP_IOCTL_CBT_INFO \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x04, struct bdsnap_cbt_info)
#define BDSNAP_IOCTL_CBT_READ \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x05, struct bdsnap_cbt_read)
#define BDSNAP_IOCTL_CBT_MARK_DIRTY \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x06, struct bdsnap_cbt_mark_dirty)

/*
 * Snapshot states. While a snapshot is TAKEN, discards (REQ_OP_DISCARD) to
 * its devices are completed without reaching the device, as dm-snapshot's
 * origin never passes them: the data stays where the image reads it, no
 * difference storage is spent on a trim, and the device's contents (and so
 * its CBT map) do not change. Write-zeroes and secure erase are writes.
 */
enum bdsnap_snapshot_state {
	BDSNAP_SNAPSHOT_CREATED = 0,
	BDSNAP_SNAPSHOT_TAKEN = 1,
	BDSNAP_SNAPSHOT_CORRUPTED = 2,
};

/* Longest difference storage path, including the terminating NUL. */
#define BDSNAP_STORAGE_PATH_MAX	4096

/**
 * struct bdsnap_snapshot_storage - a piece of difference storage
 * @size:      sizeof(struct bdsnap_snapshot_storage).
 * @flags:     must be zero.
 * @id:        the snapshot (ignored by SNAPSHOT_CREATE, which embeds this).
 * @path:      user pointer to a NUL-terminated path: a regular file (also on
 *             tmpfs) or a block device. Opened O_RDWR | O_LARGEFILE by the
 *             module and written only through the VFS.
 * @bytes:     for a regular file, how many bytes of it to use now (the file
 *             is extended with fallocate if it is shorter; 0: its current
 *             size); for a block device, 0 (the whole device) or a length
 *             that must not exceed it.
 * @reserved:  must be zero.
 *
 * Placement (-EXDEV otherwise): the storage's writes must never reach a
 * device of any snapshot, nor a device whose writes such a device's filter
 * sees. The device holding @path (a block device itself, or the device of
 * the file's filesystem) and every device it is stacked on (the whole disk
 * of a partition, the devices under a dm or md device, the device holding a
 * loop device's backing file, recursively) must not be, or overlap, a
 * device of any snapshot (the same device, its whole disk, or a partition of
 * it when the storage is the whole disk), and must not be a snapshot image.
 * A file on a filesystem without a block device (tmpfs) is accepted.
 */
struct bdsnap_snapshot_storage {
	__u32 size;
	__u32 flags;
	__u64 id;
	__u64 path;
	__u64 bytes;
	__u8 reserved[32];
};

/**
 * struct bdsnap_snapshot_create - argument of %BDSNAP_IOCTL_SNAPSHOT_CREATE
 * @size:        sizeof(struct bdsnap_snapshot_create).
 * @flags:       must be zero.
 * @id:          out: the new snapshot's id (never 0, never reused while the
 *               module is loaded).
 * @storage:     the first piece of difference storage (@storage.id ignored).
 * @limit:       the module extends the storage by itself (the last regular
 *               file piece, by fallocate, in steps of @grow_step) while the
 *               total size of all pieces, appended ones included, is below
 *               this; 0: never grow.
 * @grow_step:   bytes added per growth (0: the module default, 64 MiB);
 *               the last step is clipped to @limit.
 * @low_space:   emit %BDSNAP_EVENT_LOW_SPACE when fewer than this many bytes
 *               remain free, once per crossing, before any growth that
 *               follows (0: the module default, 2 * @grow_step).
 * @reserved:    must be zero.
 */
struct bdsnap_snapshot_create {
	__u32 size;
	__u32 flags;
	__u64 id;
	struct bdsnap_snapshot_storage storage;
	__u64 limit;
	__u64 grow_step;
	__u64 low_space;
	__u8 reserved[24];
};

/**
 * struct bdsnap_snapshot_dev - argument of %BDSNAP_IOCTL_SNAPSHOT_ADD
 * @size:     sizeof(struct bdsnap_snapshot_dev).
 * @flags:    must be zero.
 * @id:       a snapshot in state CREATED (-EBUSY otherwise).
 * @dev:      a tracked device (-ENOENT if not tracked; -EBUSY if already in
 *            this or another snapshot, or if a partition of it or its whole
 *            disk is tracked too; -EXDEV if the difference storage of this
 *            or any other snapshot is on it or on a device stacked on it,
 *            see struct bdsnap_snapshot_storage; -ENODEV if its tracker
 *            went away, detached or removed, during the call).
 * @reserved: must be zero.
 */
struct bdsnap_snapshot_dev {
	__u32 size;
	__u32 flags;
	__u64 id;
	struct bdsnap_dev_id dev;
	__u8 reserved[40];
};

/**
 * struct bdsnap_snapshot_ctl - argument of TAKE and DESTROY
 * @size:          sizeof(struct bdsnap_snapshot_ctl).
 * @flags:         TAKE: 0 or %BDSNAP_TAKE_NO_FREEZE; DESTROY: must be zero.
 * @id:            the snapshot.
 * @take_ns:       out (TAKE): nanoseconds from the first freeze to the last
 *                 thaw (with %BDSNAP_TAKE_NO_FREEZE, from the switch to the
 *                 end of the wait below); in: must be zero.
 * @wait_ns:       out (TAKE): nanoseconds of @take_ns the take waited for
 *                 the writes that were in flight at the switch, while
 *                 filesystems stayed frozen; in: must be zero.
 * @writes_waited: out (TAKE): how many writes were in flight at the switch
 *                 (all devices); in: must be zero.
 * @reserved0:     must be zero.
 * @reserved:      must be zero.
 *
 * TAKE switches every device's CBT generation and starts copy-on-write at
 * one instant, then waits (at most the module parameter take_wait_ms) for
 * every write that had passed the filter before that instant, before the
 * first chunk is copied, before the filesystems are thawed and before the
 * images appear. So every write is
 * either wholly in the image and in the generation before the take, or
 * wholly after it and in the next generation. Errors: -ETIMEDOUT (those
 * writes did not complete in time; nothing is taken), -EFBIG (a device
 * needs more chunks than chunk_max_count allows), the errno of a failed
 * filesystem freeze, -EIO/-ENODEV (a device went away meanwhile), -EBUSY
 * (not in state CREATED), -EINVAL (no device).
 */
struct bdsnap_snapshot_ctl {
	__u32 size;
	__u32 flags;
	__u64 id;
	__u64 take_ns;
	__u64 wait_ns;
	__u32 writes_waited;
	__u32 reserved0;
	__u8 reserved[24];
};

/* Do not freeze the filesystems around the switch (raw devices only). */
#define BDSNAP_TAKE_NO_FREEZE	0x00000001U

/**
 * struct bdsnap_snapshot_dev_info - one device of struct bdsnap_snapshot_info
 * @dev:              the original device.
 * @image:            the snapshot image's device (0:0 before TAKE).
 * @chunk_size:       COW granularity in bytes, a power of two.
 * @error:            0, or the positive errno that corrupted the snapshot
 *                    here.
 * @chunks_copied:    chunks whose original data is in difference storage.
 * @chunk_memory:     bytes of kernel memory the device's chunk map uses
 *                    (chunk records and the index nodes that hold them),
 *                    counted against the module parameter
 *                    chunk_memory_max_mib.
 * @reserve_copies:   copies that ran on the copy reserve because memory
 *                    could not be had at once (forward progress under
 *                    memory pressure).
 * @discards_dropped: discards not passed to the device while the snapshot
 *                    was taken (see %BDSNAP_SNAPSHOT_TAKEN).
 * @reserved:         zero.
 */
struct bdsnap_snapshot_dev_info {
	struct bdsnap_dev_id dev;
	struct bdsnap_dev_id image;
	__u32 chunk_size;
	__u32 error;
	__u64 chunks_copied;
	__u64 chunk_memory;
	__u64 reserve_copies;
	__u64 discards_dropped;
	__u8 reserved[8];
};

/**
 * struct bdsnap_snapshot_info - argument of %BDSNAP_IOCTL_SNAPSHOT_INFO
 * @size:          sizeof(struct bdsnap_snapshot_info).
 * @flags:         must be zero.
 * @id:            the snapshot.
 * @state:         out: enum bdsnap_snapshot_state.
 * @error:         out: the positive errno that corrupted it (0 if it is not).
 * @storage_used:  out: bytes of difference storage allocated to chunks.
 * @storage_total: out: bytes of difference storage available now.
 * @storage_limit: out: @limit given at creation.
 * @count:         in: entries @devs has room for; out: devices in the
 *                 snapshot (may exceed the room: then only the first were
 *                 written).
 * @reserved0:     must be zero.
 * @devs:          user pointer to @count struct bdsnap_snapshot_dev_info.
 * @reserved:      must be zero.
 */
struct bdsnap_snapshot_info {
	__u32 size;
	__u32 flags;
	__u64 id;
	__u32 state;
	__u32 error;
	__u64 storage_used;
	__u64 storage_total;
	__u64 storage_limit;
	__u32 count;
	__u32 reserved0;
	__u64 devs;
	__u8 reserved[64];
};

/**
 * struct bdsnap_snapshot_list - argument of %BDSNAP_IOCTL_SNAPSHOT_LIST
 * @size:     sizeof(struct bdsnap_snapshot_list).
 * @count:    in: entries @ids has room for; out: number of snapshots.
 * @ids:      user pointer to @count __u64 ids.
 * @reserved: must be zero.
 */
struct bdsnap_snapshot_list {
	__u32 size;
	__u32 count;
	__u64 ids;
	__u8 reserved[48];
};

/* Event codes (struct bdsnap_event @code). */
enum bdsnap_event_code {
	BDSNAP_EVENT_NONE = 0,		/* timeout: no event */
	BDSNAP_EVENT_LOW_SPACE = 1,	/* free storage below @low_space */
	BDSNAP_EVENT_CORRUPTED = 2,	/* the snapshot is corrupted */
	BDSNAP_EVENT_DEV_REMOVED = 3,	/* a device of the snapshot went away */
	BDSNAP_EVENT_STORAGE_GROWN = 4,	/* the module extended the storage */
	BDSNAP_EVENT_OVERFLOW = 5,	/* events were lost (queue full) */
};

/**
 * struct bdsnap_event - argument of %BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT
 * @size:       sizeof(struct bdsnap_event).
 * @flags:      must be zero.
 * @id:         the snapshot.
 * @timeout_ms: in: how long to wait for an event (0: do not wait).
 * @code:       out: enum bdsnap_event_code; NONE when @timeout_ms passed
 *              without an event (the ioctl still returns 0, so a poller
 *              needs no errno special case).
 * @time_ns:    out: ktime_get_boottime_ns() when the event happened.
 * @dev:        out: the device concerned (CORRUPTED, DEV_REMOVED), else 0:0.
 * @error:      out: CORRUPTED: the positive errno (ENOSPC: storage
 *              exhausted; EIO: storage or original read failed; ENODEV:
 *              device removed; ENOMEM: out of memory in the I/O path;
 *              EDQUOT: the chunk maps reached chunk_memory_max_mib).
 * @reserved0:  zero.
 * @used:       out: bytes of storage used when the event happened.
 * @total:      out: bytes of storage available when the event happened.
 * @limit:      out: the creation limit.
 * @reserved:   must be zero.
 *
 * Events are per snapshot, queued in order, at most 64 pending (then the
 * oldest are dropped and an OVERFLOW event is queued first). An event is
 * taken off the queue by the call that returns it. -EINTR on a signal.
 * A destroyed snapshot wakes its waiters with -ENOENT.
 */
struct bdsnap_event {
	__u32 size;
	__u32 flags;
	__u64 id;
	__u32 timeout_ms;
	__u32 code;
	__u64 time_ns;
	struct bdsnap_dev_id dev;
	__u32 error;
	__u32 reserved0;
	__u64 used;
	__u64 total;
	__u64 limit;
	__u8 reserved[56];
};

#define BDSNAP_IOCTL_SNAPSHOT_CREATE \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x10, struct bdsnap_snapshot_create)
#define BDSNAP_IOCTL_SNAPSHOT_ADD \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x11, struct bdsnap_snapshot_dev)
#define BDSNAP_IOCTL_SNAPSHOT_TAKE \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x12, struct bdsnap_snapshot_ctl)
#define BDSNAP_IOCTL_SNAPSHOT_DESTROY \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x13, struct bdsnap_snapshot_ctl)
#define BDSNAP_IOCTL_SNAPSHOT_INFO \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x14, struct bdsnap_snapshot_info)
#define BDSNAP_IOCTL_SNAPSHOT_LIST \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x15, struct bdsnap_snapshot_list)
#define BDSNAP_IOCTL_SNAPSHOT_APPEND_STORAGE \
	_IOW(BDSNAP_IOCTL_MAGIC, 0x16, struct bdsnap_snapshot_storage)
#define BDSNAP_IOCTL_SNAPSHOT_WAIT_EVENT \
	_IOWR(BDSNAP_IOCTL_MAGIC, 0x17, struct bdsnap_event)

#endif /* _UAPI_LINUX_BDSNAP_H */
