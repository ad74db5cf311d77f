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
#define BDSNAP_VERSION_MINOR	1
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
 * @flags:    must be zero.
 * @dev:      the device to start or stop tracking.
 * @reserved: must be zero.
 *
 * Attach fails with -EBUSY if @dev is already tracked, -ENODEV if it does
 * not exist; detach fails with -ENOENT if @dev is not tracked.
 */
struct bdsnap_tracker_ctl {
	__u32 size;
	__u32 flags;
	struct bdsnap_dev_id dev;
	__u8 reserved[48];
};

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

#endif /* _UAPI_LINUX_BDSNAP_H */
