//! `bdsnapctl snapshot ...`: the commands, their text and JSON output.

use crate::{parse_size_arg, print_json};
use anyhow::{bail, Context as _, Result};
use bdsnapctl::errno;
use bdsnapctl::snapshot::{ErrnoName, Event, EventCode, SnapshotInfo, TakeTimes};
use bdsnapctl::{BlockDevice, Control, CreateParams, DevNum};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Create a snapshot with its difference storage (an existing regular file, tmpfs included,
    /// or a block device); prints its id.
    Create {
        /// The first piece of difference storage.
        #[arg(long)]
        storage: PathBuf,
        /// Bytes of the file to use now; a shorter file is extended (0: its size; a block
        /// device: all of it). Sizes take K, M, G, T suffixes.
        #[arg(long, value_parser = parse_size_arg, default_value = "0")]
        bytes: u64,
        /// Let the module grow the storage file up to this total (0: never grow).
        #[arg(long, value_parser = parse_size_arg, default_value = "0")]
        limit: u64,
        /// Bytes per growth (0: the module's default, 64M).
        #[arg(long, value_parser = parse_size_arg, default_value = "0")]
        grow_step: u64,
        /// Emit a low-space event below this many free bytes (0: the module's default).
        #[arg(long, value_parser = parse_size_arg, default_value = "0")]
        low_space: u64,
    },
    /// Add tracked devices (paths or MAJ:MIN) to a snapshot not taken yet.
    Add {
        id: u64,
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// Take the snapshot (freeze, switch, thaw); prints the time frozen and how long the take
    /// then waited for the writes in flight at the switch.
    Take {
        id: u64,
        /// Do not freeze filesystems (raw devices only).
        #[arg(long)]
        no_freeze: bool,
    },
    /// Destroy a snapshot in any state (its images go away).
    Destroy { id: u64 },
    /// State, error, storage figures, and every device with its image.
    Info { id: u64 },
    /// List snapshot ids.
    List,
    /// Add another piece of difference storage.
    AppendStorage {
        id: u64,
        #[arg(long)]
        storage: PathBuf,
        #[arg(long, value_parser = parse_size_arg, default_value = "0")]
        bytes: u64,
    },
    /// Wait for the next event (none: the timeout passed); with --expect, wait through other
    /// events for CODE and exit 1 if it does not come in time.
    WaitEvent {
        id: u64,
        /// How long to wait in all.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u32,
        /// Wait until an event with this code arrives; print every event seen.
        #[arg(long, value_enum, value_name = "CODE")]
        expect: Option<ExpectCode>,
    },
    /// Print the image path of DEVICE in snapshot ID.
    Image { id: u64, device: String },
}

/// Event codes `wait-event --expect` can wait for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectCode {
    LowSpace,
    Corrupted,
    DevRemoved,
    StorageGrown,
    Overflow,
}

impl ExpectCode {
    fn code(self) -> EventCode {
        match self {
            Self::LowSpace => EventCode::LowSpace,
            Self::Corrupted => EventCode::Corrupted,
            Self::DevRemoved => EventCode::DevRemoved,
            Self::StorageGrown => EventCode::StorageGrown,
            Self::Overflow => EventCode::Overflow,
        }
    }
}

