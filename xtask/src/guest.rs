//! Everything about one guest: the tools and image it boots with, booting it with the freshly
//! built modules installed, and running one scenario in it with its disks attached.

use crate::prepare::Prepared;
use anyhow::{anyhow, Context, Result};
use bdsnap_host::CmdLog;
use bdsnap_scenario::{Bus, ExecResult, Guest, GuestError, Partial, Scenario, ScenarioOutcome};
use bdsnap_vm::{Accel, DiskSpec, Vm, VmConfig, VmError};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Guest-side programs built from this workspace and installed into the guest's PATH.
const GUEST_TOOLS: &[&str] = &["bdsnapctl", "bdsnap-testio"];
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the guest tools statically linked, so they run on the guest's Debian whatever the
/// host's glibc is.
pub fn build_guest_tools(log: &CmdLog) -> Result<Vec<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = PathBuf::from("target/guest");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release", "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for tool in GUEST_TOOLS {
        cmd.args(["--bin", tool]);
    }
    log.run(&mut cmd).context("building the guest tools")?;
    Ok(GUEST_TOOLS
        .iter()
        .map(|t| target_dir.join(GUEST_TARGET).join("release").join(t))
        .collect())
}

/// The harness's SSH key pair (private key path), made once and kept in the cache.
pub fn ssh_key(cache: &Path, log: &CmdLog) -> Result<PathBuf> {
    let dir = cache.join("ssh");
    let key = dir.join("id_ed25519");
    if key.is_file() && key.with_extension("pub").is_file() {
        return Ok(key);
    }
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    log.run(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "bdsnap-harness",
                "-f",
            ])
            .arg(&key),
    )?;
    Ok(key)
}

/// The guest image with every prepared kernel's modules.
pub fn image(
    root: &Path,
    prepared: &[Prepared],
    key: &Path,
    log: &CmdLog,
) -> Result<bdsnap_image::GuestImage> {
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
    let kernels: Vec<bdsnap_image::KernelModules> = prepared
        .iter()
        .map(|p| bdsnap_image::KernelModules {
            release: p.kernel.versions.release.clone(),
            modules_dir: p.kernel.modules_dir.clone(),
        })
        .collect();
    let board = crate::progress::Board::new();
    let bar = board.task("image");
    let mut progress = |line: &str| {
        log.note(line);
        if let Some(first) = line.lines().next() {
            let shown = first.chars().take(100).collect::<String>();
            // The commands are stages; their output and the rest is chatter.
            if first.starts_with("$ ") {
                bar.stage(shown);
            } else {
                bar.tick(shown);
            }
        }
    };
    let image = bdsnap_image::build_guest_image(
        &root.join("images/guest.yaml"),
        &bdsnap_host::cache_dir(),
        &kernels,
        &pubkey,
        &mut progress,
    )?;
    bar.finish(format!(
        "{} {}",
        if image.cached { "cached" } else { "built" },
        image.path.display()
    ));
    Ok(image)
}

/// Kernel options every test VM boots with, on top of the harness's own (`bdsnap_vm::cmdline`),
/// and benchmark VMs never: the memory checks slow every allocation down and would tilt the
/// ratios. Stock kernels can do all of these without a rebuild; what they find is a console
/// report the scanner fails the case on (markers `SLUB` and `KFENCE`).
pub const TEST_BOOT_OPTIONS: &[&str] = &[
    // SLUB debugging of every cache: F consistency checks on each alloc and free (double
    // frees, corrupt free lists, red zones and poison checked), Z red zones around each object
    // (writes past either end), P poisoning of free objects (writes after free, found at the
    // next allocation or validation). Measured under TCG on all four kernels: boot to SSH
    // +0-2.5 s (of 6-10 s), snapshot-under-load on 6.1 within its run-to-run noise. Not U
    // (alloc/free stack traces per object): it doubles boot to SSH (15-21 s) for a nicer
    // report only.
    "slub_debug=FZP",
    // KFENCE (CONFIG_KFENCE on the 6.12 and 7.2 cloud kernels, sampling off by default): one
    // allocation per 100 ms gets guard pages of its own, so an out-of-bounds read or write or a
    // use after free of it faults at once and is reported with the culprit's stack; SLUB's red
    // zones only see writes, and only when the object is freed. Kernels without KFENCE
    // (5.10, 6.1) ignore the option silently.
    "kfence.sample_interval=100",
    // One polled queue per NVMe controller (the driver is built in, so only the command line
    // sets it): io_uring `--hipri` on an NVMe scratch disk then really polls instead of
    // failing (7.2) or silently completing by interrupt (6.1).
    "nvme.poll_queues=1",
];

