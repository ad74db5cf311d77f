// SPDX-License-Identifier: GPL-2.0
/* struct bio names its device by bi_bdev (5.12+), not bi_disk + bi_partno */
#include <linux/blk_types.h>

size_t bdsnap_compat_test(void);
size_t bdsnap_compat_test(void)
{
	return sizeof(((struct bio *)NULL)->bi_bdev);
}
