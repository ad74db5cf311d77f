// SPDX-License-Identifier: GPL-2.0
/*
 * Copy buffers.
 *
 * A chunk copy needs a buffer for the chunk's old data, from the read of
 * the original until the write to the difference storage. Distribution
 * kernels zero every page they hand out (init_on_alloc=1), so a buffer
 * made of fresh pages costs a clear of the whole chunk before the read
 * overwrites it: profiled under emulation, that zeroing alone took 8% of
 * all CPU time of sequential first writes. Pages freed by a copy are kept
 * in a small stack and handed to the next one instead, up to
 * BDSNAP_BUFFER_CACHE_PAGES; the stack is emptied when the last
 * copy-on-write user goes (bdsnap_buffer_trim()) and at module unload.
 *
 * Forward progress: new pages are taken without reclaim (a copy waiting in
 * reclaim could wait for the writeback of the very writes it holds). When
 * they cannot be had, the copy takes the reserve: 1 MiB of pages and their
 * vector, allocated at load, owned by one copy at a time (a mutex: a copy
 * that waits for it waits only for another copy, which waits only for I/O).
 * That is a mempool of one batch-sized element; a pool of single pages
 * would not do, as two copies holding half of it each would wait for each
 * other.
 *
 * Cached pages hold old data of snapshotted devices: they never leave the
 * module except to be freed, and every user overwrites a buffer (the read
 * of the original) before reading it.
 *
 * Locking: bdsnap_buffer_lock (spinlock, process context only) protects
 * the stack and its count; nothing is taken under it. bdsnap_reserve_lock
 * (mutex) is the reserve's ownership, held from get to put by one copy.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/error-injection.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "buffer.h"

static DEFINE_SPINLOCK(bdsnap_buffer_lock);
static struct page *bdsnap_buffer_stack[BDSNAP_BUFFER_CACHE_PAGES];
static unsigned int bdsnap_buffer_cached;

static DEFINE_MUTEX(bdsnap_reserve_lock);
static struct bio_vec bdsnap_reserve[BDSNAP_BUFFER_RESERVE_PAGES];

/* The most recently cached page, or NULL. */
static struct page *bdsnap_buffer_pop(void)
{
	struct page *page = NULL;

	spin_lock(&bdsnap_buffer_lock);
	if (bdsnap_buffer_cached)
		page = bdsnap_buffer_stack[--bdsnap_buffer_cached];
	spin_unlock(&bdsnap_buffer_lock);
	return page;
}

/* Keep @page for the next copy, or free it when the cache is full. */
static void bdsnap_buffer_push(struct page *page)
{
	bool kept = false;

	spin_lock(&bdsnap_buffer_lock);
	if (bdsnap_buffer_cached < BDSNAP_BUFFER_CACHE_PAGES) {
		bdsnap_buffer_stack[bdsnap_buffer_cached++] = page;
		kept = true;
	}
	spin_unlock(&bdsnap_buffer_lock);
	if (!kept)
		__free_page(page);
}

void bdsnap_buffer_fit(struct bdsnap_buffer *buf, u32 bytes)
{
	unsigned int i;

	buf->nr = DIV_ROUND_UP(bytes, PAGE_SIZE);
	for (i = 0; i < buf->nr; i++)
		buf->bvec[i].bv_len = min_t(u32, PAGE_SIZE,
					    bytes - i * PAGE_SIZE);
}

/*
 * A new page for a copy buffer. Out of line and open to fault injection
 * (fail_function), so that a buffer can be made to fail part way: the pages
 * it already has go back to the cache and the copy takes the reserve.
 */
static noinline struct page *bdsnap_buffer_alloc_page(gfp_t gfp)
{
	return alloc_page(gfp);
}
ALLOW_ERROR_INJECTION(bdsnap_buffer_alloc_page, NULL);

/* @count pages at once without reclaim, or false. */
static bool bdsnap_buffer_try(struct bdsnap_buffer *buf, unsigned int count)
{
	const gfp_t gfp = GFP_NOWAIT | __GFP_NOWARN;
	unsigned int i;

	if (READ_ONCE(bdsnap_force_copy_reserve))
		return false;
	buf->bvec = kcalloc(count, sizeof(*buf->bvec), gfp);
	if (!buf->bvec)
		return false;
	for (i = 0; i < count; i++) {
		struct page *page = bdsnap_buffer_pop();

		if (!page)
			page = bdsnap_buffer_alloc_page(gfp);
		if (!page) {
			buf->nr = i;
			buf->reserve = false;
			bdsnap_buffer_put(buf);
			return false;
		}
		buf->bvec[i].bv_page = page;
		buf->bvec[i].bv_offset = 0;
		buf->bvec[i].bv_len = PAGE_SIZE;
	}
	buf->nr = count;
	return true;
}

void bdsnap_buffer_get(struct bdsnap_buffer *buf, u32 bytes)
{
	unsigned int count = DIV_ROUND_UP(bytes, PAGE_SIZE);

	buf->reserve = false;
	if (bdsnap_buffer_try(buf, count)) {
		buf->bytes = bytes;
		bdsnap_buffer_fit(buf, bytes);
		return;
	}
	mutex_lock(&bdsnap_reserve_lock);
	buf->reserve = true;
	buf->bvec = bdsnap_reserve;
	buf->bytes = min_t(u32, bytes, BDSNAP_BUFFER_RESERVE_PAGES * PAGE_SIZE);
	bdsnap_buffer_fit(buf, buf->bytes);
}

void bdsnap_buffer_put(struct bdsnap_buffer *buf)
{
	unsigned int i;

	if (buf->reserve) {
		bdsnap_buffer_fit(buf, BDSNAP_BUFFER_RESERVE_PAGES * PAGE_SIZE);
		mutex_unlock(&bdsnap_reserve_lock);
		return;
	}
	for (i = 0; i < buf->nr; i++)
		bdsnap_buffer_push(buf->bvec[i].bv_page);
	kfree(buf->bvec);
}

void bdsnap_buffer_trim(void)
{
	struct page *page;

	/* One page at a time: the lock is never held across a free. */
	while ((page = bdsnap_buffer_pop()))
		__free_page(page);
}

int bdsnap_buffer_init_module(void)
{
	unsigned int i;

	for (i = 0; i < BDSNAP_BUFFER_RESERVE_PAGES; i++) {
		struct page *page = alloc_page(GFP_KERNEL);

		if (!page) {
			bdsnap_buffer_exit_module();
			return -ENOMEM;
		}
		bdsnap_reserve[i].bv_page = page;
		bdsnap_reserve[i].bv_offset = 0;
		bdsnap_reserve[i].bv_len = PAGE_SIZE;
	}
	return 0;
}

void bdsnap_buffer_exit_module(void)
{
	unsigned int i;

	bdsnap_buffer_trim();
	for (i = 0; i < BDSNAP_BUFFER_RESERVE_PAGES; i++) {
		if (bdsnap_reserve[i].bv_page)
			__free_page(bdsnap_reserve[i].bv_page);
		bdsnap_reserve[i].bv_page = NULL;
	}
}
