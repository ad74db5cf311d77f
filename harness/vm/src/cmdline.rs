//! Building the QEMU command line, kept pure so it can be checked without starting QEMU.

use std::path::Path;

use crate::VmConfig;

/// Files and ports a running VM needs, decided by [`crate::Vm::boot`].
pub(crate) struct Runtime<'a> {
    pub overlay: &'a Path,
    pub qmp_socket: &'a Path,
    pub console_log: &'a Path,
    pub ssh_port: u16,
}

/// The guest kernel command line. No `oops=panic`: an oops is scanned from the console and the
/// scenario fails, but the guest keeps running so the remaining evidence can be collected.
/// `timeout_scale` is the VM's [`VmConfig::timeout_scale`]: see [`stall_options`].
pub fn kernel_cmdline(extra: &str, timeout_scale: f64) -> String {
    let base =
        "console=ttyS0,115200 root=/dev/nvme0n1 rw rootfstype=ext4 init=/sbin/bdsnap-init panic=-1";
    let mut line = base.to_string();
    for option in stall_options(timeout_scale)
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(extra.trim()))
        .filter(|o| !o.is_empty())
    {
        line.push(' ');
        line.push_str(option);
    }
    line
}

/// The kernel's stall detectors measure wall-clock time against thresholds chosen for real
/// hardware: a soft lockup is a CPU that ran kernel code without scheduling for 2 x
/// `watchdog_thresh` (10 s by default), an RCU stall a grace period held for 21 s. A guest under
/// TCG, or a debug kernel, does several times less work per second, so the same code path
/// crosses those lines without being any longer (seen: a soft lockup of a memory hog faulting
/// its pages in on 5.10 under TCG, while two VMs shared two host CPUs). The thresholds are
/// scaled by the same factor as every guest timeout, within the kernel's limits (60 s and
/// 300 s), so a report still means a stall many times longer than the guest's normal work.
/// The hung-task detector (120 s) is left alone: it measures sleeping, not speed, and a write
/// the module holds forever must still be reported within a step's timeout.
pub fn stall_options(timeout_scale: f64) -> Vec<String> {
    if timeout_scale <= 1.0 {
        return Vec::new();
    }
    let scaled = |default: f64, max: f64| (default * timeout_scale).min(max).round() as u32;
    vec![
        format!("watchdog_thresh={}", scaled(10.0, 60.0)),
        format!("rcupdate.rcu_cpu_stall_timeout={}", scaled(21.0, 300.0)),
    ]
}

/// The full argument list (without the program name).
pub(crate) fn qemu_args(cfg: &VmConfig, rt: &Runtime<'_>) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    // i440fx: ACPI PCI hotplug on pci.0 works without adding root ports.
    push(&[
        "-machine",
        "pc",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ]);
    args.extend(cfg.accel.qemu_args());
    args.extend([
        "-m".to_string(),
        cfg.memory_mib.to_string(),
        "-smp".to_string(),
        cfg.cpus.to_string(),
        "-kernel".to_string(),
        cfg.kernel.display().to_string(),
        "-append".to_string(),
        kernel_cmdline(&cfg.extra_cmdline, cfg.timeout_scale()),
    ]);
    args.extend([
        "-blockdev".to_string(),
        format!(
            "driver=qcow2,node-name=root,file.driver=file,file.filename={}",
            qemu_opt_escape(&rt.overlay.display().to_string())
        ),
        "-device".to_string(),
        "nvme,serial=bdsnaproot,drive=root".to_string(),
        "-device".to_string(),
        "virtio-scsi-pci,id=scsi0".to_string(),
        "-netdev".to_string(),
        format!("user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22", rt.ssh_port),
        "-device".to_string(),
        "virtio-net-pci,netdev=n0".to_string(),
        "-qmp".to_string(),
        format!(
            "unix:{},server=on,wait=off",
            qemu_opt_escape(&rt.qmp_socket.display().to_string())
        ),
        // The console goes to stdio (the pty rexpect reads) and, complete, to a log file.
        "-chardev".to_string(),
        format!(
            "stdio,id=con0,signal=off,logfile={}",
            qemu_opt_escape(&rt.console_log.display().to_string())
        ),
        "-serial".to_string(),
        "chardev:con0".to_string(),
    ]);
    args
}

