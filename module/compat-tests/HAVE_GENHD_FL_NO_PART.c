// SPDX-License-Identifier: GPL-2.0
/* GENHD_FL_NO_PART (5.17+), formerly GENHD_FL_NO_PART_SCAN */
#include <linux/blkdev.h>

const int bdsnap_compat_flag = GENHD_FL_NO_PART;
