//! Text formats of the CLI, kept out of `main.rs` so they are unit-tested: the JSON form of a
//! CBT map, the `SECTOR:COUNT` range syntax and byte sizes with `K`/`M`/`G`/`T` suffixes.

use crate::CbtInfo;
use serde::Serialize;

/// `bdsnapctl cbt read --format json`: only the non-zero entries, as `[index, generation]`.
#[derive(Debug, Serialize)]
pub struct MapJson {
    pub block_size: u32,
    pub block_count: u32,
    pub snap_number: u8,
    pub generation_id: String,
    pub live: bool,
    pub blocks: Vec<(u64, u8)>,
}

impl MapJson {
    pub fn new(info: &CbtInfo, map: &[u8], live: bool) -> Self {
        Self {
            block_size: info.block_size,
            block_count: info.block_count,
            snap_number: info.snap_number,
            generation_id: info.generation_id.to_string(),
            live,
            blocks: map
                .iter()
                .enumerate()
                .filter(|(_, &v)| v != 0)
                .map(|(i, &v)| (i as u64, v))
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("{0:?}: expected SECTOR:COUNT")]
    Syntax(String),
    #[error("{0:?}: not a number")]
    Number(String),
    #[error("{0:?}: COUNT must not be zero")]
    Zero(String),
    #[error("line {line}: {error}")]
    Line { line: usize, error: Box<RangeError> },
}

/// `SECTOR:COUNT` in 512-byte sectors, decimal or `0x` hex.
pub fn parse_range(s: &str) -> Result<(u64, u64), RangeError> {
    let (a, b) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| RangeError::Syntax(s.to_string()))?;
    let num = |t: &str| {
        let t = t.trim();
        let r = match t.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse(),
        };
        r.map_err(|_| RangeError::Number(t.to_string()))
    };
    let (sector, count) = (num(a)?, num(b)?);
    if count == 0 {
        return Err(RangeError::Zero(s.to_string()));
    }
    Ok((sector, count))
}

/// A `--from` file: one `SECTOR:COUNT` per line; blank lines and `#` comments are skipped.
pub fn parse_range_file(text: &str) -> Result<Vec<(u64, u64)>, RangeError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map(|(i, l)| {
            parse_range(l).map_err(|e| RangeError::Line {
                line: i + 1,
                error: Box::new(e),
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("{0:?}: expected a byte count like 4096, 512K, 64M, 2G (or 64MiB)")]
    Syntax(String),
    #[error("{0:?}: too large")]
    Overflow(String),
}

/// A byte count: decimal digits, optionally followed by `K`, `M`, `G` or `T` (powers of 1024,
/// either case, optionally followed by `iB` or `B`).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(SizeError::Syntax(s.to_string()));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(SizeError::Syntax(s.to_string())),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| SizeError::Overflow(s.to_string()))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationId;

    #[test]
    fn map_json_lists_only_nonzero_blocks() {
        let info = CbtInfo {
            block_size: 65536,
            block_count: 5,
            device_sectors: 640,
            generation_id: GenerationId([0xab; 16]),
            snap_number: 2,
            state: 0,
            state_flags: vec![],
        };
        let j = serde_json::to_value(MapJson::new(&info, &[0, 2, 0, 1, 0], true)).unwrap();
        assert_eq!(j["blocks"], serde_json::json!([[1, 2], [3, 1]]));
        assert_eq!(j["block_size"], 65536);
        assert_eq!(j["snap_number"], 2);
        assert_eq!(j["generation_id"], "abababab-abab-abab-abab-abababababab");
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(parse_range("2048:8"), Ok((2048, 8)));
        assert_eq!(parse_range("0x800:0x10"), Ok((2048, 16)));
        assert_eq!(parse_range("2048"), Err(RangeError::Syntax("2048".into())));
        assert_eq!(parse_range("a:1"), Err(RangeError::Number("a".into())));
        assert_eq!(parse_range("1:0"), Err(RangeError::Zero("1:0".into())));
        assert!(parse_range("-1:4").is_err());
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("M"), Err(SizeError::Syntax("M".into())));
        assert_eq!(parse_size("12X"), Err(SizeError::Syntax("12X".into())));
        assert_eq!(parse_size("1.5G"), Err(SizeError::Syntax("1.5G".into())));
        assert_eq!(parse_size("-1"), Err(SizeError::Syntax("-1".into())));
        assert_eq!(
            parse_size("17179869184G"),
            Err(SizeError::Overflow("17179869184G".into()))
        );
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn range_file_skips_comments_and_names_bad_lines() {
        assert_eq!(
            parse_range_file("# changed while untracked\n0:8\n\n  4096:1\n").unwrap(),
            vec![(0, 8), (4096, 1)]
        );
        let e = parse_range_file("0:8\nnope\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: \"nope\": expected SECTOR:COUNT");
    }
}
