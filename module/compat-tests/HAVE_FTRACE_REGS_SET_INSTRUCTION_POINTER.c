// SPDX-License-Identifier: GPL-2.0
/* ftrace_regs_set_instruction_pointer() (6.2+) */
#include <linux/ftrace.h>

void bdsnap_compat_test(struct ftrace_regs *fregs, unsigned long ip);
void bdsnap_compat_test(struct ftrace_regs *fregs, unsigned long ip)
{
	ftrace_regs_set_instruction_pointer(fregs, ip);
}
