// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap_debugcheck: commits one defect on purpose, so that the test harness
 * can prove it notices what a debug kernel's checkers report. Test-only: the
 * harness installs it into its test guests, nothing else does.
 *
 * Load it with mode=NAME. Every mode but kmemleak-leak commits its defect,
 * lets the checker report it and fails the load with -EAGAIN:
 *
 *   lock-inversion   take mutex A then B, later B then A (one thread, so
 *                    nothing deadlocks); lockdep reports a possible circular
 *                    locking dependency.
 *   kasan-uaf        read a kmalloc() object after freeing it; KASAN
 *                    reports a slab-use-after-free.
 *   kasan-oob        read one byte past a kmalloc() object; KASAN reports a
 *                    slab-out-of-bounds.
 *   ubsan-bounds     index an array past its end; UBSAN reports an
 *                    array-index-out-of-bounds.
 *   odebug-free      free memory holding an armed timer; DEBUG_OBJECTS
 *                    reports "free active" (and its fixup stops the timer).
 *   list-corruption  list_add() after a node whose neighbour link is wrong;
 *                    DEBUG_LIST refuses the add and reports it.
 *   atomic-sleep     might_sleep() with preemption off; DEBUG_ATOMIC_SLEEP
 *                    reports a sleeping function called from invalid context.
 *   kmemleak-leak    allocate and forget kmalloc() objects, and stay loaded
 *                    (so the report's backtrace names this module until it is
 *                    unloaded); the next kmemleak scan reports it as
 *                    unreferenced.
 *
 * A load that fails with anything but -EAGAIN (or succeeds for another mode
 * than kmemleak-leak) committed nothing: -EINVAL for an unknown mode,
 * -EOPNOTSUPP when the checker the mode needs is not in this kernel, so the
 * defect would go unnoticed.
 *
 * Locking: the two mutexes exist only to be taken in both orders, by init.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timer.h>

#define DEBUGCHECK_OBJECT_SIZE 64
#define DEBUGCHECK_LEAKS 8

static char *mode;
module_param(mode, charp, 0);
MODULE_PARM_DESC(mode,
		 "the defect to commit: lock-inversion, kasan-uaf, kasan-oob, ubsan-bounds, odebug-free, list-corruption, atomic-sleep or kmemleak-leak");

/* An index the compiler cannot see through: past the end of a 4-entry array. */
static unsigned int bad_index = 4;
module_param(bad_index, uint, 0);
MODULE_PARM_DESC(bad_index, "array index ubsan-bounds uses (default 4, one past the end)");

static DEFINE_MUTEX(debugcheck_a);
static DEFINE_MUTEX(debugcheck_b);

static int needs(bool present, const char *option)
{
	if (present)
		return 0;
	pr_err("this kernel has no %s: the defect would go unnoticed\n", option);
	return -EOPNOTSUPP;
}

static int lock_inversion(void)
{
	int err = needs(IS_ENABLED(CONFIG_PROVE_LOCKING), "CONFIG_PROVE_LOCKING");

	if (err)
		return err;
	mutex_lock(&debugcheck_a);
	mutex_lock(&debugcheck_b);
	mutex_unlock(&debugcheck_b);
	mutex_unlock(&debugcheck_a);

	mutex_lock(&debugcheck_b);
	mutex_lock(&debugcheck_a);
	mutex_unlock(&debugcheck_a);
	mutex_unlock(&debugcheck_b);
	return 0;
}