/// Whether the kernel's config sets `CONFIG_<option>=y`.
fn kernel_has(p: &Prepared, option: &str) -> bool {
    std::fs::read_to_string(&p.kernel.config).is_ok_and(|c| {
        bdsnap_kernels::source::parse_config(&c)
            .get(option)
            .is_some_and(|v| v == "y")
    })
}

/// Whether lockdep has switched itself off in this VM (it does after its first report, and
/// after running out of its tables): every later scenario would run unchecked, so the caller
/// boots a fresh VM. False on kernels without lockdep.
pub fn lockdep_off(vm: &mut Vm) -> bool {
    let t = Duration::from_secs(30).mul_f64(vm.config().timeout_scale());
    vm.exec("grep -s 'debug_locks:' /proc/lockdep_stats", &[], t)
        .is_ok_and(|o| o.stdout.split_whitespace().nth(1) == Some("0"))
}

/// A timeout scaled for the accelerator (TCG is slower than KVM).
pub(crate) fn scaled(accel: Accel, d: Duration) -> Duration {
    d.mul_f64(accel.timeout_scale())
}

/// What every VM of a run is made from: the shared image, key, guest tools and VM flags.
pub struct RunContext {
    pub run_dir: PathBuf,
    pub image: PathBuf,
    pub key: PathBuf,
    pub tools: Vec<PathBuf>,
    pub accel: Accel,
    pub memory: u32,
    pub cpus: u32,
    /// `--cmdline`: appended to every VM's kernel command line.
    pub extra_cmdline: String,
    /// `--keep-failed`: hold a failed case's VM for its person.
    pub keep_failed: Option<KeepFailed>,
}

impl RunContext {
    /// A run's context from its shared pieces and the VM flags (`keep_failed` off).
    pub fn new(
        run_dir: &Path,
        image: &Path,
        key: &Path,
        tools: Vec<PathBuf>,
        accel: Accel,
        vm: &crate::VmArgs,
    ) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            image: image.to_path_buf(),
            key: key.to_path_buf(),
            tools,
            accel,
            memory: vm.memory,
            cpus: vm.cpus,
            extra_cmdline: vm.cmdline.clone(),
            keep_failed: None,
        }
    }

    /// Boots the kernel of `p` for tests (with [`TEST_BOOT_OPTIONS`]) with its working files in
    /// `workdir`, then installs its freshly built modules (so `modprobe` finds them) and the
    /// guest tools.
    pub fn boot(&self, p: &Prepared, workdir: &Path) -> Result<Vm> {
        self.boot_with(p, workdir, TEST_BOOT_OPTIONS)
    }

    /// Like [`RunContext::boot`], but without the test-only kernel options: for measurements.
    pub fn boot_for_benchmark(&self, p: &Prepared, workdir: &Path) -> Result<Vm> {
        self.boot_with(p, workdir, &[])
    }

    /// The boot options of `p`'s VMs beyond the harness's own: its matrix entry's `cmdline`,
    /// then `--cmdline` (what summary.json records as `extra_cmdline`).
    pub fn kernel_options(&self, p: &Prepared) -> String {
        p.kernel
            .spec
            .cmdline
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.extra_cmdline.as_str()))
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn boot_with(&self, p: &Prepared, workdir: &Path, options: &[&str]) -> Result<Vm> {
        let mut options = options.to_vec();
        // KASAN reports only its first bug per boot unless told otherwise; a test VM runs
        // scenarios back to back, and each must see its own reports.
        if !options.is_empty() && kernel_has(p, "KASAN") {
            options.push("kasan_multi_shot");
        }
        let (image, key, tools) = (&self.image, &self.key, &self.tools);
        let (accel, memory, cpus) = (self.accel, self.memory, self.cpus);
        let cfg = VmConfig {
            qemu: PathBuf::from("qemu-system-x86_64"),
            kernel: p.kernel.vmlinuz.clone(),
            rootfs: image.to_path_buf(),
            workdir: workdir.to_path_buf(),
            ssh_key: key.to_path_buf(),
            accel,
            memory_mib: memory,
            cpus,
            extra_cmdline: options
                .iter()
                .copied()
                .chain(std::iter::once(self.kernel_options(p).as_str()))
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            boot_timeout: scaled(accel, Duration::from_secs(45)).mul_f64(p.kernel.spec.slowdown),
            slowdown: p.kernel.spec.slowdown,
        };
        let mut vm = Vm::boot(cfg)?;
        let release = &p.kernel.versions.release;
        let extra = PathBuf::from(format!("/lib/modules/{release}/extra"));
        let t = Duration::from_secs(30).mul_f64(vm.config().timeout_scale());
        vm.exec(&format!("mkdir -p {}", extra.display()), &[], t)?;
        for ko in &p.build.modules {
            let name = ko
                .file_name()
                .ok_or_else(|| anyhow!("module path {} has no name", ko.display()))?;
            vm.upload(ko, &extra.join(name), 0o644)?;
        }
        let depmod = vm.exec(&format!("depmod -a {release}"), &[], t)?;
        if depmod.exit != 0 {
            return Err(anyhow!("depmod in the guest failed: {}", depmod.stderr));
        }
        for tool in tools {
            let name = tool
                .file_name()
                .ok_or_else(|| anyhow!("tool path {} has no name", tool.display()))?;
            vm.upload(tool, &Path::new("/usr/local/bin").join(name), 0o755)?;
        }
        Ok(vm)
    }
}

