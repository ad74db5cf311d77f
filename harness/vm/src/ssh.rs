//! Commands and file transfer over SSH (libssh2 through the `ssh2` crate).

use std::fs;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ssh2::{OpenFlags, OpenType, Session};

use crate::cmdline::shell_quote;
use crate::VmError;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// Exit status; a command killed by a signal reports 128 + the signal number, as shells do.
    pub exit: i32,
    pub duration: Duration,
}

/// Timeout for single blocking libssh2 operations (SFTP packets, channel setup). Generous,
/// because a TCG guest under load answers slowly.
const OP_TIMEOUT_MS: u32 = 120_000;

/// Connects to the guest's sshd through the forwarded port and authenticates as root.
pub(crate) fn connect(port: u16, key: &Path) -> Result<Session, VmError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| VmError::ssh(format!("connect to {addr}"), e))?;
    let mut session = Session::new().map_err(|e| VmError::ssh("new session", e))?;
    session.set_timeout(OP_TIMEOUT_MS);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|e| VmError::ssh("handshake", e))?;
    session
        .userauth_pubkey_file("root", None, key, None)
        .map_err(|e| {
            VmError::ssh(
                format!("public key login as root with {}", key.display()),
                e,
            )
        })?;
    if !session.authenticated() {
        return Err(VmError::ssh("login", "not authenticated"));
    }
    Ok(session)
}

/// The first line a command's remote shell writes to stderr (removed from what the caller
/// sees): its session id, when the shell leads a session of its own (sshd starts every
/// command without a terminal that way), so that a timed-out command's processes can be
/// found and ended, children included.
const SESSION_MARK: &str = "bdsnap-exec-session ";

/// The remote command line: announce the session, then environment assignments, then
/// `bash -c` with the command quoted, so the caller's text reaches bash unchanged whatever the
/// login shell is.
pub(crate) fn remote_command(command: &str, env: &[(String, String)]) -> Result<String, VmError> {
    // Field 6 of /proc/PID/stat is the session id (the command name before it is the shell's,
    // without spaces). A shell that does not lead its own session announces nothing: ending
    // its session could end sshd.
    let mut line = format!(
        "read -r _p _c _s _pp _pg sid _r < /proc/$$/stat && [ \"$sid\" = \"$$\" ] && \
         echo \"{SESSION_MARK}$$\" >&2; exec env"
    );
    for (name, value) in env {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(VmError::InvalidEnvName(name.clone()));
        }
        line.push(' ');
        line.push_str(&shell_quote(&format!("{name}={value}")));
    }
    line.push_str(" bash -c ");
    line.push_str(&shell_quote(command));
    Ok(line)
}

/// Runs `command` and collects stdout and stderr separately. Both streams are read in one
/// non-blocking loop: reading one to its end first could deadlock when the other fills the
/// SSH window.
pub(crate) fn exec(
    session: &Session,
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<ExecOutput, VmError> {
    run(session, command, env, timeout, OnTimeout::EndSession)
}

/// What a timed-out command leaves: its session ended, or (for the command that ends one,
/// so that a guest that no longer answers cannot make it recurse) nothing done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnTimeout {
    EndSession,
    Leave,
}