static int kasan_access(bool after_free)
{
	int err = needs(IS_ENABLED(CONFIG_KASAN), "CONFIG_KASAN");
	u8 *p;

	if (err)
		return err;
	p = kmalloc(DEBUGCHECK_OBJECT_SIZE, GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	memset(p, 0, DEBUGCHECK_OBJECT_SIZE);
	OPTIMIZER_HIDE_VAR(p);
	if (after_free) {
		kfree(p);
		pr_info("read after free: %u\n", READ_ONCE(p[0]));
		return 0;
	}
	pr_info("read out of bounds: %u\n", READ_ONCE(p[DEBUGCHECK_OBJECT_SIZE]));
	kfree(p);
	return 0;
}

static int ubsan_bounds(void)
{
	int err = needs(IS_ENABLED(CONFIG_UBSAN_BOUNDS), "CONFIG_UBSAN_BOUNDS");
	int values[4] = { 1, 2, 3, 4 };

	if (err)
		return err;
	if (bad_index >= 64)
		return -EINVAL;
	/* Past the end by design; the stack slot read is never used. */
	pr_info("read past the array: %d\n", values[READ_ONCE(bad_index)]);
	return 0;
}

struct debugcheck_timer {
	struct timer_list timer;
};

static void debugcheck_timer_fn(struct timer_list *t)
{
	pr_info("timer fired\n");
}

static int odebug_free(void)
{
	int err = needs(IS_ENABLED(CONFIG_DEBUG_OBJECTS_TIMERS) &&
			IS_ENABLED(CONFIG_DEBUG_OBJECTS_FREE),
			"CONFIG_DEBUG_OBJECTS_TIMERS and CONFIG_DEBUG_OBJECTS_FREE");
	struct debugcheck_timer *t;

	if (err)
		return err;
	t = kmalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	timer_setup(&t->timer, debugcheck_timer_fn, 0);
	mod_timer(&t->timer, jiffies + 3600 * HZ);
	/* DEBUG_OBJECTS' fixup deactivates the timer before the memory goes. */
	kfree(t);
	return 0;
}

static int list_corruption(void)
{
	int err = needs(IS_ENABLED(CONFIG_DEBUG_LIST), "CONFIG_DEBUG_LIST");
	struct list_head head, stray;

	if (err)
		return err;
	if (IS_ENABLED(CONFIG_BUG_ON_DATA_CORRUPTION)) {
		pr_err("CONFIG_BUG_ON_DATA_CORRUPTION would kill the loading task\n");
		return -EOPNOTSUPP;
	}
	INIT_LIST_HEAD(&head);
	INIT_LIST_HEAD(&stray);
	/* head.next->prev must be &head; make it point elsewhere. */
	head.prev = &stray;
	list_add(&stray, &head);
	return 0;
}

static int atomic_sleep(void)
{
	int err = needs(IS_ENABLED(CONFIG_DEBUG_ATOMIC_SLEEP), "CONFIG_DEBUG_ATOMIC_SLEEP");

	if (err)
		return err;
	preempt_disable();
	might_sleep();
	preempt_enable();
	return 0;
}

/*
 * Not inlined into (and freed with) the init code: the leak's backtrace then
 * names this function and the module for as long as the module is loaded.
 */
static noinline int kmemleak_leak(void)
{
	int err = needs(IS_ENABLED(CONFIG_DEBUG_KMEMLEAK), "CONFIG_DEBUG_KMEMLEAK");
	void *p;
	int i;

	if (err)
		return err;
	/*
	 * Several objects: a stale copy of a pointer left in a dead stack frame
	 * (kept in the kernel's stack cache, which kmemleak scans) hides the
	 * object it points to, so one object alone may go unreported.
	 */
	for (i = 0; i < DEBUGCHECK_LEAKS; i++) {
		p = kmalloc(DEBUGCHECK_OBJECT_SIZE, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		memset(p, 0x2a, DEBUGCHECK_OBJECT_SIZE);
		OPTIMIZER_HIDE_VAR(p);
	}
	pr_info("leaked %d %d-byte objects\n", DEBUGCHECK_LEAKS, DEBUGCHECK_OBJECT_SIZE);
	return 0;
}

static int __init debugcheck_init(void)
{
	static const struct {
		const char *name;
		int (*commit)(void);
	} modes[] = {
		{ "lock-inversion", lock_inversion },
		{ "ubsan-bounds", ubsan_bounds },
		{ "odebug-free", odebug_free },
		{ "list-corruption", list_corruption },
		{ "atomic-sleep", atomic_sleep },
	};
	size_t i;
	int err;

	if (!mode) {
		pr_err("no mode given: load with mode=NAME (see modinfo -p bdsnap_debugcheck)\n");
		return -EINVAL;
	}
	pr_info("%s: committing the defect\n", mode);
	if (!strcmp(mode, "kmemleak-leak"))
		return kmemleak_leak();
	if (!strcmp(mode, "kasan-uaf") || !strcmp(mode, "kasan-oob")) {
		err = kasan_access(!strcmp(mode, "kasan-uaf"));
	} else {
		for (i = 0; i < ARRAY_SIZE(modes); i++) {
			if (!strcmp(mode, modes[i].name))
				break;
		}
		if (i == ARRAY_SIZE(modes)) {
			pr_err("unknown mode \"%s\" (see modinfo -p bdsnap_debugcheck)\n", mode);
			return -EINVAL;
		}
		err = modes[i].commit();
	}
	if (err)
		return err;
	pr_info("%s: done; failing the load on purpose\n", mode);
	return -EAGAIN;
}
module_init(debugcheck_init);

static void __exit debugcheck_exit(void)
{
}
module_exit(debugcheck_exit);

MODULE_DESCRIPTION("bdsnap test harness: commit one defect for a debug kernel's checkers to report");
MODULE_LICENSE("GPL");
