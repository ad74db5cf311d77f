// SPDX-License-Identifier: GPL-2.0
/* ftrace callbacks take struct ftrace_regs * (5.11+), not struct pt_regs * */
#include <linux/ftrace.h>

static void bdsnap_compat_cb(unsigned long ip, unsigned long parent_ip,
			     struct ftrace_ops *op, struct ftrace_regs *fregs)
{
}

ftrace_func_t bdsnap_compat_test(void);
ftrace_func_t bdsnap_compat_test(void)
{
	return bdsnap_compat_cb;
}
