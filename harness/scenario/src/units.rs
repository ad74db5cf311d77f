//! Sizes (`256MiB`) and durations (`30s`, `1m30s`) as people write them in scenarios.
//!
//! Both reject anything ambiguous instead of guessing: decimal SI units (`MB`) and durations
//! without a unit are errors, because a wrong guess would only show up as a confusing VM run.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const SECTOR: u64 = 512;

/// Parses `256MiB`, `4KiB`, `1GiB`, `2TiB`, `4096B` or `4096` into bytes.
///
/// Sizes must be whole multiples of 512 bytes: QEMU and the guest address disks in sectors,
/// and a disk that silently loses its tail would make checksum comparisons lie.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "size {text:?} does not start with a whole number (write e.g. 256MiB)"
        ));
    }
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "K" | "KB" | "k" | "kB" | "M" | "MB" | "G" | "GB" | "T" | "TB" => {
            return Err(format!(
                "size {text:?}: use binary units KiB, MiB, GiB or TiB (decimal units are ambiguous)"
            ))
        }
        other => {
            return Err(format!(
                "size {text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    let bytes = value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("size {text:?} must be larger than zero"));
    }
    if !bytes.is_multiple_of(SECTOR) {
        return Err(format!(
            "size {text:?} ({bytes} bytes) is not a multiple of 512 bytes"
        ));
    }
    Ok(bytes)
}

/// Formats bytes with the largest binary unit that divides them exactly, so a size written
/// back to YAML reads like the one a person wrote.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        let factor = 1u64 << shift;
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Parses `500ms`, `30s`, `5m`, `1h`, or combinations such as `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("duration is empty (write e.g. 30s or 5m)".to_string());
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "duration {text:?} needs a unit: ms, s, m or h (e.g. {trimmed}s)"
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        if digits_end == 0 {
            return Err(format!(
                "duration {text:?} is not like 30s, 5m, 1h or 1m30s"
            ));
        }
        let (number, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("duration {text:?} is too large"))?;
        let part = match unit.trim() {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" | "min" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            other => {
                return Err(format!(
                    "duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
                ))
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        rest = next;
    }
    if total.is_zero() {
        return Err(format!("duration {text:?} must be longer than zero"));
    }
    Ok(total)
}

/// Formats a duration so that [`parse_duration`] reads it back exactly.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Parses a fio block or region size: everything [`parse_size`] takes, and fio's own
/// one-letter suffixes `k`, `m`, `g` (either case), which fio reads as binary units by default
/// (`4k` is 4096 bytes). Two-letter decimal-looking units (`KB`, `MB`) stay refused.
pub fn parse_fio_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let Some(last) = trimmed.chars().last() else {
        return parse_size(text);
    };
    let shift = match last {
        'k' | 'K' => 10,
        'm' | 'M' => 20,
        'g' | 'G' => 30,
        _ => return parse_size(text),
    };
    let number = &trimmed[..trimmed.len() - 1];
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return parse_size(text);
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    let bytes = value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("size {text:?} must be larger than zero"));
    }
    Ok(bytes)
}

/// A fio size in bytes, read from YAML with [`parse_fio_size`]; written back like a disk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FioSize(pub u64);

impl<'de> Deserialize<'de> for FioSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = FioSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 4k, 4KiB, 1MiB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FioSize, E> {
                parse_fio_size(&v.to_string())
                    .map(FioSize)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FioSize, E> {
                Err(E::custom(format!("size {v} must be larger than zero")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FioSize, E> {
                parse_fio_size(v).map(FioSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl Serialize for FioSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_size(self.0))
    }
}

/// A disk size in bytes, read from YAML with [`parse_size`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 256MiB, 1GiB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                parse_size(&v.to_string()).map(ByteSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                Err(E::custom(format!("size {v} must be larger than zero")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_size(self.0))
    }
}

/// A duration read from YAML with [`parse_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m or 1m30s")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                parse_duration(&v.to_string())
                    .map(HumanDuration)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "duration {v} must be longer than zero and have a unit (e.g. 30s)"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "duration {v} needs a whole number and a unit (e.g. 1500ms)"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1024B"), Ok(1024));
        assert!(parse_size("256MB").unwrap_err().contains("binary units"));
        assert!(parse_size("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MiB").unwrap_err().contains("whole number"));
        assert!(parse_size("0MiB").unwrap_err().contains("larger than zero"));
        assert!(parse_size("1000").unwrap_err().contains("multiple of 512"));
        assert!(parse_size("99999999999999999999KiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("17179869184TiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn fio_sizes() {
        assert_eq!(parse_fio_size("4k"), Ok(4096));
        assert_eq!(parse_fio_size("4K"), Ok(4096));
        assert_eq!(parse_fio_size("1m"), Ok(1 << 20));
        assert_eq!(parse_fio_size("2G"), Ok(2 << 30));
        assert_eq!(parse_fio_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_fio_size("4096"), Ok(4096));
        assert!(parse_fio_size("4KB").unwrap_err().contains("binary units"));
        assert!(parse_fio_size("0k")
            .unwrap_err()
            .contains("larger than zero"));
        assert!(parse_fio_size("k").is_err());
        assert!(parse_fio_size("99999999999999999999k")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_format_back() {
        for bytes in [512, 4096, 256 << 20, 3 << 30, 1536] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
        assert_eq!(format_size(256 << 20), "256MiB");
        assert_eq!(format_size(1536), "1536B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("30x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s")
            .unwrap_err()
            .contains("longer than zero"));
        assert!(parse_duration("s").unwrap_err().contains("not like"));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(300)), "300s");
    }
}
