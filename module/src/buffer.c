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
 * Cached pages hold old data of snapshotted devices: they never leave the
 * module except to be freed, and every user overwrites a buffer (the read
 * of the original) before reading it.
 *
 * Locking: bdsnap_buffer_lock (spinlock, process context only) protects
 * the stack and its count; nothing is taken under it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "buffer.h"

static DEFINE_SPINLOCK(bdsnap_buffer_lock);
static struct page *bdsnap_buffer_stack[BDSNAP_BUFFER_CACHE_PAGES];
static unsigned int bdsnap_buffer_cached;

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

/*
 * A buffer of @bytes as an array of single-page bvecs, *@nr of them.
 * Process context, may sleep; the caller runs in a noio scope. Returns
 * NULL when memory is short.
 */
struct bio_vec *bdsnap_buffer_alloc(u32 bytes, unsigned int *nr)
{
	unsigned int count = DIV_ROUND_UP(bytes, PAGE_SIZE);
	struct bio_vec *bvec;
	unsigned int i;

	/* GFP_KERNEL within the noio scope: kvmalloc may use vmalloc. */
	bvec = kvcalloc(count, sizeof(*bvec), GFP_KERNEL);
	if (!bvec)
		return NULL;
	for (i = 0; i < count; i++) {
		struct page *page = bdsnap_buffer_pop();

		if (!page)
			page = alloc_page(GFP_NOIO);
		if (!page) {
			bdsnap_buffer_free(bvec, i);
			return NULL;
		}
		bvec[i].bv_page = page;
		bvec[i].bv_offset = 0;
		bvec[i].bv_len = min_t(u32, PAGE_SIZE, bytes - i * PAGE_SIZE);
	}
	*nr = count;
	return bvec;
}

/* Give back a buffer: its pages go to the cache while it has room. */
void bdsnap_buffer_free(struct bio_vec *bvec, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		struct page *page = bvec[i].bv_page;
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
	kvfree(bvec);
}

/* Free every cached page. Process context. */
void bdsnap_buffer_trim(void)
{
	struct page *page;

	/* One page at a time: the lock is never held across a free. */
	while ((page = bdsnap_buffer_pop()))
		__free_page(page);
}
