//! `cbt-verify`: the CBT map against the log of what was written. Every block an extent touched
//! must carry the expected generation (a miss is a failure: a backup would lose that data);
//! blocks carrying it that nothing touched are over-reported and bounded by a ratio.

use super::extent::{touched_blocks, Extent};
use crate::{BlockDevice, CbtInfo, Control, CtlError};
use serde::Serialize;

/// Where the map comes from: the kernel in the guest, a fixed map in tests.
pub trait CbtSource {
    fn info(&self) -> Result<CbtInfo, CtlError>;
    fn live_map(&self, block_count: u32) -> Result<Vec<u8>, CtlError>;
}

/// The kernel's live map of one tracked device.
pub struct LiveCbt<'a> {
    pub ctl: &'a Control,
    pub dev: &'a BlockDevice,
}

impl CbtSource for LiveCbt<'_> {
    fn info(&self) -> Result<CbtInfo, CtlError> {
        self.ctl.cbt_info(self.dev)
    }

    fn live_map(&self, block_count: u32) -> Result<Vec<u8>, CtlError> {
        self.ctl.cbt_read(self.dev, 0, u64::from(block_count), true)
    }
}

/// Which generation the touched blocks must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The device's current `snap_number`.
    Current,
    Generation(u8),
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub expect: Expect,
    /// Largest acceptable over-reported/touched ratio.
    pub max_over_ratio: f64,
    /// Start of the logged device within the tracked one, in bytes.
    pub partition_offset: i64,
}

/// A touched block without the expected generation, and the first extent that touched it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    pub block: u64,
    pub value: u8,
    pub extent: Extent,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub touched: u64,
    /// Blocks carrying the expected generation.
    pub marked: u64,
    pub missed: u64,
    pub over: u64,
    pub over_ratio: f64,
    pub block_size: u32,
    pub block_count: u32,
    pub expected_generation: u8,
    pub extents: usize,
    /// Extents wholly outside the tracked device (see `--partition-offset`).
    pub extents_outside: usize,
    pub ok: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error("the map has {got} bytes, CBT_INFO said {want} blocks")]
    MapSize { got: usize, want: u32 },
    #[error("CBT_INFO reported block size 0")]
    ZeroBlockSize,
}

/// Reads info and live map from `src` and checks `extents` against them.
pub fn verify_source(
    src: &dyn CbtSource,
    extents: &[Extent],
    opts: &Options,
) -> Result<(Summary, Vec<Miss>), VerifyError> {
    let info = src.info()?;
    let map = src.live_map(info.block_count)?;
    verify(&info, &map, extents, opts)
}

/// Checks `extents` against `map` (one generation byte per block).
pub fn verify(
    info: &CbtInfo,
    map: &[u8],
    extents: &[Extent],
    opts: &Options,
) -> Result<(Summary, Vec<Miss>), VerifyError> {
    if map.len() != info.block_count as usize {
        return Err(VerifyError::MapSize {
            got: map.len(),
            want: info.block_count,
        });
    }
    if info.block_size == 0 {
        return Err(VerifyError::ZeroBlockSize);
    }
    let expected = match opts.expect {
        Expect::Current => info.snap_number,
        Expect::Generation(g) => g,
    };
    let bs = u64::from(info.block_size);
    // The map may cover less than the device's sectors round up to; never index past it.
    let device_bytes = info
        .device_sectors
        .saturating_mul(512)
        .min(u64::from(info.block_count) * bs);
    let mut touched = vec![false; map.len()];
    let mut misses = Vec::new();
    let mut outside = 0;
    for e in extents {
        let Some((first, last)) = touched_blocks(e, opts.partition_offset, bs, device_bytes) else {
            outside += 1;
            continue;
        };
        for b in first..=last {
            let i = b as usize;
            if touched[i] {
                continue;
            }
            touched[i] = true;
            if map[i] != expected {
                misses.push(Miss {
                    block: b,
                    value: map[i],
                    extent: *e,
                });
            }
        }
    }
    let touched_n = touched.iter().filter(|&&t| t).count() as u64;
    let marked = map.iter().filter(|&&v| v == expected).count() as u64;
    let over = map
        .iter()
        .zip(&touched)
        .filter(|(&v, &t)| v == expected && !t)
        .count() as u64;
    let over_ratio = if over == 0 {
        0.0
    } else if touched_n == 0 {
        f64::INFINITY
    } else {
        over as f64 / touched_n as f64
    };
    let summary = Summary {
        touched: touched_n,
        marked,
        missed: misses.len() as u64,
        over,
        over_ratio,
        block_size: info.block_size,
        block_count: info.block_count,
        expected_generation: expected,
        extents: extents.len(),
        extents_outside: outside,
        ok: misses.is_empty() && over_ratio <= opts.max_over_ratio,
    };
    Ok((summary, misses))
}

#[cfg(test)]
mod tests {
    use super::super::extent::Kind;
    use super::*;
    use crate::GenerationId;

    const BS: u32 = 65536;

