//! `cargo xtask shell`: one VM of one kernel with the freshly built module and guest tools
//! installed and scratch disks attached, for a person (an interactive shell on a real
//! terminal, through the system's `ssh`) or for one command (its exit status is ours). The VM
//! is stopped and its disks deleted when the shell or the command ends.

use crate::guest::{self, RunContext};
use crate::{hostdeps, prepare, KernelArgs, VmArgs};
use anyhow::{bail, Context, Result};
use bdsnap_host::CmdLog;
use bdsnap_kernels::Matrix;
use bdsnap_vm::Vm;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

#[derive(clap::Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub kernels: KernelArgs,
    /// A scratch disk, NAME:SIZE[:BUS] (bus virtio, scsi or nvme; repeatable); the guest sees
    /// it as $DISK_NAME.
    #[arg(long = "disk", value_name = "NAME:SIZE[:BUS]")]
    pub disks: Vec<String>,
    #[command(flatten)]
    pub vm: VmArgs,
    /// A command to run (through bash) instead of an interactive shell.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Boots, attaches, runs the shell or the command, stops; returns the exit status to exit with.
pub fn run(root: &Path, args: ShellArgs) -> Result<i32> {
    let matrix = Matrix::load(&args.kernels.matrix)?;
    let specs = args.kernels.specs(&matrix, false)?;
    if specs.len() != 1 {
        bail!(
            "name one kernel with --kernel (or give --kernel-tree): one of {}",
            matrix.names().join(", ")
        );
    }
    let disks = args
        .disks
        .iter()
        .map(|d| bdsnap_scenario::disk_from_arg(d).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    if let Some(dup) = disks
        .iter()
        .enumerate()
        .find(|(i, d)| disks[..*i].iter().any(|e| e.name == d.name))
    {
        bail!("disk {:?} is given twice", dup.1.name);
    }

    let results = root.join(&args.vm.results);
    let stamp = crate::test::run_id(SystemTime::now());
    let run_dir = results.join(format!("shell-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let log = CmdLog::to_file(&run_dir.join("host-commands.log"))?;
    hostdeps::ensure(&log)?;
    let prepared = prepare::prepare(&args.kernels, false, &log)?;
    let p = prepared.first().context("no kernel was prepared")?;
    let tools = guest::build_guest_tools(&log)?;
    let key = guest::ssh_key(&bdsnap_host::cache_dir(), &log)?;
    let image = guest::image(root, &prepared, &key, &log)?;
    let accel = args.vm.accel(&p.kernel.vmlinuz);
    let ctx = RunContext::new(&run_dir, &image.path, &key, tools, accel, &args.vm);
    eprintln!(
        "shell: booting {} ({}, {accel}); evidence in {}",
        p.kernel.spec.name,
        p.kernel.versions.release,
        run_dir.display()
    );
    let mut vm = ctx.boot(p, &run_dir.join("vm"))?;
    let mut files = Vec::new();
    let mut nodes = Vec::new();
    let attached = guest::attach_disks(
        &mut vm,
        &disks,
        &run_dir.join("disks"),
        "",
        &mut files,
        &mut nodes,
    );
    let status = attached.and_then(|()| {
        for (name, node) in &nodes {
            eprintln!("shell: $DISK_{name} = {node}");
        }
        ssh_into(&vm, &key, &nodes, &args.command)
    });
    guest::stop_vm(vm, &files);
    eprintln!(
        "shell: VM stopped; console log in {}",
        run_dir.join("vm").display()
    );
    status
}

/// Runs the system's ssh into `vm`: an interactive login shell (with a terminal when ours is
/// one), or `command`; the disks' nodes are in the environment as `DISK_<name>`.
fn ssh_into(vm: &Vm, key: &Path, nodes: &[(String, String)], command: &[String]) -> Result<i32> {
    let exports: String = nodes
        .iter()
        .map(|(name, node)| format!("export DISK_{name}={}; ", shell_word(node)))
        .collect();
    let interactive = command.is_empty();
    let remote = if interactive {
        format!("{exports}cd /root; exec bash -l")
    } else {
        format!("{exports}{}", command.join(" "))
    };
    let mut ssh = Command::new("ssh");
    ssh.args(ssh_options(vm.ssh_port(), key));
    if interactive && std::io::stdin().is_terminal() {
        ssh.arg("-t");
    }
    ssh.arg("root@127.0.0.1").arg(remote);
    let status = ssh.status().context("running ssh")?;
    // ssh exits 255 for its own errors, otherwise with the remote status.
    Ok(status.code().unwrap_or(255))
}

/// The ssh options that reach a harness VM: its forwarded port, the harness's key, no host
/// key bookkeeping (every VM has a fresh one).
pub fn ssh_options(port: u16, key: &Path) -> Vec<String> {
    [
        "-p".to_string(),
        port.to_string(),
        "-i".to_string(),
        key.display().to_string(),
        "-o".to_string(),
        "StrictHostKeyChecking=no".to_string(),
        "-o".to_string(),
        "UserKnownHostsFile=/dev/null".to_string(),
        "-o".to_string(),
        "LogLevel=ERROR".to_string(),
        "-o".to_string(),
        "IdentitiesOnly=yes".to_string(),
    ]
    .to_vec()
}

/// The command a person types to get into a harness VM.
pub fn ssh_command_line(port: u16, key: &Path) -> String {
    let mut words = vec!["ssh".to_string()];
    words.extend(ssh_options(port, key).iter().map(|w| shell_word(w)));
    words.push("root@127.0.0.1".to_string());
    words.join(" ")
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_command_is_what_a_shell_reads() {
        let line = ssh_command_line(40022, Path::new("/root/.cache/bdsnap/ssh/id key"));
        assert!(line.starts_with("ssh -p 40022 -i '/root/.cache/bdsnap/ssh/id key' "));
        assert!(line.ends_with(" root@127.0.0.1"));
        assert!(line.contains("-o StrictHostKeyChecking=no"));
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("/dev/vdb"), "/dev/vdb");
    }
}
