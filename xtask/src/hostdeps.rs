//! The host programs the harness runs, and the Debian packages that provide them.

use bdsnap_host::{ensure_host_tools, CmdLog, HostTool};

pub const HOST_TOOLS: &[HostTool] = &[
    HostTool::new("qemu-system-x86_64", "qemu-system-x86"),
    HostTool::new("qemu-img", "qemu-utils"),
    HostTool::new("debootstrap", "debootstrap"),
    HostTool::new("mkfs.ext4", "e2fsprogs"),
    HostTool::new("dpkg-deb", "dpkg"),
    HostTool::new("depmod", "kmod"),
    HostTool::new("ssh-keygen", "openssh-client"),
    HostTool::new("xz", "xz-utils"),
];

/// Installs what is missing (as root) or fails with the exact apt command.
pub fn ensure(log: &CmdLog) -> anyhow::Result<()> {
    let installed = ensure_host_tools(HOST_TOOLS, log)?;
    if !installed.is_empty() {
        eprintln!("installed host packages: {}", installed.join(" "));
    }
    Ok(())
}