/// Stops a VM and deletes its overlay and `files` (its scratch disks); its console log and
/// command line stay as evidence.
pub fn stop_vm(vm: Vm, files: &[PathBuf]) {
    let workdir = vm.config().workdir.clone();
    let _ = vm.shutdown();
    let _ = std::fs::remove_file(workdir.join("root.qcow2"));
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// What one scenario left behind.
pub struct ScenarioRun {
    pub outcome: Option<ScenarioOutcome>,
    pub error: Option<String>,
    /// The console written while the scenario ran.
    pub console: String,
    pub dmesg: String,
    /// kmemleak's reports after the scenario (empty on kernels without kmemleak).
    pub kmemleak: String,
}

/// Mounts debugfs and forgets every kmemleak report so far, so the scan after the scenario
/// reports what the scenario leaked. Prints `kmemleak` when the kernel has it.
const KMEMLEAK_CLEAR: &str = "mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; \
    if [ -e /sys/kernel/debug/kmemleak ]; then echo clear > /sys/kernel/debug/kmemleak && echo kmemleak; fi";

/// kmemleak reports an object once it is unreferenced in a scan and older than 5 s: wait past
/// that age, scan twice (the second confirms what the first found), print the reports.
const KMEMLEAK_SCAN: &str = "sleep 6; echo scan > /sys/kernel/debug/kmemleak && \
    echo scan > /sys/kernel/debug/kmemleak && cat /sys/kernel/debug/kmemleak";

/// The scenario engine's view of a booted VM (also used by `bench`).
pub(crate) struct VmGuest<'a> {
    pub(crate) vm: &'a mut Vm,
    /// What timeouts are multiplied by (accelerator and kernel).
    pub(crate) scale: f64,
}

impl Guest for VmGuest<'_> {
    fn exec(
        &mut self,
        command: &str,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<ExecResult, GuestError> {
        match self.vm.exec(command, env, timeout) {
            Ok(o) => Ok(ExecResult {
                stdout: o.stdout,
                stderr: o.stderr,
                exit: o.exit,
                duration: o.duration,
            }),
            Err(VmError::CommandTimeout {
                timeout,
                stdout,
                stderr,
                ended,
                ..
            }) => Err(GuestError::Timeout {
                after: timeout,
                partial: Partial {
                    stdout,
                    stderr,
                    ended: Some(ended),
                },
            }),
            Err(e) => Err(GuestError::Transport(e.to_string())),
        }
    }

    fn unplug(&mut self, name: &str) -> Result<(), GuestError> {
        self.vm
            .unplug_disk(name, Duration::from_secs(30).mul_f64(self.scale))
            .map_err(|e| GuestError::Transport(e.to_string()))
    }
}

fn vm_bus(bus: Bus) -> bdsnap_vm::Bus {
    match bus {
        Bus::Virtio => bdsnap_vm::Bus::Virtio,
        Bus::Scsi => bdsnap_vm::Bus::Scsi,
        Bus::Nvme => bdsnap_vm::Bus::Nvme,
    }
}

/// Creates a fresh sparse file `<dir>/<prefix><name>.raw` per disk and hot-adds it; every file
/// made goes to `files` (to delete later, also after an error) and every disk's guest node to
/// `nodes` as (name, node).
pub(crate) fn attach_disks<'a>(
    vm: &mut Vm,
    disks: impl IntoIterator<Item = &'a bdsnap_scenario::Disk>,
    dir: &Path,
    prefix: &str,
    files: &mut Vec<PathBuf>,
    nodes: &mut Vec<(String, String)>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for d in disks {
        let path = dir.join(format!("{prefix}{}.raw", d.name));
        let f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        f.set_len(d.size_bytes)?;
        files.push(path.clone());
        let node = vm
            .add_disk(&DiskSpec {
                name: d.name.clone(),
                path,
                bus: vm_bus(d.bus),
            })
            .with_context(|| format!("attaching disk {}", d.name))?;
        nodes.push((d.name.clone(), node));
    }
    Ok(())
}

