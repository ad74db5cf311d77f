//! A kernel the developer built in their own tree (`--kernel-tree PATH`, `tree: PATH`): its
//! `arch/x86/boot/bzImage`, the modules its `modules.order` lists, and the tree itself to build
//! our module against, with the compiler the tree was built with. Nothing in the tree is rebuilt;
//! what the guest or the module needs and the tree lacks is named, option by option.

use crate::kernel::{io_err, prep_err, Kernel, KernelVersions};
use crate::source::parse_config;
use crate::{KernelSpec, KernelsError};
use bdsnap_host::{CmdLog, ContentKey};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// How an option must be set for the guest to boot and the scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Built in (`=y`): needed before any module can be loaded.
    BuiltIn,
    /// Built in or a module; a module must have been compiled (its `.ko` named here).
    Either(&'static str),
}

/// Every option the harness relies on, why, and how.
const REQUIRED: &[(&str, Need, &str)] = &[
    ("MODULES", Need::BuiltIn, "bdsnap is a loadable module"),
    ("MODULE_UNLOAD", Need::BuiltIn, "scenarios unload bdsnap"),
    (
        "KALLSYMS",
        Need::BuiltIn,
        "bdsnap's hook resolves submit_bio_noacct by name",
    ),
    (
        "FUNCTION_TRACER",
        Need::BuiltIn,
        "bdsnap hooks submit_bio_noacct with ftrace",
    ),
    (
        "DYNAMIC_FTRACE",
        Need::BuiltIn,
        "bdsnap's ftrace_ops filters one function",
    ),
    (
        "BLK_DEV_NVME",
        Need::BuiltIn,
        "the guest's root disk is NVMe, booted without initramfs",
    ),
    (
        "EXT4_FS",
        Need::BuiltIn,
        "the guest's root filesystem is ext4",
    ),
    ("PCI", Need::BuiltIn, "every guest device is on PCI"),
    (
        "VIRTIO_PCI",
        Need::BuiltIn,
        "the guest's network and disks are virtio",
    ),
    (
        "SERIAL_8250_CONSOLE",
        Need::BuiltIn,
        "the console the harness watches is ttyS0",
    ),
    (
        "DEVTMPFS",
        Need::BuiltIn,
        "the guest has no udev: device nodes come from devtmpfs",
    ),
    ("UNIX", Need::BuiltIn, "sshd in the guest"),
    (
        "INET",
        Need::BuiltIn,
        "the harness reaches the guest over SSH",
    ),
    (
        "TMPFS",
        Need::BuiltIn,
        "scenarios keep difference storage on tmpfs",
    ),
    (
        "HOTPLUG_PCI_ACPI",
        Need::BuiltIn,
        "removal scenarios unplug disks",
    ),
    (
        "VIRTIO_NET",
        Need::Either("virtio_net"),
        "the guest's network card",
    ),
    (
        "VIRTIO_BLK",
        Need::Either("virtio_blk"),
        "scenarios' virtio disks",
    ),
    (
        "SCSI_VIRTIO",
        Need::Either("virtio_scsi"),
        "scenarios' SCSI disks",
    ),
    (
        "BLK_DEV_SD",
        Need::Either("sd_mod"),
        "scenarios' SCSI disks",
    ),
    (
        "BLK_DEV_LOOP",
        Need::Either("loop"),
        "scenarios' loop devices",
    ),
    (
        "BLK_DEV_NULL_BLK",
        Need::Either("null_blk"),
        "scenarios' null_blk devices",
    ),
    (
        "BLK_DEV_DM",
        Need::Either("dm-mod"),
        "scenarios' dm devices",
    ),
    (
        "DM_DELAY",
        Need::Either("dm-delay"),
        "writes held in flight at a take",
    ),
    ("XFS_FS", Need::Either("xfs"), "scenarios' XFS filesystems"),
    ("IO_URING", Need::BuiltIn, "io_uring scenarios"),
];

