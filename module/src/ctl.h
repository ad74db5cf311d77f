/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Control device /dev/bdsnap-ctl: the module's only user space interface.
 */
#ifndef BDSNAP_CTL_H
#define BDSNAP_CTL_H

/* Register the control device. Sleeps. Returns 0 or a negative errno. */
int bdsnap_ctl_init(void);

/* Unregister the control device. Sleeps. */
void bdsnap_ctl_exit(void);

#endif /* BDSNAP_CTL_H */
