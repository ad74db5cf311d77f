// SPDX-License-Identifier: GPL-2.0
/* REQ_OP_WRITE_SAME exists (removed in 5.18) */
#include <linux/blk_types.h>

int bdsnap_compat_test(void);
int bdsnap_compat_test(void)
{
	return REQ_OP_WRITE_SAME;
}
