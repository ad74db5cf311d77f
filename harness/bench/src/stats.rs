//! The statistics a benchmark report needs, on plain slices: medians, quartiles, spreads, and
//! the ratio of each configuration to the raw device in the same round.

use serde::{Deserialize, Serialize};

/// The value at quantile `q` (0..1) of `values`, interpolating linearly between the two
/// nearest ranks (the method most statistics packages use by default). `None` for no values
/// or a value that is not a number.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let lower = pos.floor() as usize;
    let upper = pos.ceil() as usize;
    let frac = pos - lower as f64;
    Some(sorted[lower] + (sorted[upper] - sorted[lower]) * frac)
}

pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// Where a set of measurements lies: median, quartiles and extremes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: median(values)?,
            q1: quantile(values, 0.25)?,
            q3: quantile(values, 0.75)?,
            min: quantile(values, 0.0)?,
            max: quantile(values, 1.0)?,
            n: values.len(),
        })
    }

    /// Half the range: how far a single measurement strays from the middle, at worst.
    pub fn half_range(&self) -> f64 {
        (self.max - self.min) / 2.0
    }
}

/// The ratio of a configuration to the raw device, computed per round (each round's sample
/// divided by the same round's raw sample) so that drifts of a noisy host between rounds cancel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioStats {
    pub per_round: Vec<f64>,
    pub spread: Spread,
}

/// Pairs `(round, value)` of a configuration with `(round, value)` of raw by round; rounds
/// missing on either side, and raw values of zero, are left out.
pub fn ratios_by_round(config: &[(u32, f64)], raw: &[(u32, f64)]) -> Option<RatioStats> {
    let mut per_round = Vec::new();
    let mut rounds: Vec<&(u32, f64)> = config.iter().collect();
    rounds.sort_by_key(|(round, _)| *round);
    for (round, value) in rounds {
        if let Some((_, base)) = raw.iter().find(|(r, _)| r == round) {
            if *base > 0.0 && base.is_finite() && value.is_finite() {
                per_round.push(value / base);
            }
        }
    }
    let spread = Spread::of(&per_round)?;
    Some(RatioStats { per_round, spread })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn quartiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.25), Some(2.0));
        assert_eq!(quantile(&v, 0.75), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0], 0.25), Some(1.25));
        assert_eq!(quantile(&v, 1.5), None);
        let s = Spread::of(&[10.0, 30.0, 20.0, 40.0]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (10.0, 17.5, 25.0, 32.5, 40.0)
        );
        assert_eq!(s.half_range(), 15.0);
        assert_eq!(s.n, 4);
    }

    #[test]
    fn ratios_pair_rounds_not_positions() {
        let raw = [(1, 100.0), (2, 200.0), (3, 0.0)];
        let cfg = [(2, 150.0), (1, 90.0), (3, 5.0), (4, 1.0)];
        let r = ratios_by_round(&cfg, &raw).unwrap();
        // Round 3's raw is zero and round 4 has no raw: both left out.
        assert_eq!(r.per_round, [0.9, 0.75]);
        assert_eq!(r.spread.median, 0.825);
        assert_eq!((r.spread.min, r.spread.max), (0.75, 0.9));
        assert!(ratios_by_round(&cfg, &[]).is_none());
    }
}
