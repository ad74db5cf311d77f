// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap_memcheck: commits one memory error on purpose, so that the test
 * harness can prove it notices what the kernel's own memory checkers report.
 * Test-only: the harness installs it into its test guests, nothing else does.
 *
 * Load it with mode=NAME. It commits the error of that mode, lets the checker
 * report it, and then fails its own load with -EAGAIN, so it never stays
 * loaded:
 *
 *   slub-redzone        write one byte past a kmalloc() object, then free it;
 *                       slub_debug=FZ reports the right red zone at the free.
 *   slub-poison         write to a kmalloc() object after freeing it;
 *                       slub_debug=FP reports the poison when the cache is
 *                       validated (echo 1 > /sys/kernel/slab/kmalloc-64/validate)
 *                       or the object is allocated again.
 *   slub-double-free    free a kmalloc() object twice; slub_debug=F finds it
 *                       already on the free list ("Object already free"). Not
 *                       used by the self-tests: SLUB's repair leaves the slab's
 *                       counters wrong on some kernels (seen: a false "Left
 *                       Redzone overwritten" on 5.10 at the next validation; an
 *                       oops in get_partial_node() within a second on 6.1).
 *   kfence-oob-read     read the guard page next to a KFENCE object.
 *   kfence-oob-write    write the guard page next to a KFENCE object.
 *   kfence-uaf          read a KFENCE object after freeing it.
 *   kfence-invalid-free free a KFENCE object twice.
 *   kfence-corruption   write the unused bytes of a KFENCE object's page
 *                       (its canary), then free it.
 *
 * The kfence-* modes need CONFIG_KFENCE and a kernel booted with
 * kfence.sample_interval > 0: the module allocates until it gets an object
 * from the KFENCE pool, for at most kfence_timeout_ms.
 *
 * A load that fails with anything but -EAGAIN committed no error: -EINVAL for
 * an unknown mode, -EOPNOTSUPP when the checker the mode needs is not active
 * (so the error would go unnoticed, and is not committed), -ETIMEDOUT when no
 * KFENCE object came in time, -ENOMEM when an allocation failed.
 *
 * Every function here may sleep: they run from the module's init only.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/poison.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#ifdef CONFIG_KFENCE
#include <linux/kfence.h>
#endif

/*
 * The size of every object: a kmalloc size class of its own (kmalloc-64), so
 * the object has no slack before its right red zone and slub-poison names the
 * cache to validate.
 */
#define MEMCHECK_OBJECT_SIZE 64

/* What every error writes: neither a SLUB poison nor a red zone value. */
#define MEMCHECK_BYTE 0x2a

static char *mode;
module_param(mode, charp, 0);
MODULE_PARM_DESC(mode,
		 "the error to commit: slub-redzone, slub-poison, slub-double-free, kfence-oob-read, kfence-oob-write, kfence-uaf, kfence-invalid-free, kfence-corruption");

static unsigned int kfence_timeout_ms = 20000;
module_param(kfence_timeout_ms, uint, 0);
MODULE_PARM_DESC(kfence_timeout_ms,
		 "how long kfence-* modes allocate, at most, to get a KFENCE object (default 20000)");

static bool memcheck_in_kfence_pool(const void *addr)
{
#ifdef CONFIG_KFENCE
	return is_kfence_address(addr);
#else
	return false;
#endif
}

/*
 * A kmalloc() object that SLUB itself manages: an object KFENCE happened to
 * sample would make KFENCE report instead of slub_debug. KFENCE samples one
 * allocation per interval, so a second try always does.
 */
static u8 *slub_object(void)
{
	u8 *p;
	int tries;

	for (tries = 0; tries < 8; tries++) {
		p = kmalloc(MEMCHECK_OBJECT_SIZE, GFP_KERNEL);
		if (!p || !memcheck_in_kfence_pool(p))
			return p;
		kfree(p);
	}
	return NULL;
}

/* Sleeps. The caller frees the object (or frees it wrongly, on purpose). */
static int slub_redzone(void)
{
	u8 *p = slub_object();

	if (!p)
		return -ENOMEM;
	/* Keep the compiler from seeing, and warning about, the overflow. */
	OPTIMIZER_HIDE_VAR(p);
	if (READ_ONCE(p[MEMCHECK_OBJECT_SIZE]) != SLUB_RED_ACTIVE) {
		pr_err("no red zone after a kmalloc-%d object: boot with slub_debug=FZP\n",
		       MEMCHECK_OBJECT_SIZE);
		kfree(p);
		return -EOPNOTSUPP;
	}
	WRITE_ONCE(p[MEMCHECK_OBJECT_SIZE], MEMCHECK_BYTE);
	/* slub_debug=F checks the red zones of every object freed. */
	kfree(p);
	return 0;
}

/*
 * Frees a fresh kmalloc() object and returns its address, or NULL when the
 * freed object does not hold SLUB's poison: slub_debug=P is off, or another
 * allocation took the object at once. Either way it must not be touched.
 */
static u8 *slub_freed_object(int *err)
{
	u8 *p = slub_object();

	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	kfree(p);
	OPTIMIZER_HIDE_VAR(p);
	if (READ_ONCE(p[0]) != POISON_FREE) {
		pr_err("a freed kmalloc-%d object holds no poison: boot with slub_debug=FZP\n",
		       MEMCHECK_OBJECT_SIZE);
		*err = -EOPNOTSUPP;
		return NULL;
	}
	return p;
}