/// QEMU option values are comma-separated; a literal comma is written twice.
fn qemu_opt_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// Renders a command line that a person can paste into a shell.
pub(crate) fn shell_line(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_string())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for POSIX shells, leaving plain words alone for readability.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Accel;
    use std::path::PathBuf;
    use std::time::Duration;

    fn config(accel: Accel, extra: &str) -> VmConfig {
        VmConfig {
            qemu: PathBuf::from("qemu-system-x86_64"),
            kernel: PathBuf::from("/k/vmlinuz"),
            rootfs: PathBuf::from("/img/root.ext4"),
            workdir: PathBuf::from("/w/vm1"),
            ssh_key: PathBuf::from("/keys/id"),
            accel,
            memory_mib: 1024,
            cpus: 2,
            extra_cmdline: extra.to_string(),
            boot_timeout: Duration::from_secs(60),
            slowdown: 1.0,
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn command_line_has_every_piece() {
        let rt = Runtime {
            overlay: Path::new("/w/vm1/root.qcow2"),
            qmp_socket: Path::new("/w/vm1/qmp.sock"),
            console_log: Path::new("/w/a,b/console.log"),
            ssh_port: 40022,
        };
        let args = qemu_args(&config(Accel::Tcg, " bdsnap.debug=1 "), &rt);
        assert_eq!(value_after(&args, "-machine"), ["pc"]);
        assert!(args.contains(&"-nodefaults".to_string()));
        assert!(args.contains(&"-no-reboot".to_string()));
        assert_eq!(value_after(&args, "-accel"), ["tcg,thread=multi"]);
        assert_eq!(value_after(&args, "-cpu"), ["max"]);
        assert_eq!(value_after(&args, "-m"), ["1024"]);
        assert_eq!(value_after(&args, "-smp"), ["2"]);
        assert_eq!(value_after(&args, "-kernel"), ["/k/vmlinuz"]);
        let append = value_after(&args, "-append")[0];
        assert!(append.starts_with("console=ttyS0,115200 root=/dev/nvme0n1 rw"));
        assert!(append.contains("init=/sbin/bdsnap-init panic=-1"));
        assert!(append.ends_with(
            "panic=-1 watchdog_thresh=40 rcupdate.rcu_cpu_stall_timeout=84 bdsnap.debug=1"
        ));
        assert!(!append.contains("oops=panic"));
        assert_eq!(
            value_after(&args, "-blockdev"),
            ["driver=qcow2,node-name=root,file.driver=file,file.filename=/w/vm1/root.qcow2"]
        );
        assert_eq!(
            value_after(&args, "-device"),
            [
                "nvme,serial=bdsnaproot,drive=root",
                "virtio-scsi-pci,id=scsi0",
                "virtio-net-pci,netdev=n0"
            ]
        );
        assert_eq!(
            value_after(&args, "-netdev"),
            ["user,id=n0,hostfwd=tcp:127.0.0.1:40022-:22"]
        );
        assert_eq!(
            value_after(&args, "-qmp"),
            ["unix:/w/vm1/qmp.sock,server=on,wait=off"]
        );
        // The comma in the directory name is doubled so QEMU does not split the option there.
        assert_eq!(
            value_after(&args, "-chardev"),
            ["stdio,id=con0,signal=off,logfile=/w/a,,b/console.log"]
        );
        assert_eq!(value_after(&args, "-serial"), ["chardev:con0"]);

        let kvm = qemu_args(&config(Accel::Kvm, ""), &rt);
        assert_eq!(value_after(&kvm, "-accel"), ["kvm"]);
        assert_eq!(value_after(&kvm, "-cpu"), ["host"]);
        assert!(value_after(&kvm, "-append")[0].ends_with("panic=-1"));
    }

    #[test]
    fn stall_thresholds_scale_with_the_vm_within_the_kernels_limits() {
        assert!(stall_options(1.0).is_empty());
        assert_eq!(
            stall_options(4.0),
            ["watchdog_thresh=40", "rcupdate.rcu_cpu_stall_timeout=84"]
        );
        // A debug kernel under TCG (4 x 4): capped at what the kernel accepts.
        assert_eq!(
            stall_options(16.0),
            ["watchdog_thresh=60", "rcupdate.rcu_cpu_stall_timeout=300"]
        );
        let mut debug = config(Accel::Tcg, "");
        debug.slowdown = 4.0;
        assert!(kernel_cmdline("", debug.timeout_scale()).ends_with("stall_timeout=300"));
    }

    #[test]
    fn shell_quoting_round_trips_through_sh() {
        let words = ["plain", "with space", "it's", "", "a\"b$c"];
        let line = words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {line}; do printf '[%s]' \"$a\"; done"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "[plain][with space][it's][][a\"b$c]"
        );
        assert_eq!(
            shell_line("qemu", &["-append".into(), "a b".into()]),
            "qemu -append 'a b'"
        );
    }
}
