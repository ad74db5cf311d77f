/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copy buffers: page arrays for chunk copies, recycled through a small
 * cache so that a copy does not pay for zeroing fresh pages.
 */
#ifndef BDSNAP_BUFFER_H
#define BDSNAP_BUFFER_H

#include <linux/bvec.h>
#include <linux/types.h>

/* Pages kept for reuse at most: 4 MiB, 64 copies of 64 KiB in flight. */
#define BDSNAP_BUFFER_CACHE_PAGES	1024U

struct bio_vec *bdsnap_buffer_alloc(u32 bytes, unsigned int *nr);
void bdsnap_buffer_free(struct bio_vec *bvec, unsigned int nr);
void bdsnap_buffer_trim(void);

#endif /* BDSNAP_BUFFER_H */