static int slub_poison(void)
{
	int err = 0;
	u8 *p = slub_freed_object(&err);

	if (!p)
		return err;
	WRITE_ONCE(p[0], MEMCHECK_BYTE);
	pr_info("wrote to a freed kmalloc-%d object; validating the cache or allocating the object again reports it\n",
		MEMCHECK_OBJECT_SIZE);
	return 0;
}

static int slub_double_free(void)
{
	int err = 0;
	u8 *p = slub_freed_object(&err);

	if (!p)
		return err;
	/* slub_debug=F looks for every object freed on its slab's free list. */
	kfree(p);
	return 0;
}

#ifdef CONFIG_KFENCE

/* The size of a KFENCE object: any size up to a page is sampled alike. */
#define MEMCHECK_KFENCE_SIZE 32

/*
 * Allocates until KFENCE samples one of the allocations, for at most
 * kfence_timeout_ms. KFENCE opens its gate once every kfence.sample_interval
 * and the next allocation of the whole system goes through it, so this takes
 * a few intervals at most on an idle guest.
 */
static u8 *kfence_object(int *err)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(kfence_timeout_ms);
	unsigned long tries = 0;
	u8 *p;

	do {
		p = kmalloc(MEMCHECK_KFENCE_SIZE, GFP_KERNEL);
		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		tries++;
		if (is_kfence_address(p)) {
			pr_info("KFENCE object after %lu allocation(s)\n", tries);
			OPTIMIZER_HIDE_VAR(p);
			return p;
		}
		kfree(p);
		cond_resched();
	} while (time_before(jiffies, deadline));

	pr_err("no KFENCE object in %lu allocations over %u ms: is kfence.sample_interval set?\n",
	       tries, kfence_timeout_ms);
	*err = -ETIMEDOUT;
	return NULL;
}

/*
 * KFENCE puts each object at the start or at the end of its page, between
 * two guard pages: the byte of the guard page next to the object.
 */
static u8 *kfence_guard_byte(u8 *p)
{
	if (offset_in_page(p) == 0)
		return p - 1;
	return (u8 *)PAGE_ALIGN((unsigned long)(p + MEMCHECK_KFENCE_SIZE));
}

/*
 * A byte of the object's page outside the object: KFENCE fills those with a
 * canary pattern and checks it when the object is freed.
 */
static u8 *kfence_canary_byte(u8 *p)
{
	if (offset_in_page(p) == 0)
		return p + MEMCHECK_KFENCE_SIZE;
	return p - 1;
}

static int kfence_error(const char *name)
{
	int err = 0;
	u8 *p = kfence_object(&err);

	if (!p)
		return err;
	if (!strcmp(name, "kfence-oob-read")) {
		pr_info("read of the guard byte: %#x\n",
			READ_ONCE(*kfence_guard_byte(p)));
		kfree(p);
	} else if (!strcmp(name, "kfence-oob-write")) {
		WRITE_ONCE(*kfence_guard_byte(p), MEMCHECK_BYTE);
		kfree(p);
	} else if (!strcmp(name, "kfence-uaf")) {
		kfree(p);
		OPTIMIZER_HIDE_VAR(p);
		pr_info("read after free: %#x\n", READ_ONCE(p[0]));
	} else if (!strcmp(name, "kfence-invalid-free")) {
		kfree(p);
		OPTIMIZER_HIDE_VAR(p);
		kfree(p);
	} else {
		WRITE_ONCE(*kfence_canary_byte(p), MEMCHECK_BYTE);
		/* KFENCE checks the canary when the object is freed. */
		kfree(p);
	}
	return 0;
}

#else /* !CONFIG_KFENCE */

static int kfence_error(const char *name)
{
	pr_err("%s: this kernel has no KFENCE (CONFIG_KFENCE)\n", name);
	return -EOPNOTSUPP;
}

#endif /* CONFIG_KFENCE */

static int memcheck_mode(const char *name)
{
	static const char * const kfence_modes[] = {
		"kfence-oob-read", "kfence-oob-write", "kfence-uaf",
		"kfence-invalid-free", "kfence-corruption",
	};
	size_t i;

	if (!strcmp(name, "slub-redzone"))
		return slub_redzone();
	if (!strcmp(name, "slub-poison"))
		return slub_poison();
	if (!strcmp(name, "slub-double-free"))
		return slub_double_free();
	for (i = 0; i < ARRAY_SIZE(kfence_modes); i++) {
		if (!strcmp(name, kfence_modes[i]))
			return kfence_error(name);
	}
	pr_err("unknown mode \"%s\" (see modinfo -p bdsnap_memcheck)\n", name);
	return -EINVAL;
}

static int __init memcheck_init(void)
{
	int err;

	if (!mode) {
		pr_err("no mode given: load with mode=NAME (see modinfo -p bdsnap_memcheck)\n");
		return -EINVAL;
	}
	pr_info("%s: committing the error\n", mode);
	err = memcheck_mode(mode);
	if (err)
		return err;
	pr_info("%s: done; failing the load on purpose\n", mode);
	return -EAGAIN;
}
module_init(memcheck_init);

MODULE_DESCRIPTION("bdsnap test harness: commit one memory error for slub_debug or KFENCE to report");
MODULE_LICENSE("GPL");
