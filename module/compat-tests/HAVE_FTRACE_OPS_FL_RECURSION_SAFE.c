// SPDX-License-Identifier: GPL-2.0
/*
 * FTRACE_OPS_FL_RECURSION_SAFE (before 5.11): without it ftrace wraps the
 * callback in its own recursion check, which may skip the callback.
 */
#include <linux/ftrace.h>

unsigned long bdsnap_compat_test(void);
unsigned long bdsnap_compat_test(void)
{
	return FTRACE_OPS_FL_RECURSION_SAFE;
}
