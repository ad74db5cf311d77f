// SPDX-License-Identifier: GPL-2.0
/* struct blk_holder_ops with a mark_dead callback (6.5+) */
#include <linux/blkdev.h>

size_t bdsnap_compat_test(void);
size_t bdsnap_compat_test(void)
{
	return sizeof(((struct blk_holder_ops *)NULL)->mark_dead);
}
