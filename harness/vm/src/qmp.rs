//! A small QMP client: line-delimited JSON over a unix socket.
//!
//! QEMU may send asynchronous events between a command and its reply, so every event read while
//! waiting for a reply is kept in a buffer; [`Qmp::wait_event`] looks there first. That way an
//! event such as `DEVICE_DELETED` that arrives before anyone waits for it is never lost.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Failures of the QMP conversation itself, or a command that QEMU rejected.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("connect to {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("QEMU closed the QMP socket")]
    Closed,
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    #[error("command {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
}

/// An asynchronous QMP event, as QEMU sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
}

/// A connected, capability-negotiated QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: VecDeque<QmpEvent>,
    next_id: u64,
    /// How long a single command may take before its reply counts as lost.
    reply_timeout: Duration,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(path: &Path, reply_timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: VecDeque::new(),
            next_id: 1,
            reply_timeout,
        };
        let greeting = qmp.read_message(reply_timeout, "QMP greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected greeting, got {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs one command and returns its `return` value; an `error` reply becomes
    /// [`QmpError::Command`]. Events read meanwhile are buffered.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        if let Err(e) = self.writer.write_all(line.as_bytes()) {
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    QmpError::Closed
                }
                _ => e.into(),
            });
        }

        let what = format!("reply to {command}");
        loop {
            let message = self.read_message(self.reply_timeout, &what)?;
            if let Some(event) = as_event(&message) {
                self.events.push_back(event);
                continue;
            }
            // Replies without an id can only come from a QEMU that ignores ids; accept them.
            match message.get("id") {
                Some(reply_id) if reply_id != &json!(id) => {
                    return Err(QmpError::Protocol(format!(
                        "reply for id {reply_id} while waiting for {id}: {message}"
                    )))
                }
                _ => {}
            }
            if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            }
            if let Some(error) = message.get("error") {
                let field = |name: &str| {
                    error
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            return Err(QmpError::Protocol(message.to_string()));
        }
    }

    /// Waits for the first event called `name` whose data satisfies `matches`, looking first
    /// at events buffered earlier. Non-matching events stay buffered for later waits.
    pub fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<QmpEvent, QmpError> {
        if let Some(pos) = self
            .events
            .iter()
            .position(|e| e.name == name && matches(&e.data))
        {
            if let Some(event) = self.events.remove(pos) {
                return Ok(event);
            }
        }
        let deadline = Instant::now() + timeout;
        let what = format!("event {name}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QmpError::Timeout { what, timeout });
            }
            let message = match self.read_message(left, &what) {
                Err(QmpError::Timeout { .. }) => return Err(QmpError::Timeout { what, timeout }),
                other => other?,
            };
            match as_event(&message) {
                Some(event) if event.name == name && matches(&event.data) => return Ok(event),
                Some(event) => self.events.push_back(event),
                None => return Err(QmpError::Protocol(format!("unsolicited reply {message}"))),
            }
        }
    }

    /// Events received so far and not yet consumed by [`Qmp::wait_event`].
    pub fn buffered_events(&self) -> impl Iterator<Item = &QmpEvent> {
        self.events.iter()
    }

    /// Reads one JSON message, giving up after `timeout`.
    fn read_message(&mut self, timeout: Duration, what: &str) -> Result<Value, QmpError> {
        let deadline = Instant::now() + timeout;
        let mut line = String::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(QmpError::Timeout {
                    what: what.to_string(),
                    timeout,
                });
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(deadline - now))?;
            // A timed-out read_line may leave a partial line in `line`; keep it and go on.
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(QmpError::Closed),
                Ok(_) if line.ends_with('\n') => {
                    let trimmed = line.trim();
                    if trimmed.is_empty() {
                        line.clear();
                        continue;
                    }
                    return serde_json::from_str(trimmed)
                        .map_err(|e| QmpError::Protocol(format!("{e}: {trimmed}")));
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                // A peer that closes with our request unread resets the connection.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(QmpError::Closed)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn as_event(message: &Value) -> Option<QmpEvent> {
    let name = message.get("event")?.as_str()?.to_string();
    let data = message.get("data").cloned().unwrap_or(Value::Null);
    Some(QmpEvent { name, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// Lines the fake server sends in answer to one request.
    type Step = Box<dyn Fn(&Value) -> Vec<String> + Send>;

    /// A scripted fake QEMU: sends the greeting, then answers each request line with the
    /// lines the script gives for it (which may include events before the reply).
    fn fake_server(
        dir: &Path,
        script: Vec<Step>,
    ) -> (std::path::PathBuf, thread::JoinHandle<Vec<Value>>) {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            writeln!(
                writer,
                r#"{{"QMP": {{"version": {{"qemu": {{"major": 7}}}}, "capabilities": []}}}}"#
            )
            .unwrap();
            let mut seen = Vec::new();
            for step in script {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let request: Value = serde_json::from_str(&line).unwrap();
                for out in step(&request) {
                    writer.write_all(out.as_bytes()).unwrap();
                    writer.write_all(b"\n").unwrap();
                }
                seen.push(request);
            }
            seen
        });
        (path, handle)
    }

    fn reply(req: &Value, ret: &str) -> String {
        format!(r#"{{"return": {ret}, "id": {}}}"#, req["id"])
    }

    #[test]
    fn handshake_command_event_and_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_server(
            dir.path(),
            vec![
                Box::new(|r| vec![reply(r, "{}")]),
                // An event arrives before the reply of device_del, as QEMU may do.
                Box::new(|r| {
                    vec![
                        r#"{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/dev-a/virtio-backend"}, "timestamp": {"seconds": 1, "microseconds": 2}}"#.to_string(),
                        r#"{"event": "DEVICE_DELETED", "data": {"device": "dev-a", "path": "/machine/peripheral/dev-a"}, "timestamp": {"seconds": 1, "microseconds": 3}}"#.to_string(),
                        reply(r, "{}"),
                    ]
                }),
                Box::new(|r| {
                    vec![format!(
                        r#"{{"error": {{"class": "GenericError", "desc": "Device 'nope' not found"}}, "id": {}}}"#,
                        r["id"]
                    )]
                }),
                Box::new(|r| vec![reply(r, r#"[{"name": "dev-b", "type": "child<scsi-hd>"}]"#)]),
            ],
        );
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        qmp.execute("device_del", Some(json!({"id": "dev-a"})))
            .unwrap();
        // The event was read while waiting for the reply, and must still be found.
        let event = qmp
            .wait_event(
                "DEVICE_DELETED",
                |d| d["device"] == "dev-a",
                Duration::from_millis(100),
            )
            .unwrap();
        assert_eq!(event.data["path"], "/machine/peripheral/dev-a");
        // The non-matching backend event stays buffered.
        assert_eq!(qmp.buffered_events().count(), 1);

        let err = qmp
            .execute("device_del", Some(json!({"id": "nope"})))
            .unwrap_err();
        match err {
            QmpError::Command {
                command,
                class,
                desc,
            } => {
                assert_eq!(command, "device_del");
                assert_eq!(class, "GenericError");
                assert!(desc.contains("not found"));
            }
            other => panic!("expected a command error, got {other:?}"),
        }
        let ret = qmp
            .execute("qom-list", Some(json!({"path": "/machine/peripheral"})))
            .unwrap();
        assert_eq!(ret[0]["name"], "dev-b");
        drop(qmp);
        let seen = server.join().unwrap();
        assert_eq!(seen[0]["execute"], "qmp_capabilities");
        assert_eq!(seen[1]["arguments"]["id"], "dev-a");
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn waiting_for_an_event_that_never_comes_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _server) = fake_server(
            dir.path(),
            vec![Box::new(|r| vec![reply(r, "{}")]), Box::new(|_| vec![])],
        );
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        let start = Instant::now();
        let err = qmp
            .wait_event("DEVICE_DELETED", |_| true, Duration::from_millis(300))
            .unwrap_err();
        assert!(matches!(err, QmpError::Timeout { .. }), "{err:?}");
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn closed_socket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            writeln!(stream, r#"{{"QMP": {{}}}}"#).unwrap();
            // Hang up without answering qmp_capabilities.
        });
        let err = match Qmp::connect(&path, Duration::from_secs(5)) {
            Err(e) => e,
            Ok(_) => panic!("connect must fail when QEMU hangs up"),
        };
        server.join().unwrap();
        assert!(matches!(err, QmpError::Closed), "{err:?}");
    }
}
