//! Recipe parsing errors and cache keying, without building anything.

use std::path::{Path, PathBuf};

use bdsnap_image::{guest_image_key, ImageError, KernelModules, Recipe};

const GOOD: &str = "\
suite: bookworm
variant: minbase
packages: [fio, kmod]
files:
  - src: init.sh
    dest: /sbin/bdsnap-init
    mode: \"0755\"
image:
  label: bdsnaproot
  margin_mib: 64
";
const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMtest test@host";

fn parse_err(text: &str) -> String {
    match Recipe::parse(text, Path::new("/x/guest.yaml")) {
        Ok(r) => panic!("expected an error, parsed {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_recipe_parses() {
    let r = Recipe::parse(GOOD, Path::new("g.yaml")).unwrap();
    assert_eq!(r.suite, "bookworm");
    assert_eq!(r.packages, ["fio", "kmod"]);
    assert_eq!(r.files[0].dest, "/sbin/bdsnap-init");
    assert_eq!(r.image.margin_mib, 64);
}

#[test]
fn the_shipped_recipe_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/guest.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let r = Recipe::parse(&text, &path).unwrap();
    for needed in [
        "fio",
        "openssh-server",
        "kmod",
        "iproute2",
        "dmsetup",
        "xfsprogs",
    ] {
        assert!(r.packages.iter().any(|p| p == needed), "{needed} missing");
    }
    assert!(r
        .files
        .iter()
        .any(|f| f.dest == "/sbin/bdsnap-init" && f.mode == "0755"));
}

#[test]
fn unknown_field_names_file_and_field() {
    let e = parse_err(&GOOD.replace("variant:", "varient:"));
    assert!(e.starts_with("/x/guest.yaml: "), "{e}");
    assert!(e.contains("varient"), "{e}");
}

#[test]
fn unknown_nested_field_is_rejected() {
    let e = parse_err(&GOOD.replace("margin_mib: 64", "margin_mib: 64\n  size: 3"));
    assert!(e.contains("/x/guest.yaml") && e.contains("size"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let e = parse_err(&GOOD.replace("suite: bookworm\n", ""));
    assert!(e.contains("/x/guest.yaml") && e.contains("suite"), "{e}");
}

#[test]
fn wrong_type_names_the_field_path() {
    let e = parse_err(&GOOD.replace("margin_mib: 64", "margin_mib: lots"));
    assert!(e.contains("image.margin_mib"), "{e}");
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (GOOD.replace("[fio, kmod]", "[]"), "packages:"),
        (
            GOOD.replace("[fio, kmod]", "[fio, \"kmod,evil\"]"),
            "packages[1]:",
        ),
        (GOOD.replace("\"0755\"", "\"0855\""), "files[0].mode:"),
        (
            GOOD.replace("/sbin/bdsnap-init", "sbin/x"),
            "files[0].dest:",
        ),
        (
            GOOD.replace("/sbin/bdsnap-init", "/sbin/../etc/x"),
            "files[0].dest:",
        ),
        (
            GOOD.replace("src: init.sh", "src: /etc/passwd"),
            "files[0].src:",
        ),
        (
            GOOD.replace("label: bdsnaproot", "label: a-label-longer-than-16"),
            "image.label:",
        ),
        (
            GOOD.replace("suite: bookworm", "suite: \"book worm\""),
            "suite:",
        ),
    ];
    for (text, field) in cases {
        let e = parse_err(&text);
        assert!(
            e.starts_with(&format!("/x/guest.yaml: {field}")),
            "want {field}, got {e}"
        );
    }
}

/// A recipe directory with its init file, and a fake modules tree.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("guest.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("init.sh"), "#!/bin/sh\necho hi\n").unwrap();
        let f = Self { dir };
        f.modules("6.1.0-1-cloud-amd64", 100);
        f
    }
    fn recipe(&self) -> PathBuf {
        self.dir.path().join("guest.yaml")
    }
    fn modules(&self, release: &str, ko_size: usize) -> KernelModules {
        let dir = self.dir.path().join("mods").join(release);
        std::fs::create_dir_all(dir.join("kernel/drivers")).unwrap();
        std::fs::write(dir.join("modules.order"), "kernel/drivers/a.ko\n").unwrap();
        std::fs::write(dir.join("kernel/drivers/a.ko"), vec![0u8; ko_size]).unwrap();
        KernelModules {
            release: release.to_string(),
            modules_dir: dir,
        }
    }
    fn key(&self, kernels: &[KernelModules], pubkey: &str) -> String {
        guest_image_key(&self.recipe(), kernels, pubkey).unwrap()
    }
}