fn run(
    session: &Session,
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
    on_timeout: OnTimeout,
) -> Result<ExecOutput, VmError> {
    let line = remote_command(command, env)?;
    let start = Instant::now();
    session.set_blocking(true);
    let mut channel = session
        .channel_session()
        .map_err(|e| VmError::ssh("open channel", e))?;
    channel
        .exec(&line)
        .map_err(|e| VmError::ssh(format!("exec {command}"), e))?;

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    session.set_blocking(false);
    let outcome = loop {
        let mut progressed = false;
        let mut out_done = false;
        let mut err_done = false;
        match channel.read(&mut buf) {
            Ok(0) => out_done = true,
            Ok(n) => {
                stdout.extend_from_slice(&buf[..n]);
                progressed = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(VmError::ssh(format!("read stdout of {command}"), e)),
        }
        match channel.stderr().read(&mut buf) {
            Ok(0) => err_done = true,
            Ok(n) => {
                stderr.extend_from_slice(&buf[..n]);
                progressed = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(VmError::ssh(format!("read stderr of {command}"), e)),
        }
        if out_done && err_done && channel.eof() {
            break Ok(());
        }
        if start.elapsed() > timeout {
            let (session_id, stderr) = take_session_mark(&String::from_utf8_lossy(&stderr));
            break Err(VmError::CommandTimeout {
                command: command.to_string(),
                timeout,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr,
                ended: match on_timeout {
                    OnTimeout::EndSession => end_session(session, session_id),
                    OnTimeout::Leave => "left running".to_string(),
                },
            });
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    session.set_blocking(true);
    if let Err(e) = outcome {
        // Best effort: closing the channel makes sshd hang up on the command.
        let _ = channel.close();
        return Err(e);
    }
    channel
        .wait_close()
        .map_err(|e| VmError::ssh(format!("close channel of {command}"), e))?;
    let signal = channel
        .exit_signal()
        .map_err(|e| VmError::ssh("read exit signal", e))?
        .exit_signal;
    let exit = match signal {
        // sshd reports a signal instead of a status; libssh2 would then say 0.
        Some(name) => 128 + signal_number(&name),
        None => channel
            .exit_status()
            .map_err(|e| VmError::ssh("read exit status", e))?,
    };
    let (_, stderr) = take_session_mark(&String::from_utf8_lossy(&stderr));
    Ok(ExecOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
        exit,
        duration: start.elapsed(),
    })
}

/// Splits the session announcement off the start of a command's stderr.
fn take_session_mark(stderr: &str) -> (Option<u32>, String) {
    let Some(rest) = stderr.strip_prefix(SESSION_MARK) else {
        return (None, stderr.to_string());
    };
    let (first, after) = rest.split_once('\n').unwrap_or((rest, ""));
    match first.trim().parse::<u32>() {
        Ok(id) if id > 1 => (Some(id), after.to_string()),
        _ => (None, stderr.to_string()),
    }
}

/// The guest command that ends session `id`: every process in it is killed (processes a step
/// started in sessions of their own, such as `setsid -f` load, are not in it), then it waits
/// until none is left but zombies (their parent reaps them). Prints how many were alive;
/// exits 1, listing them, if any survived.
fn end_session_command(id: u32) -> String {
    format!(
        "alive() {{ ps -o stat= -s {id} | grep -v '^Z' | grep -c .; }}; \
         n=$(alive); pkill -KILL -s {id}; \
         for _ in $(seq 100); do [ \"$(alive)\" = 0 ] && {{ echo \"$n\"; exit 0; }}; sleep 0.1; done; \
         echo \"$n\"; ps -o pid=,stat=,args= -s {id}; exit 1"
    )
}

/// Ends a timed-out command's processes over a channel of their own, and says how it went
/// (this goes into the step's evidence).
fn end_session(session: &Session, id: Option<u32>) -> String {
    let Some(id) = id else {
        return "its processes could not be found: the command did not announce its session"
            .to_string();
    };
    match run(
        session,
        &end_session_command(id),
        &[],
        END_TIMEOUT,
        OnTimeout::Leave,
    ) {
        Ok(o) if o.exit == 0 => {
            let n = o.stdout.trim();
            format!("its {n} process(es) in session {id} were killed")
        }
        Ok(o) => format!(
            "killing session {id} left processes behind:\n{}",
            o.stdout.trim()
        ),
        Err(e) => format!("killing session {id} failed: {e}"),
    }
}

/// How long ending a timed-out command may take.
const END_TIMEOUT: Duration = Duration::from_secs(60);

/// Linux x86 signal numbers for the names SSH reports (RFC 4254 names, without "SIG").
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        // Unknown: still clearly not success.
        _ => 127,
    }
}

pub(crate) fn upload(
    session: &Session,
    local: &Path,
    remote: &Path,
    mode: i32,
) -> Result<(), VmError> {
    let context = || format!("upload {} to {}", local.display(), remote.display());
    let mut source =
        fs::File::open(local).map_err(|e| VmError::io(format!("open {}", local.display()), e))?;
    session.set_blocking(true);
    let sftp = session.sftp().map_err(|e| VmError::ssh(context(), e))?;
    let mut target = sftp
        .open_mode(
            remote,
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
            mode,
            OpenType::File,
        )
        .map_err(|e| VmError::ssh(context(), e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| VmError::ssh(context(), e))?;
    drop(target);
    // The creation mode passes through the server's umask; set it explicitly.
    let stat = ssh2::FileStat {
        size: None,
        uid: None,
        gid: None,
        perm: Some(mode as u32),
        atime: None,
        mtime: None,
    };
    sftp.setstat(remote, stat)
        .map_err(|e| VmError::ssh(context(), e))?;
    Ok(())
}

pub(crate) fn download(session: &Session, remote: &Path, local: &Path) -> Result<(), VmError> {
    let context = || format!("download {} to {}", remote.display(), local.display());
    session.set_blocking(true);
    let sftp = session.sftp().map_err(|e| VmError::ssh(context(), e))?;
    let mut source = sftp.open(remote).map_err(|e| VmError::ssh(context(), e))?;
    let mut target = fs::File::create(local)
        .map_err(|e| VmError::io(format!("create {}", local.display()), e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| VmError::ssh(context(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command_quotes_and_validates() {
        let env = vec![("FOO".to_string(), "a b'c".to_string())];
        let line = remote_command("echo \"$FOO\"; exit 3", &env).unwrap();
        // Run the line locally with sh standing in for the login shell.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "a b'c\n");
        assert_eq!(out.status.code(), Some(3));
        let bad = vec![("A;rm".to_string(), "x".to_string())];
        assert!(matches!(
            remote_command("true", &bad),
            Err(VmError::InvalidEnvName(_))
        ));
        assert!(remote_command("true", &[("1X".into(), "".into())]).is_err());
    }

    #[test]
    fn a_command_announces_its_session_and_the_mark_is_removed() {
        // setsid gives the shell a session of its own, as sshd does.
        let line = remote_command("echo out; echo err >&2", &[]).unwrap();
        let out = std::process::Command::new("setsid")
            .args(["--wait", "sh", "-c", &line])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let (id, rest) = take_session_mark(&stderr);
        assert!(id.is_some_and(|id| id > 1), "{stderr}");
        assert_eq!(rest, "err\n");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "out\n");
        // Not a session leader (a child of this test): no announcement, nothing removed.
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stderr).unwrap(), "err\n");
    }

    #[test]
    fn marks_that_are_not_ours_stay_in_stderr() {
        assert_eq!(take_session_mark("x\n"), (None, "x\n".to_string()));
        let forged = format!("{SESSION_MARK}1\nrest");
        assert_eq!(take_session_mark(&forged), (None, forged.clone()));
        let bad = format!("{SESSION_MARK}abc\n");
        assert_eq!(take_session_mark(&bad), (None, bad.clone()));
        let good = format!("{SESSION_MARK}4242\nrest\n");
        assert_eq!(take_session_mark(&good), (Some(4242), "rest\n".to_string()));
    }

    #[test]
    fn ending_a_session_kills_its_children_and_waits() {
        // A session with a shell and a background child, as a step's would be.
        let mut leader = std::process::Command::new("setsid")
            .args(["sh", "-c", "sleep 300 & sleep 300"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let id = leader.id();
        let out = std::process::Command::new("sh")
            .args(["-c", &end_session_command(id)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        // The shell and its two sleeps.
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "3");
        let _ = leader.wait();
        // Killed children may linger as zombies until their new parent reaps them.
        let left = std::process::Command::new("ps")
            .args(["-o", "stat=", "-s", &id.to_string()])
            .output()
            .unwrap();
        let left = String::from_utf8(left.stdout).unwrap();
        assert!(
            left.lines().all(|l| l.trim_start().starts_with('Z')),
            "{left}"
        );
    }

    #[test]
    fn signals_map_like_a_shell() {
        assert_eq!(signal_number("KILL"), 9);
        assert_eq!(signal_number("SIGSEGV"), 11);
        assert_eq!(signal_number("WEIRD"), 127);
    }
}
