//! Boots a real guest. Ignored by default: it needs a kernel, a rootfs image honouring the
//! guest contract (see the crate docs) and a key, named by environment variables:
//!
//! ```text
//! BDSNAP_VM_KERNEL=/path/vmlinuz BDSNAP_VM_ROOTFS=/path/root.ext4 BDSNAP_VM_KEY=/path/id \
//!   cargo test -p bdsnap-vm --test real_vm -- --ignored --nocapture
//! ```
//! Optional: BDSNAP_VM_QEMU (default qemu-system-x86_64), BDSNAP_VM_ACCEL (kvm|tcg|probe,
//! default probe).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bdsnap_vm::{probe_accel, Accel, Bus, DiskSpec, Vm, VmConfig, VmError};

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("set {name}")))
}

fn config(workdir: PathBuf) -> VmConfig {
    let qemu = PathBuf::from(
        std::env::var("BDSNAP_VM_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into()),
    );
    let kernel = env_path("BDSNAP_VM_KERNEL");
    let accel = match std::env::var("BDSNAP_VM_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ => probe_accel(&qemu, &kernel, &workdir.join("cache")),
    };
    VmConfig {
        qemu,
        kernel,
        rootfs: env_path("BDSNAP_VM_ROOTFS"),
        workdir,
        ssh_key: env_path("BDSNAP_VM_KEY"),
        accel,
        memory_mib: 1024,
        cpus: 2,
        extra_cmdline: String::new(),
        boot_timeout: Duration::from_secs(60).mul_f64(accel.timeout_scale()),
        slowdown: 1.0,
    }
}

#[test]
#[ignore = "boots a real VM; needs BDSNAP_VM_KERNEL, BDSNAP_VM_ROOTFS, BDSNAP_VM_KEY"]
fn boot_exec_transfer_hotplug_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path().join("vm"));
    println!("accelerator: {}", cfg.accel);
    let started = Instant::now();
    let mut vm = Vm::boot(cfg.clone()).unwrap();
    println!(
        "boot to SSH: {:.1} s (Vm::boot total {:.1} s)",
        vm.boot_duration().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let cmdline = fs::read_to_string(cfg.workdir.join("qemu.cmdline")).unwrap();
    assert!(cmdline.contains("-no-reboot"), "{cmdline}");
    let console = fs::read_to_string(vm.console_path()).unwrap();
    assert!(console.contains("Linux version"));
    assert!(console.contains("BDSNAP-GUEST-READY"));

    // stdout, stderr and the exit status stay apart; the environment arrives.
    let env = vec![("GREETING".to_string(), "hello 'world'".to_string())];
    let out = vm
        .exec(
            "echo \"$GREETING\"; echo oops >&2; uname -r; exit 7",
            &env,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(out.exit, 7);
    assert_eq!(out.stderr, "oops\n");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("hello 'world'"));
    assert!(lines.next().unwrap().contains("cloud-amd64"));
    let ok = vm.exec("true", &[], Duration::from_secs(60)).unwrap();
    assert_eq!((ok.exit, ok.stdout.as_str()), (0, ""));
    // A command killed by a signal must not look like success.
    let killed = vm.exec("kill -9 $$", &[], Duration::from_secs(60)).unwrap();
    assert_eq!(killed.exit, 137, "{killed:?}");
    // Output larger than the SSH window on both streams at once must not deadlock.
    let big = vm
        .exec(
            "head -c 3000000 /dev/zero | tr '\\0' a; head -c 3000000 /dev/zero | tr '\\0' b >&2",
            &[],
            Duration::from_secs(240),
        )
        .unwrap();
    assert_eq!((big.stdout.len(), big.stderr.len()), (3_000_000, 3_000_000));
    let slow = vm
        .exec("sleep 30", &[], Duration::from_secs(2))
        .unwrap_err();
    assert!(matches!(slow, VmError::CommandTimeout { .. }), "{slow}");
    // The session still works after a timed-out command.
    assert_eq!(
        vm.exec("echo alive", &[], Duration::from_secs(60))
            .unwrap()
            .stdout,
        "alive\n"
    );

    // Upload and download round trip, with the requested mode.
    let local = tmp.path().join("payload.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&local, &data).unwrap();
    vm.upload(&local, "/tmp/payload.bin".as_ref(), 0o750)
        .unwrap();
    let stat = vm
        .exec(
            "stat -c %a /tmp/payload.bin && md5sum < /tmp/payload.bin",
            &[],
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(stat.stdout.starts_with("750\n"), "{stat:?}");
    let back = tmp.path().join("back.bin");
    vm.download("/tmp/payload.bin".as_ref(), &back).unwrap();
    assert_eq!(fs::read(&back).unwrap(), data);
    assert!(vm.download("/no/such/file".as_ref(), &back).is_err());

    // Hot-add and unplug one disk per bus; the guest must see the data we wrote on the host.
    for (name, bus) in [("vd1", Bus::Virtio), ("sd1", Bus::Scsi), ("nv1", Bus::Nvme)] {
        let path = tmp.path().join(format!("{name}.raw"));
        let mut content = vec![0u8; 64 << 20];
        content[..name.len()].copy_from_slice(name.as_bytes());
        fs::write(&path, &content).unwrap();
        let t = Instant::now();
        let node = vm
            .add_disk(&DiskSpec {
                name: name.to_string(),
                path: path.clone(),
                bus,
            })
            .unwrap();
        println!(
            "{bus:?} disk {name} -> {node} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let head = vm
            .exec(
                &format!("head -c {} {node}", name.len()),
                &[],
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(head.stdout, name, "{head:?}");
        let size = vm
            .exec(
                &format!("blockdev --getsize64 {node}"),
                &[],
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(size.stdout.trim(), (64u64 << 20).to_string());
        let t = Instant::now();
        vm.unplug_disk(name, Duration::from_secs(120)).unwrap();
        println!(
            "{bus:?} disk {name} unplugged in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let gone = vm
            .exec(&format!("test -e {node}"), &[], Duration::from_secs(60))
            .unwrap();
        assert_ne!(gone.exit, 0, "{node} still exists after unplug");
        // Nothing left to clean up, so this must be a no-op.
        vm.remove_disk_if_present(name).unwrap();
    }
    // remove_disk_if_present cleans up a disk a failed scenario left behind.
    let path = tmp.path().join("left.raw");
    fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    vm.add_disk(&DiskSpec {
        name: "left".into(),
        path,
        bus: Bus::Virtio,
    })
    .unwrap();
    vm.remove_disk_if_present("left").unwrap();
    let names = vm
        .qmp()
        .execute(
            "qom-list",
            Some(serde_json::json!({"path": "/machine/peripheral"})),
        )
        .unwrap();
    assert!(!names.to_string().contains("dev-left"), "{names}");

    let len = vm.console_len();
    assert!(len > 0);
    assert!(vm.is_running());
    vm.shutdown().unwrap();
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
#[ignore = "boots a real VM; needs BDSNAP_VM_KERNEL, BDSNAP_VM_ROOTFS, BDSNAP_VM_KEY"]
fn guest_panic_is_reported_fast_with_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path().join("vm"));
    // An init that does not exist makes the kernel panic; -no-reboot then ends QEMU.
    cfg.extra_cmdline = "init=/no/such/init".into();
    let started = Instant::now();
    let err = match Vm::boot(cfg.clone()) {
        Err(e) => e,
        Ok(_) => panic!("boot must fail"),
    };
    let text = err.to_string();
    assert!(matches!(err, VmError::QemuExited { .. }), "{text}");
    assert!(text.contains("Kernel panic"), "{text}");
    assert!(
        started.elapsed() < cfg.boot_timeout,
        "took the whole timeout"
    );
}