/// Attaches the scenario's disks (fresh sparse files), runs its steps, collects dmesg and the
/// console, and detaches whatever disks are left.
/// `keep`: when the scenario fails (a step, or a console report), the VM is held with the
/// case's disks still attached until the person says they are done (see [`hold_for_user`]).
pub fn run_scenario(
    vm: &mut Vm,
    sc: &Scenario,
    disk_dir: &Path,
    keep: Option<&KeepFailed>,
) -> ScenarioRun {
    let scale = vm.config().timeout_scale();
    let offset = vm.console_len();
    let mut run = ScenarioRun {
        outcome: None,
        error: None,
        console: String::new(),
        dmesg: String::new(),
        kmemleak: String::new(),
    };
    let t = Duration::from_secs(30).mul_f64(scale);
    let _ = vm.exec("dmesg -C", &[], t);
    let kmemleak = vm
        .exec(KMEMLEAK_CLEAR, &[], t)
        .is_ok_and(|o| o.stdout.trim() == "kmemleak");
    let mut env = Vec::new();
    let mut files = Vec::new();
    let prefix = format!("{}-", sc.name);
    let attach = attach_disks(vm, sc.disks(), disk_dir, &prefix, &mut files, &mut env);
    match attach {
        Ok(()) => {
            let mut guest = VmGuest { vm, scale };
            run.outcome = Some(bdsnap_scenario::run(sc, &mut guest, &env, scale));
        }
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    if let Some(keep) = keep.filter(|_| vm.is_running()) {
        let console = read_from(vm.console_path(), offset);
        let failed = run.error.is_some()
            || run.outcome.as_ref().is_some_and(|o| !o.passed())
            || !bdsnap_report::scan(&console).is_empty();
        if failed {
            hold_for_user(vm, sc, &env, keep);
        }
    }
    if vm.is_running() {
        match vm.exec("dmesg", &[], t) {
            Ok(o) => run.dmesg = o.stdout,
            Err(e) => run.dmesg = format!("(dmesg unavailable: {e})"),
        }
        if kmemleak {
            match vm.exec(KMEMLEAK_SCAN, &[], t.mul_f64(4.0)) {
                Ok(o) if o.exit == 0 => run.kmemleak = o.stdout,
                Ok(o) => {
                    run.error
                        .get_or_insert(format!("kmemleak scan failed: {}", o.stderr.trim()));
                }
                Err(e) => {
                    run.error.get_or_insert(format!("kmemleak scan: {e}"));
                }
            }
        }
        for d in sc.disks() {
            if let Err(e) = vm.remove_disk_if_present(&d.name) {
                run.error
                    .get_or_insert(format!("detaching disk {}: {e}", d.name));
            }
        }
    } else {
        run.error
            .get_or_insert("QEMU exited during the scenario (see console)".into());
    }
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    run.console = read_from(vm.console_path(), offset);
    run
}

/// `--keep-failed`: what a held VM needs to tell its person.
pub struct KeepFailed {
    /// The harness's SSH key.
    pub key: PathBuf,
    /// Where the hold file of a case goes (its case directory's parent).
    pub dir: PathBuf,
}

/// Keeps a failed case's VM running until its person is done: prints how to get a shell in
/// it (with the case's disks as `$DISK_<name>`), then waits for Enter on a terminal, or
/// without one until the printed hold file is deleted.
fn hold_for_user(vm: &mut Vm, sc: &Scenario, env: &[(String, String)], keep: &KeepFailed) {
    let ssh = crate::shell::ssh_command_line(vm.ssh_port(), &keep.key);
    let exports: Vec<String> = env
        .iter()
        .map(|(name, node)| format!("DISK_{name}={node}"))
        .collect();
    eprintln!(
        "\n--keep-failed: {} failed; its VM is still running.",
        sc.name
    );
    eprintln!("  get a shell in it:  {ssh}");
    if !exports.is_empty() {
        eprintln!("  its disks:          {}", exports.join(" "));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("  press Enter here when you are done (the VM is then stopped).");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    } else {
        let hold = keep.dir.join(format!("{}.hold", sc.name));
        if std::fs::write(&hold, format!("{ssh}\n")).is_err() {
            eprintln!("  (could not write {}: not waiting)", hold.display());
            return;
        }
        eprintln!(
            "  delete {} when you are done (the VM is then stopped).",
            hold.display()
        );
        while hold.exists() && vm.is_running() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = (offset as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