/// What `config` and the compiled modules lack of [`REQUIRED`], one sentence per option.
fn missing(config: &BTreeMap<String, String>, built: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let value = |o: &str| config.get(o).map(String::as_str).unwrap_or("n");
    for (option, need, why) in REQUIRED {
        let v = value(option);
        match need {
            Need::BuiltIn if v != "y" => {
                out.push(format!("CONFIG_{option} must be y (is {v}): {why}"))
            }
            Need::Either(_) if v != "y" && v != "m" => {
                out.push(format!("CONFIG_{option} must be y or m (is {v}): {why}"))
            }
            Need::Either(ko) if v == "m" && !built.iter().any(|b| b == ko) => out.push(format!(
                "CONFIG_{option}=m but {ko}.ko is not in modules.order: build the tree's modules \
                 (make modules): {why}"
            )),
            _ => {}
        }
    }
    if value("DYNAMIC_FTRACE_WITH_REGS") != "y" && value("DYNAMIC_FTRACE_WITH_ARGS") != "y" {
        out.push(
            "CONFIG_DYNAMIC_FTRACE_WITH_REGS or CONFIG_DYNAMIC_FTRACE_WITH_ARGS must be y: \
             bdsnap's hook moves the instruction pointer"
                .into(),
        );
    }
    out
}