    struct FakeCbt {
        info: CbtInfo,
        map: Vec<u8>,
    }

    impl CbtSource for FakeCbt {
        fn info(&self) -> Result<CbtInfo, CtlError> {
            Ok(self.info.clone())
        }
        fn live_map(&self, block_count: u32) -> Result<Vec<u8>, CtlError> {
            assert_eq!(block_count as usize, self.map.len());
            Ok(self.map.clone())
        }
    }

    fn info(blocks: u32, snap: u8) -> CbtInfo {
        CbtInfo {
            block_size: BS,
            block_count: blocks,
            device_sectors: u64::from(blocks) * u64::from(BS) / 512,
            generation_id: GenerationId::default(),
            snap_number: snap,
            state: 0,
            state_flags: vec![],
        }
    }

    fn opts() -> Options {
        Options {
            expect: Expect::Current,
            max_over_ratio: 0.0,
            partition_offset: 0,
        }
    }

    fn extents() -> Vec<Extent> {
        vec![
            // Unaligned buffered write straddling blocks 0 and 1.
            Extent {
                kind: Kind::Buffered,
                offset: u64::from(BS) - 100,
                length: 300,
            },
            // Direct write inside block 5.
            Extent {
                kind: Kind::Direct,
                offset: 5 * u64::from(BS) + 512,
                length: 512,
            },
            // Discard of blocks 8..=9.
            Extent {
                kind: Kind::Discard,
                offset: 8 * u64::from(BS),
                length: 2 * u64::from(BS),
            },
        ]
    }

    /// The map a correct tracker produces for `extents()` at generation `g`.
    fn exact_map(g: u8) -> Vec<u8> {
        let mut map = vec![0u8; 16];
        for b in [0, 1, 5, 8, 9] {
            map[b] = g;
        }
        map
    }

    #[test]
    fn exact_map_passes() {
        let src = FakeCbt {
            info: info(16, 3),
            map: exact_map(3),
        };
        let (s, misses) = verify_source(&src, &extents(), &opts()).unwrap();
        assert!(misses.is_empty());
        assert_eq!((s.touched, s.marked, s.missed, s.over), (5, 5, 0, 0));
        assert!(s.ok);
    }

    #[test]
    fn a_missing_block_fails_and_names_block_and_extent() {
        let mut map = exact_map(3);
        map[1] = 0; // the second block of the straddling write
        let (s, misses) = verify(&info(16, 3), &map, &extents(), &opts()).unwrap();
        assert!(!s.ok);
        assert_eq!(s.missed, 1);
        assert_eq!(misses[0].block, 1);
        assert_eq!(misses[0].value, 0);
        assert_eq!(misses[0].extent, extents()[0]);
    }

    #[test]
    fn an_older_generation_is_a_miss() {
        let mut map = exact_map(3);
        map[5] = 2;
        let (s, misses) = verify(&info(16, 3), &map, &extents(), &opts()).unwrap();
        assert!(!s.ok);
        assert_eq!(misses[0].block, 5);
    }

    #[test]
    fn over_reporting_is_counted_and_bounded() {
        let mut map = exact_map(3);
        map[12] = 3;
        map[13] = 1; // an older generation is neither marked nor over
        let (s, _) = verify(&info(16, 3), &map, &extents(), &opts()).unwrap();
        assert_eq!((s.marked, s.over), (6, 1));
        assert!(!s.ok, "over-reporting above ratio 0 must fail");
        let lenient = Options {
            max_over_ratio: 0.25,
            ..opts()
        };
        let (s, _) = verify(&info(16, 3), &map, &extents(), &lenient).unwrap();
        assert!((s.over_ratio - 0.2).abs() < 1e-9);
        assert!(s.ok);
    }

    #[test]
    fn explicit_generation_and_partition_offset() {
        // The log was written on a partition starting 4 blocks into the tracked disk.
        let mut map = vec![0u8; 16];
        for b in [4, 5, 9, 12, 13] {
            map[b] = 7;
        }
        let o = Options {
            expect: Expect::Generation(7),
            partition_offset: 4 * i64::from(BS),
            ..opts()
        };
        let (s, misses) = verify(&info(16, 9), &map, &extents(), &o).unwrap();
        assert!(misses.is_empty(), "{misses:?}");
        assert!(s.ok);
        // Without the offset the same map is wrong.
        let (s, _) = verify(
            &info(16, 9),
            &map,
            &extents(),
            &Options {
                partition_offset: 0,
                ..o
            },
        )
        .unwrap();
        assert!(!s.ok);
    }

    #[test]
    fn map_of_the_wrong_length_is_an_error() {
        let e = verify(&info(16, 1), &[0u8; 15], &extents(), &opts()).unwrap_err();
        assert!(matches!(e, VerifyError::MapSize { got: 15, want: 16 }));
    }

    #[test]
    fn summary_json_has_the_promised_keys() {
        let (s, _) = verify(&info(16, 3), &exact_map(3), &extents(), &opts()).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        for k in ["touched", "marked", "missed", "over", "ok"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
    }
}
