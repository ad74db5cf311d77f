//! bdsnap-vm: boots a guest kernel in QEMU and drives it.
//!
//! Four channels, each for what it does best: the serial console (rexpect on QEMU's stdio, and a
//! complete log file) to see boot and kernel messages; SSH for commands with separate stdout,
//! stderr and exit status; SFTP for files; QMP for hot-adding and hot-removing disks.
//!
//! The root disk is a per-VM qcow2 overlay on a shared raw base image, so VMs can run in
//! parallel from one image without ever writing to it.

mod accel;
pub mod cmdline;
mod console;
mod error;
pub mod qmp;
mod ssh;

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use rexpect::process::wait::WaitStatus;
use rexpect::reader::Options;
use rexpect::session::PtySession;
use serde_json::{json, Value};

pub use accel::{probe_accel, Accel};
pub use console::{file_tail, tail_lines};
pub use error::VmError;
pub use qmp::{Qmp, QmpError, QmpEvent};
pub use ssh::ExecOutput;

/// The line the guest init prints on the console once sshd listens.
pub const READY_MARKER: &str = "BDSNAP-GUEST-READY";

/// How many console lines an error message carries.
const TAIL_LINES: usize = 60;

/// Where a disk is attached in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Virtio,
    Scsi,
    Nvme,
}

/// A host file (raw) to attach to a running guest as a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Short name; QMP ids and the guest-visible serial (`d-<name>`) derive from it.
    pub name: String,
    pub path: PathBuf,
    pub bus: Bus,
}

/// Everything needed to boot one guest.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// qemu-system-x86_64; qemu-img is looked for beside it, then in PATH.
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    /// Raw ext4 base image, never written (the VM writes to its own overlay).
    pub rootfs: PathBuf,
    /// Per-VM directory: overlay, QMP socket, console log, command line.
    pub workdir: PathBuf,
    /// Private key file; the image authorises the matching public key for root.
    pub ssh_key: PathBuf,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Appended to the kernel command line.
    pub extra_cmdline: String,
    /// From starting QEMU to the ready marker on the console.
    pub boot_timeout: Duration,
    /// How much slower this kernel is than a production one (a debug kernel: several times);
    /// the VM's own timeouts are multiplied by it as well as by the accelerator's scale.
    pub slowdown: f64,
}

impl VmConfig {
    /// The factor every timeout of this VM is multiplied by.
    pub fn timeout_scale(&self) -> f64 {
        self.accel.timeout_scale() * self.slowdown.max(1.0)
    }
}

/// A running guest. Dropping it kills QEMU; [`Vm::shutdown`] stops it cleanly.
pub struct Vm {
    cfg: VmConfig,
    pty: PtySession,
    qmp: Qmp,
    ssh: ssh2::Session,
    ssh_port: u16,
    console_log: PathBuf,
    /// Set once QEMU has been seen to exit (waitpid reports an exit only once).
    exited: Option<String>,
    boot_duration: Duration,
}

