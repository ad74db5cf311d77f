# SPDX-License-Identifier: GPL-2.0
#
# Shared rules of the test-only modules (memcheck/, debugcheck/): each one's
# Makefile sets TEST_MODULE_SRCS (its Kbuild and C files) and includes this.
#
#   make [KVER=<release>] [KDIR=<build tree>]
#	build build/<release>/*.ko
#   make clean
#	remove build/ (every kernel's objects)
#
# Objects go to build/<release>/, which holds links to the sources, as for the
# main module: one source tree serves several kernels.

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build

ROOT := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
BUILD := $(ROOT)/build/$(KVER)

.PHONY: all modules clean

all: modules

modules:
	@mkdir -p $(BUILD)
	@ln -sfr $(addprefix $(ROOT)/,$(TEST_MODULE_SRCS)) $(BUILD)/
	+$(MAKE) -C $(KDIR) M=$(BUILD) modules
	@ls -1 $(BUILD)/*.ko

clean:
	rm -rf $(ROOT)/build
