/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How block devices are stacked: the partitions of a disk, the devices a dm
 * or md device is built on ("slaves") and those built on a device
 * ("holders"), the device a loop device's backing file lives on. Read from
 * the block layer's sysfs objects, the one view of this that every kernel
 * keeps stable; the in-kernel holder lists are private and changed shape
 * twice between 5.10 and 6.12.
 */
#ifndef BDSNAP_STACK_H
#define BDSNAP_STACK_H

#include <linux/types.h>

/* Most devices one walk visits: a guard against cycles and runaway stacks. */
#define BDSNAP_STACK_MAX	64

/*
 * Every device reachable from @dev through @down (slaves, and loop backing
 * files) or up (holders, and partitions of a whole disk), @dev first, into
 * @devs (room for BDSNAP_STACK_MAX); returns how many, or -ENODEV (@dev
 * does not exist), -ENOENT (a loop device whose backing file cannot be
 * found: where it writes is unknown), -E2BIG (too many), -ENOMEM. Process
 * context, sleeps; may open the devices it visits, read only.
 */
int bdsnap_stack_walk(dev_t dev, bool down, dev_t *devs);

/* The whole disk of @dev (@dev itself for a whole disk). Process context. */
int bdsnap_stack_disk_of(dev_t dev, dev_t *disk);

#endif /* BDSNAP_STACK_H */