#[test]
fn key_is_stable_and_changes_with_every_input() {
    let f = Fixture::new();
    let k61 = f.modules("6.1.0-1-cloud-amd64", 100);
    let base = f.key(std::slice::from_ref(&k61), PUBKEY);
    assert_eq!(base.len(), 64);
    assert_eq!(
        base,
        f.key(std::slice::from_ref(&k61), PUBKEY),
        "same inputs, same key"
    );
    // Trailing newline of a .pub file does not matter.
    assert_eq!(
        base,
        f.key(std::slice::from_ref(&k61), &format!("{PUBKEY}\n"))
    );

    let other_key = f.key(
        std::slice::from_ref(&k61),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther x",
    );
    assert_ne!(base, other_key, "public key");

    let k612 = f.modules("6.12.1+deb13-cloud-amd64", 100);
    let two = f.key(&[k61.clone(), k612.clone()], PUBKEY);
    assert_ne!(base, two, "added kernel");
    assert_eq!(
        two,
        f.key(&[k612.clone(), k61.clone()], PUBKEY),
        "kernel order is irrelevant"
    );
    assert_ne!(base, f.key(&[], PUBKEY), "no kernels");

    // Same release, rebuilt with a different module.
    let rebuilt = f.modules("6.1.0-1-cloud-amd64", 101);
    assert_ne!(
        base,
        f.key(std::slice::from_ref(&rebuilt), PUBKEY),
        "module contents"
    );
    let base = f.key(std::slice::from_ref(&rebuilt), PUBKEY);

    std::fs::write(f.dir.path().join("init.sh"), "#!/bin/sh\necho bye\n").unwrap();
    let after_init = f.key(std::slice::from_ref(&rebuilt), PUBKEY);
    assert_ne!(base, after_init, "init script");

    std::fs::write(f.recipe(), GOOD.replace("margin_mib: 64", "margin_mib: 65")).unwrap();
    assert_ne!(after_init, f.key(&[rebuilt], PUBKEY), "recipe text");
}

#[test]
fn bad_inputs_are_refused() {
    let f = Fixture::new();
    let k = f.modules("6.1.0-1-cloud-amd64", 1);
    assert!(matches!(
        guest_image_key(&f.recipe(), std::slice::from_ref(&k), "not a key"),
        Err(ImageError::PublicKey(_))
    ));
    assert!(matches!(
        guest_image_key(
            &f.recipe(),
            std::slice::from_ref(&k),
            "ssh-ed25519 AAAA a\nssh-rsa BBBB b"
        ),
        Err(ImageError::PublicKey(_))
    ));
    let not_modules = KernelModules {
        release: "6.1.0-1-cloud-amd64".into(),
        modules_dir: f.dir.path().to_path_buf(),
    };
    assert!(matches!(
        guest_image_key(&f.recipe(), &[not_modules], PUBKEY),
        Err(ImageError::Kernel { .. })
    ));
    let bad_release = KernelModules {
        release: "../../etc".into(),
        modules_dir: k.modules_dir,
    };
    assert!(matches!(
        guest_image_key(&f.recipe(), &[bad_release], PUBKEY),
        Err(ImageError::Kernel { .. })
    ));
    std::fs::remove_file(f.dir.path().join("init.sh")).unwrap();
    let e = guest_image_key(&f.recipe(), &[], PUBKEY)
        .unwrap_err()
        .to_string();
    assert!(e.contains("guest.yaml: files[0].src: cannot read"), "{e}");
}