pub fn run(ctl: &Control, cmd: SnapshotCmd, devs: &[BlockDevice], json: bool) -> Result<bool> {
    match cmd {
        SnapshotCmd::Create {
            storage,
            bytes,
            limit,
            grow_step,
            low_space,
        } => {
            let params = CreateParams {
                bytes,
                limit,
                grow_step,
                low_space,
            };
            let id = ctl.snapshot_create(&storage, &params)?;
            if json {
                print_json(&serde_json::json!({ "id": id }))?;
            } else {
                println!("{id}");
            }
        }
        SnapshotCmd::Add { id, .. } => {
            for d in devs {
                ctl.snapshot_add(id, d)?;
            }
            if json {
                let added: Vec<DevNum> = devs.iter().map(|d| DevNum(d.id)).collect();
                print_json(&serde_json::json!({ "id": id, "added": added }))?;
            }
        }
        SnapshotCmd::Take { id, no_freeze } => {
            let times = ctl.snapshot_take(id, no_freeze)?;
            if json {
                print_json(&take_json(id, &times, no_freeze))?;
            } else {
                print!("{}", take_text(&times));
            }
        }
        SnapshotCmd::Destroy { id } => {
            ctl.snapshot_destroy(id)?;
            if json {
                print_json(&serde_json::json!({ "id": id, "destroyed": true }))?;
            }
        }
        SnapshotCmd::Info { id } => {
            let info = ctl.snapshot_info(id)?;
            if json {
                print_json(&info)?;
            } else {
                print!("{}", info_text(&info));
            }
        }
        SnapshotCmd::List => {
            let ids = ctl.snapshot_list()?;
            if json {
                print_json(&serde_json::json!({ "ids": ids }))?;
            } else {
                for id in ids {
                    println!("{id}");
                }
            }
        }
        SnapshotCmd::AppendStorage { id, storage, bytes } => {
            ctl.snapshot_append_storage(id, &storage, bytes)?;
            if json {
                print_json(&serde_json::json!({
                    "id": id, "storage": storage, "bytes": bytes,
                }))?;
            }
        }
        SnapshotCmd::WaitEvent {
            id,
            timeout_ms,
            expect: None,
        } => {
            let ev = ctl.snapshot_wait_event(id, timeout_ms)?;
            if json {
                print_json(&IdEvent { id, event: &ev })?;
            } else {
                println!("{}", event_line(&ev));
            }
        }
        SnapshotCmd::WaitEvent {
            id,
            timeout_ms,
            expect: Some(want),
        } => return wait_for(ctl, id, timeout_ms, want, json),
        SnapshotCmd::Image { id, .. } => {
            let d = devs.first().context("internal: image without a device")?;
            let info = ctl.snapshot_info(id)?;
            let Some(entry) = info.device(d.id) else {
                bail!("{d} is not in snapshot {id}");
            };
            let (Some(image), Some(path)) = (entry.image, &entry.image_path) else {
                match entry.image {
                    None => bail!("snapshot {id} has no image of {d} (state {})", info.state),
                    Some(i) => bail!("snapshot {id}: image {i} of {d} is not in /sys/block"),
                }
            };
            if json {
                print_json(&serde_json::json!({
                    "id": id, "dev": DevNum(d.id), "image": image, "image_path": path,
                }))?;
            } else {
                println!("{}", path.display());
            }
        }
    }
    Ok(true)
}

#[derive(Serialize)]
struct IdEvent<'a> {
    id: u64,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
struct WaitReport<'a> {
    id: u64,
    expect: String,
    arrived: bool,
    timeout_ms: u32,
    events: &'a [Event],
}

/// Waits through other events until `want` arrives or `timeout_ms` passed in all.
fn wait_for(ctl: &Control, id: u64, timeout_ms: u32, want: ExpectCode, json: bool) -> Result<bool> {
    let want = want.code();
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    let mut events = Vec::new();
    let mut arrived = false;
    while !arrived {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so a last fraction of a millisecond is still waited for.
        let left_ms = u32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
        let ev = ctl.snapshot_wait_event(id, left_ms)?;
        if ev.code == EventCode::None {
            break;
        }
        if !json {
            println!("{}", event_line(&ev));
        }
        arrived = ev.code == want;
        events.push(ev);
    }
    if json {
        print_json(&WaitReport {
            id,
            expect: want.name(),
            arrived,
            timeout_ms,
            events: &events,
        })?;
    }
    if !arrived {
        eprintln!(
            "bdsnapctl: snapshot {id}: no {want} event within {timeout_ms} ms ({} other events)",
            events.len()
        );
    }
    Ok(arrived)
}

fn event_line(e: &Event) -> String {
    let dev = e.dev.map_or_else(|| "-".to_string(), |d| d.to_string());
    let mut line = format!(
        "code={} dev={dev} error={} used={} total={} limit={} time_ns={}",
        e.code, e.error, e.used, e.total, e.limit, e.time_ns
    );
    if let Some(reason) = errno::corruption_reason(e.error.0) {
        line.push_str(&format!(" reason=\"{reason}\""));
    }
    line
}

/// An errno with its documented reason: `EDQUOT: chunk metadata limit reached (...)`.
fn error_text(e: ErrnoName) -> String {
    match errno::corruption_reason(e.0) {
        Some(reason) => format!("{e}: {reason}"),
        None => e.to_string(),
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// `snapshot take --json`: nanoseconds as the module gave them, and milliseconds.
fn take_json(id: u64, t: &TakeTimes, no_freeze: bool) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "take_ns": t.take_ns,
        "take_ms": ms(t.take_ns),
        "wait_ns": t.wait_ns,
        "wait_ms": ms(t.wait_ns),
        "writes_waited": t.writes_waited,
        "no_freeze": no_freeze,
    })
}