/// Module names (`loop`, `dm-mod`) of a `modules.order` file, whose lines are
/// `drivers/block/loop.ko` (or `.o` before 6.2).
fn module_names(order: &str) -> Vec<String> {
    order
        .lines()
        .filter_map(|l| Path::new(l.trim()).file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

/// The compiler a tree was built with: the first word of `CONFIG_CC_VERSION_TEXT`, which is
/// what `$(CC) --version` printed ("gcc-14 (Debian 14.2.0-19) 14.2.0").
fn tree_compiler(config: &BTreeMap<String, String>) -> Option<(String, String)> {
    let text = config.get("CC_VERSION_TEXT")?.trim_matches('"').to_string();
    let cc = text.split_whitespace().next()?.to_string();
    Some((cc, text))
}

/// Checks and stages the kernel of a developer's tree.
pub fn prepare_tree_kernel(
    spec: &KernelSpec,
    tree: &Path,
    cache: &Path,
    log: &CmdLog,
) -> Result<Kernel, KernelsError> {
    let tree = std::fs::canonicalize(tree).map_err(|e| io_err(spec, tree, e))?;
    let file = |rel: &str| tree.join(rel);
    for (rel, what) in [
        ("Makefile", "a kernel tree"),
        (".config", "a configured tree (make defconfig …)"),
        ("arch/x86/boot/bzImage", "a built kernel (make bzImage)"),
        ("include/config/kernel.release", "a built kernel (make)"),
        ("Module.symvers", "built modules (make modules)"),
        ("modules.order", "built modules (make modules)"),
    ] {
        if !file(rel).exists() {
            return Err(prep_err(
                spec,
                format!("{} has no {rel}: it is not {what}", tree.display()),
            ));
        }
    }
    let read =
        |rel: &str| std::fs::read_to_string(file(rel)).map_err(|e| io_err(spec, &file(rel), e));
    let config = parse_config(&read(".config")?);
    let release = read("include/config/kernel.release")?.trim().to_string();
    let built = module_names(&read("modules.order")?);
    let wrong = missing(&config, &built);
    if !wrong.is_empty() {
        return Err(prep_err(
            spec,
            format!(
                "the kernel in {} cannot run the scenarios; merge images/kconfig/base.config \
                 into its config and rebuild:\n{}",
                tree.display(),
                wrong.join("\n")
            ),
        ));
    }
    let (cc, compiler) = tree_compiler(&config).ok_or_else(|| {
        prep_err(
            spec,
            "the tree's .config has no CONFIG_CC_VERSION_TEXT (kernel older than 5.8?)",
        )
    })?;
    let found = Command::new(&cc).arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        return Err(prep_err(
            spec,
            format!("the tree was built with {cc} ({compiler}), which this host cannot run"),
        ));
    }

    // The modules as the tree would install them, staged in the cache; nothing is rebuilt.
    let mut key = ContentKey::new("tree-modules");
    key.add_str("tree", &tree.display().to_string())
        .add_str("release", &release)
        .add_str("symvers", &read("Module.symvers")?)
        .add_str("order", &read("modules.order")?);
    let stage = cache
        .join("trees")
        .join(format!("{}-{}", spec.name, key.short()));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|e| io_err(spec, &stage, e))?;
    log.run(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&tree)
            .arg(format!("INSTALL_MOD_PATH={}", stage.display()))
            .arg(format!("CC={cc}"))
            .arg("modules_install"),
    )
    .map_err(|source| KernelsError::Command {
        kernel: spec.name.clone(),
        source,
    })?;
    let modules_dir = stage.join("lib/modules").join(&release);
    if !modules_dir.is_dir() {
        return Err(prep_err(
            spec,
            format!("modules_install made no {}", modules_dir.display()),
        ));
    }
    let described = Command::new("git")
        .arg("-C")
        .arg(&tree)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "not a git tree".into());
    Ok(Kernel {
        spec: spec.clone(),
        versions: KernelVersions {
            release,
            package_version: described,
            packages: Vec::new(),
            compiler,
            source: Some(format!("tree {}", tree.display())),
            config_fragments: Vec::new(),
        },
        chroot: None,
        kdir: Some(tree.clone()),
        make_args: vec![format!("CC={cc}"), format!("HOSTCC={cc}")],
        binds: Vec::new(),
        vmlinuz: file("arch/x86/boot/bzImage"),
        modules_dir,
        config: file(".config"),
        cached: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_config() -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/kconfig/base.config"),
        )
        .unwrap();
        let mut c = parse_config(&text);
        // What olddefconfig adds on x86 when FUNCTION_TRACER is on, and defconfig's basics.
        for o in ["DYNAMIC_FTRACE_WITH_REGS", "UNIX", "INET", "PCI"] {
            c.insert(o.into(), "y".into());
        }
        c
    }

    #[test]
    fn the_base_fragment_meets_every_requirement() {
        let built: Vec<String> = REQUIRED
            .iter()
            .filter_map(|(_, n, _)| match n {
                Need::Either(ko) => Some(ko.to_string()),
                Need::BuiltIn => None,
            })
            .collect();
        assert_eq!(missing(&base_config(), &built), Vec::<String>::new());
    }

    #[test]
    fn each_missing_piece_is_named() {
        let mut c = base_config();
        c.insert("FUNCTION_TRACER".into(), "n".into());
        c.remove("BLK_DEV_NVME");
        let built = vec!["virtio_net".to_string()];
        let wrong = missing(&c, &built);
        assert!(wrong
            .iter()
            .any(|w| w.starts_with("CONFIG_FUNCTION_TRACER must be y (is n)")));
        assert!(wrong
            .iter()
            .any(|w| w.starts_with("CONFIG_BLK_DEV_NVME must be y (is n)")));
        assert!(wrong
            .iter()
            .any(|w| w.starts_with("CONFIG_BLK_DEV_LOOP=m but loop.ko is not in modules.order")));
        assert!(!wrong.iter().any(|w| w.contains("VIRTIO_NET")));
    }

    #[test]
    fn modules_order_and_compiler() {
        assert_eq!(
            module_names("drivers/block/loop.ko\ndrivers/md/dm-mod.o\n"),
            ["loop", "dm-mod"]
        );
        let c = parse_config("CONFIG_CC_VERSION_TEXT=\"gcc-14 (Debian 14.2.0-19) 14.2.0\"\n");
        let (cc, text) = tree_compiler(&c).unwrap();
        assert_eq!(cc, "gcc-14");
        assert_eq!(text, "gcc-14 (Debian 14.2.0-19) 14.2.0");
    }
}
