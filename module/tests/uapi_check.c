// SPDX-License-Identifier: GPL-2.0
/*
 * User space view of the UAPI header: it must compile on its own, strictly,
 * and keep the documented layout (make uapi-check).
 */
#include <assert.h>
#include <stddef.h>
#include <linux/bdsnap.h>

static_assert(sizeof(struct bdsnap_version) == 64, "bdsnap_version size");
static_assert(offsetof(struct bdsnap_version, major) == 4, "major");
static_assert(offsetof(struct bdsnap_version, reserved0) == 10, "reserved0");
static_assert(offsetof(struct bdsnap_version, flags) == 12, "flags");
static_assert(offsetof(struct bdsnap_version, reserved) == 16, "reserved");
static_assert(BDSNAP_IOCTL_VERSION == 0xc040bd00u, "ioctl number");

int main(void)
{
	return 0;
}
