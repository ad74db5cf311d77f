// SPDX-License-Identifier: GPL-2.0
/*
 * The hooks: bdfilter runs its own functions instead of submit_bio_noacct()
 * and del_gendisk(), on stock kernels, without kallsyms.
 *
 * An ftrace_ops with FTRACE_OPS_FL_IPMODIFY, set on one function by name,
 * calls bdfilter_ftrace_callback() at that function's entry; the callback
 * moves the instruction pointer to the replacement, which has the same
 * prototype and so returns straight to the original caller. A call made
 * from this module (parent_ip inside it) is let through: that is how the
 * replacements reach the real functions, through the pass-through functions
 * bdfilter_call_*(). Those must really call: compiled as a tail call (a jmp),
 * parent_ip would be our caller's in the kernel, the callback would redirect
 * the call to the replacement again, and a bio would loop for ever (seen as
 * a soft lockup). A compiler barrier after the call keeps it a call; the
 * objdump of the built module shows a call instruction.
 *
 * The hooks are permanent ftrace ops (FTRACE_OPS_FL_PERMANENT): function
 * tracing cannot be switched off under them, see bdfilter_hook_register().
 *
 * Why del_gendisk() and not the holder ops' ->mark_dead() (6.5+): the block
 * layer calls ->mark_dead() only for the exclusive holder of a device, and an
 * exclusive open would stop the user from mounting or mkfs-ing the device we
 * filter. del_gendisk() is where every kernel tears a disk down.
 *
 * Context: the ftrace callback runs in the caller's context, whatever it is:
 * it must not sleep and only touches the registers. The submit_bio_noacct()
 * replacement runs in the submitter's context and sleeps only if a filter
 * does; the del_gendisk() replacement runs in process context and may sleep.
 *
 * Unloading: bdfilter_text_srcu covers every thread inside a replacement,
 * also while it sleeps in the real function, so that module exit can wait
 * for them once the hooks are unregistered.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/ftrace.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/srcu.h>
#include <linux/string.h>

#include "compat.h"
#include "filter.h"

struct bdfilter_hook {
	char name[32];			/* the hooked kernel function */
	unsigned long replacement;	/* where the callback sends its callers */
	struct ftrace_ops ops;
	bool registered;
};

static struct srcu_struct bdfilter_text_srcu;

/*
 * The only place that calls the real submit_bio_noacct(): noinline, so that
 * the call sits in this module, and a barrier after it, so that it is never
 * a tail call (see the top of this file).
 */
static noinline unsigned int bdfilter_call_submit_bio_noacct(struct bio *bio)
{
	unsigned int cookie = bdfilter_real_submit_bio_noacct(bio);

	barrier();
	return cookie;
}

/* The only place that calls the real del_gendisk(); as above. */
static noinline void bdfilter_call_del_gendisk(struct gendisk *disk)
{
	del_gendisk(disk);
	barrier();
}

static unsigned int bdfilter_handle_bio(struct bio *bio)
{
	unsigned int cookie = BDFILTER_NO_COOKIE;
	int idx;

	idx = srcu_read_lock(&bdfilter_text_srcu);
	if (bdfilter_filter_bio(bio) == BDFILTER_PASS)
		cookie = bdfilter_call_submit_bio_noacct(bio);
	srcu_read_unlock(&bdfilter_text_srcu, idx);
	return cookie;
}

/*
 * Runs instead of submit_bio_noacct(); see bdfilter_real_submit_bio_noacct()
 * in compat.h for why it returns an unsigned int on every kernel.
 */
static unsigned int bdfilter_submit_bio_noacct_hook(struct bio *bio)
{
	return bdfilter_handle_bio(bio);
}

/* Runs instead of del_gendisk(). Process context; may sleep. */
static void bdfilter_del_gendisk_hook(struct gendisk *disk)
{
	struct bdfilter_op removal;
	int idx;

	idx = srcu_read_lock(&bdfilter_text_srcu);
	bdfilter_removal_begin(&removal, disk);
	bdfilter_call_del_gendisk(disk);
	bdfilter_removal_end(&removal);
	srcu_read_unlock(&bdfilter_text_srcu, idx);
}

/*
 * Submit @bio past every filter: see bdfilter.h. The caller is a filter
 * driver, which depends on this module, so no unload can race with it.
 */
void bdfilter_submit_bio(struct bio *bio)
{
	bdfilter_call_submit_bio_noacct(bio);
}
EXPORT_SYMBOL_GPL(bdfilter_submit_bio);

/* The rest of @bio's chain after @flt, then the device: see bdfilter.h. */
void bdfilter_resubmit_bio(const struct bdfilter *flt, struct bio *bio)
{
	if (bdfilter_filter_bio_after(flt, bio) == BDFILTER_PASS)
		bdfilter_call_submit_bio_noacct(bio);
}
EXPORT_SYMBOL_GPL(bdfilter_resubmit_bio);

