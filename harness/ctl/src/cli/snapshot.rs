//! `bdsnapctl snapshot ...`: the commands, their text and JSON output.

use crate::{parse_size_arg, print_json};
use anyhow::{bail, Context as _, Result};
use bdsnapctl::snapshot::{Event, EventCode, SnapshotInfo};
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
    /// Take the snapshot (freeze, switch, thaw); prints the time frozen.
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
            let take_ns = ctl.snapshot_take(id, no_freeze)?;
            let take_ms = take_ns as f64 / 1e6;
            if json {
                print_json(&serde_json::json!({
                    "id": id, "take_ns": take_ns, "take_ms": take_ms, "no_freeze": no_freeze,
                }))?;
            } else {
                println!("take_ms: {take_ms:.3}");
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
                print_info(&info);
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
    format!(
        "code={} dev={dev} error={} used={} total={} limit={} time_ns={}",
        e.code, e.error, e.used, e.total, e.limit, e.time_ns
    )
}

fn print_info(info: &SnapshotInfo) {
    println!("id: {}", info.id);
    println!("state: {}", info.state);
    println!("error: {}", info.error);
    println!("storage_used: {}", info.storage_used);
    println!("storage_total: {}", info.storage_total);
    println!("storage_limit: {}", info.storage_limit);
    println!("devices: {}", info.devices.len());
    for d in &info.devices {
        let image = d.image.map_or_else(|| "-".to_string(), |i| i.to_string());
        let path = d
            .image_path
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string());
        println!(
            "device {}: image {image} {path} chunk_size {} chunks_copied {} error {}",
            d.dev, d.chunk_size, d.chunks_copied, d.error
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_name_everything() {
        let e = Event {
            code: EventCode::Corrupted,
            time_ns: 5,
            dev: Some(DevNum(bdsnapctl::uapi::BdsnapDevId {
                major: 253,
                minor: 16,
            })),
            error: bdsnapctl::snapshot::ErrnoName(libc::ENOSPC as u32),
            used: 1,
            total: 2,
            limit: 3,
        };
        assert_eq!(
            event_line(&e),
            "code=corrupted dev=253:16 error=ENOSPC used=1 total=2 limit=3 time_ns=5"
        );
    }
}
