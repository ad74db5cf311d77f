//! Host commands, each one written to a log before it runs and with its result after, so a run
//! leaves evidence of everything it did to the machine.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}; last output:\n{tail}")]
    Failed {
        command: String,
        status: String,
        tail: String,
    },
    #[error("could not write command log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// A shared, append-only log of host commands. Cloning shares the file.
#[derive(Clone)]
pub struct CmdLog {
    file: Option<Arc<Mutex<File>>>,
    path: Option<PathBuf>,
}

impl CmdLog {
    /// A log appending to `path` (created with its parent directories).
    pub fn to_file(path: &Path) -> Result<Self, CmdError> {
        let err = |source| CmdError::Log {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(Self {
            file: Some(Arc::new(Mutex::new(file))),
            path: Some(path.to_path_buf()),
        })
    }

    /// A log that keeps nothing (tests, probes).
    pub fn discard() -> Self {
        Self {
            file: None,
            path: None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends free text to the log.
    pub fn note(&self, text: &str) {
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                // The log is evidence, not control flow: a failed write must not fail the run.
                let _ = writeln!(f, "{text}");
            }
        }
    }

    /// Runs `cmd`, capturing its output; a non-zero exit is an error carrying the output's tail.
    pub fn run(&self, cmd: &mut Command) -> Result<Output, CmdError> {
        let shown = show(cmd);
        self.note(&format!("$ {shown}"));
        let started = Instant::now();
        let out = cmd.output().map_err(|source| CmdError::Spawn {
            command: shown.clone(),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.note(&format!(
            "# {} in {:.1}s\n{}{}",
            out.status,
            started.elapsed().as_secs_f64(),
            indent(&stdout),
            indent(&stderr)
        ));
        if !out.status.success() {
            let mut both = stdout.clone();
            both.push_str(&stderr);
            return Err(CmdError::Failed {
                command: shown,
                status: out.status.to_string(),
                tail: tail(&both, 30),
            });
        }
        Ok(Output { stdout, stderr })
    }
}

/// The command as a person would type it.
pub fn show(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            format!("'{}'", a.replace('\'', r"'\''"))
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_status_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = CmdLog::to_file(&dir.path().join("cmds.log")).unwrap();
        let err = log
            .run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("out") && msg.contains("err"), "{msg}");
        let logged = std::fs::read_to_string(dir.path().join("cmds.log")).unwrap();
        assert!(
            logged.contains("$ sh -c 'echo out; echo err >&2; exit 3'"),
            "{logged}"
        );
    }

    #[test]
    fn success_separates_streams() {
        let out = CmdLog::discard()
            .run(Command::new("sh").args(["-c", "echo a; echo b >&2"]))
            .unwrap();
        assert_eq!(out.stdout, "a\n");
        assert_eq!(out.stderr, "b\n");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("1\n2\n3\n", 2), "2\n3");
        assert_eq!(tail("1", 5), "1");
    }
}