/* Called by ftrace at the entry of a hooked function. Must not sleep. */
static void notrace bdfilter_ftrace_callback(unsigned long ip,
					     unsigned long parent_ip,
					     struct ftrace_ops *ops,
					     struct bdsnap_ftrace_regs *regs)
{
	struct bdfilter_hook *hook = container_of(ops, struct bdfilter_hook,
						  ops);

	if (within_module(parent_ip, THIS_MODULE))
		return;
	bdsnap_ftrace_set_ip(regs, hook->replacement);
}

static struct bdfilter_hook bdfilter_hooks[] = {
	{
		.name = "submit_bio_noacct",
		.replacement = (unsigned long)bdfilter_submit_bio_noacct_hook,
	},
	{
		.name = "del_gendisk",
		.replacement = (unsigned long)bdfilter_del_gendisk_hook,
	},
};

/*
 * Free the hook's filter hash. ftrace_free_filter() is not exported before
 * 5.11; emptying the filter frees the hash on every kernel (an empty filter
 * needs no allocation). The hook must be unregistered. May sleep.
 */
static void bdfilter_hook_free_filter(struct bdfilter_hook *hook)
{
	ftrace_set_filter(&hook->ops, NULL, 0, 1);
}

/* Process context; may sleep. */
static int bdfilter_hook_register(struct bdfilter_hook *hook)
{
	int ret;

	hook->ops.func = bdfilter_ftrace_callback;
	/*
	 * SAVE_REGS: 5.10 passes the registers only with it, and the callback
	 * needs them on every kernel to move the instruction pointer.
	 * PERMANENT: while the hook is registered, ftrace refuses
	 * "sysctl kernel.ftrace_enabled=0" (EBUSY), which would switch the
	 * hook off silently and let every bio bypass the filters; and with
	 * ftrace switched off, registering fails (EBUSY) instead of
	 * succeeding with the hook inactive.
	 */
	hook->ops.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY |
			  FTRACE_OPS_FL_PERMANENT |
			  BDFILTER_FTRACE_FL_RECURSION_SAFE;
	ret = ftrace_set_filter(&hook->ops, (unsigned char *)hook->name,
				strlen(hook->name), 1);
	if (ret) {
		pr_err("cannot hook %s: ftrace_set_filter: %d\n", hook->name,
		       ret);
		return ret;
	}
	ret = register_ftrace_function(&hook->ops);
	/* ftrace_enabled is not exported: name both causes of EBUSY. */
	if (ret == -EBUSY)
		pr_err("cannot hook %s: busy: function tracing is switched off (sysctl kernel.ftrace_enabled=0: switch it on with sysctl -w kernel.ftrace_enabled=1), or another ftrace user (a live patch) modifies %s\n",
		       hook->name, hook->name);
	else if (ret)
		pr_err("cannot hook %s: register_ftrace_function: %d\n",
		       hook->name, ret);
	if (ret) {
		bdfilter_hook_free_filter(hook);
		return ret;
	}
	hook->registered = true;
	return 0;
}

/* Unregister every registered hook, last first. May sleep. */
static void bdfilter_hooks_unregister(void)
{
	int i;

	for (i = ARRAY_SIZE(bdfilter_hooks) - 1; i >= 0; i--) {
		struct bdfilter_hook *hook = &bdfilter_hooks[i];

		if (!hook->registered)
			continue;
		unregister_ftrace_function(&hook->ops);
		hook->registered = false;
	}
}

/*
 * Wait until no thread runs a replacement any more, then free the hooks.
 * May sleep.
 */
static void bdfilter_hooks_free(void)
{
	int i;

	/* Threads inside a replacement, perhaps asleep in the real function. */
	synchronize_srcu(&bdfilter_text_srcu);
	/*
	 * Threads between ftrace's jump and srcu_read_lock(), or after
	 * srcu_read_unlock(): they never sleep there, but may be preempted.
	 */
	if (IS_ENABLED(CONFIG_TASKS_RCU))
		synchronize_rcu_tasks();
	else
		synchronize_rcu();
	for (i = 0; i < ARRAY_SIZE(bdfilter_hooks); i++)
		bdfilter_hook_free_filter(&bdfilter_hooks[i]);
	cleanup_srcu_struct(&bdfilter_text_srcu);
}

/* Process context; may sleep. */
int bdfilter_hooks_init(void)
{
	int ret;
	int i;

	ret = init_srcu_struct(&bdfilter_text_srcu);
	if (ret)
		return ret;
	for (i = 0; i < ARRAY_SIZE(bdfilter_hooks); i++) {
		ret = bdfilter_hook_register(&bdfilter_hooks[i]);
		if (ret)
			goto err_unregister;
	}
	return 0;

err_unregister:
	bdfilter_hooks_unregister();
	bdfilter_hooks_free();
	return ret;
}

/* Process context; may sleep. */
void bdfilter_hooks_exit(void)
{
	bdfilter_hooks_unregister();
	bdfilter_hooks_free();
}
