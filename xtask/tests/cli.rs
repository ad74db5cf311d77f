//! `cargo xtask test` refuses bad input before it builds or boots anything, with a message
//! naming the file, line and field, and a non-zero exit status.

use std::process::Command;

fn xtask(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_malformed_scenario_fails_the_run_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nsteps:\n  - run: \"true\"\n    expct: {exit: 0}\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let (code, text) = xtask(&[
        "test",
        "--scenario",
        bad.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{text}");
    let at = format!("{}:4:", bad.display());
    assert!(text.contains(&at), "no file:line in: {text}");
    assert!(text.contains("expct"), "the field is not named: {text}");
    assert!(!results.exists(), "nothing may start for invalid input");
}

#[test]
fn an_undeclared_disk_and_an_unknown_kernel_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nkernels: [\"6.1\", \"9.9\"]\nsteps:\n  - unplug: data\n",
    )
    .unwrap();
    let (code, text) = xtask(&["test", "--scenario", bad.to_str().unwrap()]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("kernels[1]") && text.contains("9.9"),
        "{text}"
    );
    assert!(
        text.contains("steps[0].unplug") && text.contains("data"),
        "{text}"
    );
}

#[test]
fn an_unknown_kernel_on_the_command_line_is_refused() {
    let (code, text) = xtask(&["test", "--kernel", "2.6"]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("\"2.6\"") && text.contains("5.10, 6.1, 6.12, 7.2"),
        "{text}"
    );
}
