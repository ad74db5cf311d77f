/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copy buffers: page arrays for chunk copies, recycled through a small
 * cache so that a copy does not pay for zeroing fresh pages, and one
 * preallocated reserve buffer for copies that cannot get memory at once.
 */
#ifndef BDSNAP_BUFFER_H
#define BDSNAP_BUFFER_H

#include <linux/bvec.h>
#include <linux/types.h>

/* Pages kept for reuse at most: 4 MiB, 64 copies of 64 KiB in flight. */
#define BDSNAP_BUFFER_CACHE_PAGES	1024U
/* The reserve: one copy batch, one read bio of the original. */
#define BDSNAP_BUFFER_RESERVE_PAGES	256U

/* Test knob (main.c): every copy takes the reserve. */
extern bool bdsnap_force_copy_reserve;

struct bdsnap_buffer {
	struct bio_vec *bvec;	/* single pages; the last may be short */
	unsigned int nr;	/* entries in use */
	u32 bytes;		/* bytes the buffer holds at once */
	bool reserve;		/* the reserve: held until released */
};

/*
 * A buffer for @bytes: all of them at once from cached pages or new ones
 * taken without reclaim, else the reserve (waiting for it while another copy
 * holds it), which holds BDSNAP_BUFFER_RESERVE_PAGES pages at a time: the
 * caller then copies in pieces of buf->bytes. Never fails. Process context,
 * sleeps; the caller runs in a noio scope. A copy must not wait for writes
 * (the held ones wait for copies), nor for reclaim (which may wait for the
 * writeback of those writes): the reserve is only ever held by copies,
 * which end without waiting for anything but I/O.
 */
void bdsnap_buffer_get(struct bdsnap_buffer *buf, u32 bytes);

/* Shorten the entries to describe @bytes (at most buf->bytes) from page 0. */
void bdsnap_buffer_fit(struct bdsnap_buffer *buf, u32 bytes);

/* Give a buffer back (its pages to the cache, or the reserve to others). */
void bdsnap_buffer_put(struct bdsnap_buffer *buf);

int bdsnap_buffer_init_module(void);
/* Free every cached page. Process context. */
void bdsnap_buffer_trim(void);
void bdsnap_buffer_exit_module(void);

#endif /* BDSNAP_BUFFER_H */
