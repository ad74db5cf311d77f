/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the supported kernels (5.10 and newer).
 *
 * This is the only file that may test HAVE_xxx macros or kernel versions;
 * everything else calls the bdsnap_* shims below. The HAVE_xxx macros come
 * from compat_config.h, which the build generates by compiling each snippet
 * in compat-tests/ against the target kernel's headers: a feature is there
 * when its snippet compiles, whatever the version number says (distribution
 * kernels backport).
 */
#ifndef BDSNAP_COMPAT_H
#define BDSNAP_COMPAT_H

#include "compat_config.h"

#include <linux/ftrace.h>

/*
 * Type of the last argument of an ftrace callback: struct ftrace_regs since
 * 5.11, struct pt_regs before.
 */
#ifdef HAVE_FTRACE_FUNC_T_FTRACE_REGS
#define bdsnap_ftrace_regs ftrace_regs
#else
#define bdsnap_ftrace_regs pt_regs
#endif

/*
 * Make an IPMODIFY ftrace callback resume at @ip instead of the traced
 * function. The ftrace_ops must have FTRACE_OPS_FL_SAVE_REGS on kernels whose
 * callbacks get struct pt_regs.
 */
static inline void bdsnap_ftrace_set_ip(struct bdsnap_ftrace_regs *regs,
					unsigned long ip)
{
#if defined(HAVE_FTRACE_REGS_SET_INSTRUCTION_POINTER)
	ftrace_regs_set_instruction_pointer(regs, ip);
#elif defined(HAVE_FTRACE_INSTRUCTION_POINTER_SET)
	ftrace_instruction_pointer_set(regs, ip);
#elif !defined(HAVE_FTRACE_FUNC_T_FTRACE_REGS)
	instruction_pointer_set(regs, ip);
#else
#error "no way to set the instruction pointer from an ftrace callback"
#endif
}

#endif /* BDSNAP_COMPAT_H */