fn take_text(t: &TakeTimes) -> String {
    format!(
        "take_ms: {:.3}\nwait_ms: {:.3}\nwrites_waited: {}\n",
        ms(t.take_ns),
        ms(t.wait_ns),
        t.writes_waited
    )
}

fn info_text(info: &SnapshotInfo) -> String {
    let mut out = format!(
        "id: {}\nstate: {}\nerror: {}\nstorage_used: {}\nstorage_total: {}\n\
         storage_limit: {}\ndevices: {}\n",
        info.id,
        info.state,
        error_text(info.error),
        info.storage_used,
        info.storage_total,
        info.storage_limit,
        info.devices.len()
    );
    for d in &info.devices {
        let image = d.image.map_or_else(|| "-".to_string(), |i| i.to_string());
        let path = d
            .image_path
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string());
        out.push_str(&format!(
            "device {}: image {image} {path} chunk_size {} chunks_copied {} chunk_memory {} \
             reserve_copies {} discards_dropped {} error {}\n",
            d.dev,
            d.chunk_size,
            d.chunks_copied,
            d.chunk_memory,
            d.reserve_copies,
            d.discards_dropped,
            d.error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_output_keeps_the_old_keys_and_adds_the_wait() {
        let t = TakeTimes {
            take_ns: 1_234_567,
            wait_ns: 89_000,
            writes_waited: 12,
        };
        assert_eq!(
            take_text(&t),
            "take_ms: 1.235\nwait_ms: 0.089\nwrites_waited: 12\n"
        );
        let v = take_json(5, &t, true);
        assert_eq!(v["id"], 5);
        assert_eq!(v["take_ns"], 1_234_567);
        assert_eq!(v["take_ms"], 1.234567);
        assert_eq!(v["wait_ns"], 89_000);
        assert_eq!(v["wait_ms"], 0.089);
        assert_eq!(v["writes_waited"], 12);
        assert_eq!(v["no_freeze"], true);
    }

    #[test]
    fn info_text_shows_every_device_field() {
        let info = SnapshotInfo {
            id: 2,
            state: bdsnapctl::SnapshotState::Taken,
            error: ErrnoName(libc::EDQUOT as u32),
            storage_used: 10,
            storage_total: 20,
            storage_limit: 30,
            devices: vec![bdsnapctl::snapshot::SnapshotDevInfo {
                dev: DevNum(bdsnapctl::uapi::BdsnapDevId {
                    major: 253,
                    minor: 16,
                }),
                image: None,
                image_path: None,
                chunk_size: 65536,
                chunks_copied: 4,
                chunk_memory: 8192,
                reserve_copies: 1,
                discards_dropped: 6,
                error: ErrnoName(libc::EDQUOT as u32),
            }],
        };
        let text = info_text(&info);
        assert!(
            text.starts_with(
                "id: 2\nstate: taken\nerror: EDQUOT: chunk metadata limit reached \
                 (chunk_memory_max_mib)\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "device 253:16: image - - chunk_size 65536 chunks_copied 4 chunk_memory 8192 \
                 reserve_copies 1 discards_dropped 6 error EDQUOT\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn event_lines_name_everything() {
        let e = Event {
            code: EventCode::Corrupted,
            time_ns: 5,
            dev: Some(DevNum(bdsnapctl::uapi::BdsnapDevId {
                major: 253,
                minor: 16,
            })),
            error: ErrnoName(libc::ENOSPC as u32),
            used: 1,
            total: 2,
            limit: 3,
        };
        assert_eq!(
            event_line(&e),
            "code=corrupted dev=253:16 error=ENOSPC used=1 total=2 limit=3 time_ns=5 \
             reason=\"difference storage exhausted\""
        );
        let e = Event {
            error: ErrnoName(libc::EDQUOT as u32),
            ..e
        };
        assert!(event_line(&e).ends_with(
            " error=EDQUOT used=1 total=2 limit=3 time_ns=5 \
             reason=\"chunk metadata limit reached (chunk_memory_max_mib)\""
        ));
        let e = Event {
            code: EventCode::LowSpace,
            dev: None,
            error: ErrnoName(0),
            ..e
        };
        assert_eq!(
            event_line(&e),
            "code=low-space dev=- error=none used=1 total=2 limit=3 time_ns=5"
        );
    }
}