impl Vm {
    /// Creates the overlay, starts QEMU, waits for the ready marker and logs in over SSH.
    pub fn boot(cfg: VmConfig) -> Result<Vm, VmError> {
        fs::create_dir_all(&cfg.workdir)
            .map_err(|e| VmError::io(format!("create {}", cfg.workdir.display()), e))?;
        let overlay = cfg.workdir.join("root.qcow2");
        create_overlay(&cfg.qemu, &cfg.rootfs, &overlay)?;
        // A port picked free can be taken by another VM before QEMU binds it; QEMU then exits
        // at once, and another port is tried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::boot_once(&cfg, &overlay) {
                Err(VmError::QemuExited { console_tail, .. })
                    if attempt < 3 && console_tail.contains("host forwarding rule") =>
                {
                    continue
                }
                other => return other,
            }
        }
    }

    fn boot_once(cfg: &VmConfig, overlay: &Path) -> Result<Vm, VmError> {
        let console_log = cfg.workdir.join("console.log");
        let qmp_socket = cfg.workdir.join("qmp.sock");
        for stale in [&console_log, &qmp_socket] {
            if stale.exists() {
                fs::remove_file(stale)
                    .map_err(|e| VmError::io(format!("remove {}", stale.display()), e))?;
            }
        }
        let ssh_port = free_port()?;
        let args = cmdline::qemu_args(
            cfg,
            &cmdline::Runtime {
                overlay,
                qmp_socket: &qmp_socket,
                console_log: &console_log,
                ssh_port,
            },
        );
        let program = cfg.qemu.display().to_string();
        let line = cmdline::shell_line(&program, &args);
        let cmdline_file = cfg.workdir.join("qemu.cmdline");
        fs::write(&cmdline_file, format!("{line}\n"))
            .map_err(|e| VmError::io(format!("write {}", cmdline_file.display()), e))?;

        let mut command = Command::new(&cfg.qemu);
        command.args(&args).current_dir(&cfg.workdir);
        let start = Instant::now();
        let options = Options {
            timeout_ms: Some(cfg.boot_timeout.as_millis().try_into().unwrap_or(u64::MAX)),
            strip_ansi_escape_codes: false,
        };
        let mut pty =
            rexpect::session::spawn_with_options(command, options).map_err(|e| VmError::Spawn {
                program: program.clone(),
                detail: e.to_string(),
            })?;
        // Dropping the session kills QEMU; do not let that wait long for SIGTERM.
        pty.process_mut().set_kill_timeout(Some(5_000));

        match pty.exp_string(READY_MARKER) {
            Ok(_) => {}
            Err(rexpect::error::Error::EOF { got, .. }) => {
                return Err(VmError::QemuExited {
                    stage: "the guest was ready".into(),
                    console_tail: tail_lines(&got, TAIL_LINES),
                })
            }
            Err(rexpect::error::Error::Timeout { got, .. }) => {
                return Err(VmError::BootTimeout {
                    timeout: cfg.boot_timeout,
                    console_tail: tail_lines(&got, TAIL_LINES),
                })
            }
            Err(e) => {
                return Err(VmError::Spawn {
                    program,
                    detail: format!("reading the console: {e}"),
                })
            }
        }
        let scale = cfg.timeout_scale();
        let qmp = Qmp::connect(&qmp_socket, scaled(Duration::from_secs(15), scale))?;
        let ssh = connect_ssh_with_retry(
            ssh_port,
            &cfg.ssh_key,
            scaled(Duration::from_secs(15), scale),
        )?;
        let boot_duration = start.elapsed();
        let mut vm = Vm {
            cfg: cfg.clone(),
            pty,
            qmp,
            ssh,
            ssh_port,
            console_log,
            exited: None,
            boot_duration,
        };
        vm.drain_console();
        Ok(vm)
    }

    /// Runs `command` with `bash -c` as root, with `env` added to its environment.
    pub fn exec(
        &mut self,
        command: &str,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<ExecOutput, VmError> {
        self.drain_console();
        let result = ssh::exec(&self.ssh, command, env, timeout);
        self.explain_ssh_failure(result, command)
    }

    /// Copies a host file into the guest over SFTP and sets its mode.
    pub fn upload(&mut self, local: &Path, remote: &Path, mode: i32) -> Result<(), VmError> {
        let result = ssh::upload(&self.ssh, local, remote, mode);
        self.explain_ssh_failure(result, "upload")
    }

    /// Copies a guest file to the host over SFTP.
    pub fn download(&mut self, remote: &Path, local: &Path) -> Result<(), VmError> {
        let result = ssh::download(&self.ssh, remote, local);
        self.explain_ssh_failure(result, "download")
    }

    /// Hot-adds `disk` and returns its guest device node (found by its serial, `d-<name>`).
    pub fn add_disk(&mut self, disk: &DiskSpec) -> Result<String, VmError> {
        validate_disk_name(&disk.name)?;
        let ids = DiskIds::new(&disk.name);
        self.qmp
            .execute("blockdev-add", Some(blockdev_add_args(&ids, &disk.path)))?;
        if let Err(e) = self
            .qmp
            .execute("device_add", Some(device_add_args(&ids, disk.bus)))
        {
            let _ = self
                .qmp
                .execute("blockdev-del", Some(json!({ "node-name": ids.node })));
            return Err(e.into());
        }
        let timeout = self.scaled(Duration::from_secs(30));
        let deadline = Instant::now() + timeout;
        let probe = format!("/usr/local/sbin/bdsnap-disk-by-serial {}", ids.serial);
        loop {
            let out = self.exec(&probe, &[], self.scaled(Duration::from_secs(15)))?;
            let node = out.stdout.trim();
            if out.exit == 0 && node.starts_with("/dev/") {
                return Ok(node.to_string());
            }
            if Instant::now() >= deadline {
                return Err(VmError::DiskNotVisible {
                    name: disk.name.clone(),
                    serial: ids.serial,
                    timeout,
                    last_output: format!("exit {} {}{}", out.exit, out.stdout, out.stderr),
                });
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Hot-removes a disk added by [`Vm::add_disk`]: `device_del`, wait for the guest to
    /// release it (`DEVICE_DELETED`), then drop the block node.
    pub fn unplug_disk(&mut self, name: &str, timeout: Duration) -> Result<(), VmError> {
        validate_disk_name(name)?;
        let ids = DiskIds::new(name);
        self.qmp
            .execute("device_del", Some(json!({ "id": ids.device })))?;
        let device = ids.device.clone();
        self.qmp.wait_event(
            "DEVICE_DELETED",
            move |data| data.get("device").and_then(Value::as_str) == Some(device.as_str()),
            timeout,
        )?;
        self.qmp
            .execute("blockdev-del", Some(json!({ "node-name": ids.node })))?;
        Ok(())
    }

    /// Removes whatever is left of disk `name` (device, block node, or both); a no-op when
    /// neither exists. Used between scenarios so one scenario's failure does not leak disks.
    pub fn remove_disk_if_present(&mut self, name: &str) -> Result<(), VmError> {
        validate_disk_name(name)?;
        let ids = DiskIds::new(name);
        let devices = self
            .qmp
            .execute("qom-list", Some(json!({ "path": "/machine/peripheral" })))?;
        let has_device = devices
            .as_array()
            .is_some_and(|list| list.iter().any(|d| d["name"] == ids.device.as_str()));
        if has_device {
            return self.unplug_disk(name, self.scaled(Duration::from_secs(30)));
        }
        let nodes = self
            .qmp
            .execute("query-named-block-nodes", Some(json!({ "flat": true })))?;
        let has_node = nodes
            .as_array()
            .is_some_and(|list| list.iter().any(|n| n["node-name"] == ids.node.as_str()));
        if has_node {
            self.qmp
                .execute("blockdev-del", Some(json!({ "node-name": ids.node })))?;
        }
        Ok(())
    }

    /// The complete serial console log.
    pub fn console_path(&self) -> &Path {
        &self.console_log
    }

    /// Current size of the console log, so a caller can scan only what came after.
    pub fn console_len(&self) -> u64 {
        fs::metadata(&self.console_log)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Whether QEMU still runs (after a guest panic, `-no-reboot` makes it exit).
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.pty.process().status() {
            Some(WaitStatus::StillAlive) => true,
            Some(status) => {
                self.exited = Some(format!("{status:?}"));
                false
            }
            None => {
                self.exited = Some("unknown".into());
                false
            }
        }
    }

    /// Syncs the guest's filesystems, asks QEMU to quit, and kills it if it does not.
    /// Returns the first error met, after QEMU is gone in every case.
    pub fn shutdown(mut self) -> Result<(), VmError> {
        if !self.is_running() {
            return Ok(());
        }
        let sync_timeout = self.scaled(Duration::from_secs(60));
        let sync = self.exec("sync", &[], sync_timeout).map(|_| ());
        let quit = self.qmp.execute("quit", None).map(|_| ());
        let deadline = Instant::now() + self.scaled(Duration::from_secs(15));
        while self.is_running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        if self.is_running() {
            let _ = self
                .pty
                .process_mut()
                .signal(rexpect::process::signal::Signal::SIGKILL);
            let _ = self.pty.process().wait();
        }
        sync?;
        // QEMU may close the socket before answering `quit`: that is success.
        match quit {
            Ok(()) | Err(QmpError::Closed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Wall time from starting QEMU to a working SSH login.
    pub fn boot_duration(&self) -> Duration {
        self.boot_duration
    }

    pub fn config(&self) -> &VmConfig {
        &self.cfg
    }

    /// The host port forwarded to the guest's sshd.
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// Direct QMP access for what this API does not cover.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    fn scaled(&self, base: Duration) -> Duration {
        scaled(base, self.cfg.timeout_scale())
    }

    /// Empties rexpect's read-ahead buffer. The console is complete in the log file; without
    /// this the in-memory copy would grow for the whole life of the VM.
    fn drain_console(&mut self) {
        let _ = self.pty.exp_regex("(?s).*");
    }

    /// An SSH failure because QEMU died (guest panic) is reported as such, with the console.
    fn explain_ssh_failure<T>(
        &mut self,
        result: Result<T, VmError>,
        what: &str,
    ) -> Result<T, VmError> {
        match result {
            Err(VmError::Ssh { .. }) if !self.is_running() => Err(VmError::QemuExited {
                stage: format!("{what} finished"),
                console_tail: file_tail(&self.console_log, TAIL_LINES),
            }),
            other => other,
        }
    }
}

/// QEMU-side names of one hot-plugged disk.
struct DiskIds {
    node: String,
    device: String,
    serial: String,
}

impl DiskIds {
    fn new(name: &str) -> DiskIds {
        DiskIds {
            node: format!("n-{name}"),
            device: format!("dev-{name}"),
            serial: format!("d-{name}"),
        }
    }
}

/// Serials are at most 20 bytes for virtio-blk and NVMe, and "d-" takes two.
fn validate_disk_name(name: &str) -> Result<(), VmError> {
    let ok = !name.is_empty()
        && name.len() <= 18
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(VmError::InvalidDiskName(name.to_string()))
    }
}

fn blockdev_add_args(ids: &DiskIds, path: &Path) -> Value {
    json!({
        "driver": "raw",
        "node-name": ids.node,
        "file": { "driver": "file", "filename": path.display().to_string() },
    })
}

fn device_add_args(ids: &DiskIds, bus: Bus) -> Value {
    let mut args = json!({ "id": ids.device, "drive": ids.node, "serial": ids.serial });
    let (driver, qbus) = match bus {
        Bus::Virtio => ("virtio-blk-pci", Some("pci.0")),
        Bus::Nvme => ("nvme", None),
        Bus::Scsi => ("scsi-hd", Some("scsi0.0")),
    };
    args["driver"] = json!(driver);
    if let Some(qbus) = qbus {
        args["bus"] = json!(qbus);
    }
    args
}

fn scaled(base: Duration, scale: f64) -> Duration {
    base.mul_f64(scale.max(1.0))
}

fn free_port() -> Result<u16, VmError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| VmError::io("find a free TCP port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| VmError::io("find a free TCP port", e))
}

fn qemu_img_for(qemu: &Path) -> PathBuf {
    match qemu.parent() {
        Some(dir) if dir.join("qemu-img").is_file() => dir.join("qemu-img"),
        _ => PathBuf::from("qemu-img"),
    }
}

fn create_overlay(qemu: &Path, base: &Path, overlay: &Path) -> Result<(), VmError> {
    // The backing path is stored in the overlay: make it absolute so it works from anywhere.
    let base = fs::canonicalize(base)
        .map_err(|e| VmError::io(format!("base image {}", base.display()), e))?;
    if overlay.exists() {
        fs::remove_file(overlay)
            .map_err(|e| VmError::io(format!("remove {}", overlay.display()), e))?;
    }
    let output = Command::new(qemu_img_for(qemu))
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(overlay)
        .output()
        .map_err(|e| VmError::io("run qemu-img", e))?;
    if !output.status.success() {
        return Err(VmError::Overlay {
            overlay: overlay.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn connect_ssh_with_retry(
    port: u16,
    key: &Path,
    timeout: Duration,
) -> Result<ssh2::Session, VmError> {
    let deadline = Instant::now() + timeout;
    loop {
        match ssh::connect(port, key) {
            Ok(session) => return Ok(session),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_are_checked() {
        assert!(validate_disk_name("cow_1-a").is_ok());
        assert!(validate_disk_name("").is_err());
        assert!(validate_disk_name("has space").is_err());
        assert!(validate_disk_name("a-name-that-is-19ch").is_err());
        assert!(validate_disk_name("name-that-is-18chr").is_ok());
    }

    #[test]
    fn hotplug_arguments_per_bus() {
        let ids = DiskIds::new("x");
        let add = blockdev_add_args(&ids, Path::new("/d/x.raw"));
        assert_eq!(
            add,
            json!({"driver": "raw", "node-name": "n-x",
                   "file": {"driver": "file", "filename": "/d/x.raw"}})
        );
        let virtio = device_add_args(&ids, Bus::Virtio);
        assert_eq!(virtio["driver"], "virtio-blk-pci");
        assert_eq!(virtio["bus"], "pci.0");
        assert_eq!(virtio["serial"], "d-x");
        assert_eq!(virtio["id"], "dev-x");
        assert_eq!(virtio["drive"], "n-x");
        let scsi = device_add_args(&ids, Bus::Scsi);
        assert_eq!(scsi["driver"], "scsi-hd");
        assert_eq!(scsi["bus"], "scsi0.0");
        let nvme = device_add_args(&ids, Bus::Nvme);
        assert_eq!(nvme["driver"], "nvme");
        assert!(nvme.get("bus").is_none());
    }

    #[test]
    fn overlay_leaves_the_base_alone() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.raw");
        fs::write(&base, vec![7u8; 1 << 20]).unwrap();
        let overlay = dir.path().join("vm").join("root.qcow2");
        fs::create_dir_all(overlay.parent().unwrap()).unwrap();
        create_overlay(Path::new("qemu-system-x86_64"), &base, &overlay).unwrap();
        let info = Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&overlay)
            .output()
            .unwrap();
        let info: Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["backing-filename-format"], "raw");
        assert_eq!(
            info["full-backing-filename"],
            fs::canonicalize(&base).unwrap().display().to_string()
        );
        let missing = create_overlay(
            Path::new("qemu-system-x86_64"),
            &dir.path().join("nope.raw"),
            &overlay,
        );
        assert!(matches!(missing, Err(VmError::Io { .. })));
    }
}
