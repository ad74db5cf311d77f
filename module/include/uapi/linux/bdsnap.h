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

#endif /* _UAPI_LINUX_BDSNAP_H */
