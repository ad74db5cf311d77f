// SPDX-License-Identifier: GPL-2.0
/* ftrace_instruction_pointer_set() (5.11 to 6.1) */
#include <linux/ftrace.h>

void bdsnap_compat_test(struct ftrace_regs *fregs, unsigned long ip);
void bdsnap_compat_test(struct ftrace_regs *fregs, unsigned long ip)
{
	ftrace_instruction_pointer_set(fregs, ip);
}
