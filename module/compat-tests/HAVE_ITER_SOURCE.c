// SPDX-License-Identifier: GPL-2.0
/* ITER_SOURCE/ITER_DEST iterator directions (6.3+, backported to 6.1) */
#include <linux/uio.h>

const unsigned int bdsnap_compat_dirs[] = { ITER_SOURCE, ITER_DEST };
