//! Medians and spread: how the boots' figures for one row and one backend
//! become the figure in the report.
//!
//! Each boot reports its own median per row. The report's value is the
//! median of those per-boot medians (robust to one slow boot), and the
//! spread is their full range relative to it: `(max - min) / median`, so
//! a reader sees at once how far two boots of the same kernel disagree.

use super::rows::Observation;

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

/// `(max - min) / median` in percent; 0 for a single value, `None` when the
/// median is not positive (no meaningful relative spread).
pub fn spread_pct(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    if m <= 0.0 {
        return None;
    }
    let (lo, hi) = min_max(values)?;
    Some((hi - lo) / m * 100.0)
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let lo = values.iter().copied().reduce(f64::min)?;
    let hi = values.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// One row on one backend, over every boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// Nanoseconds per operation: the median of the boots' medians.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub spread_pct: f64,
    /// NK crossings per operation (every boot gives the same figure when the
    /// code path is deterministic; the median otherwise).
    pub crossings: Option<f64>,
    /// Boots that measured it.
    pub boots: usize,
}

/// A row's figure on one backend, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(Stat),
    Unavailable(String),
}

impl Cell {
    pub fn value(&self) -> Option<&Stat> {
        match self {
            Cell::Value(s) => Some(s),
            Cell::Unavailable(_) => None,
        }
    }
}

/// Combines what each boot said about one row. Any measured value wins
/// over a boot that could not measure it; with none, the first reason given.
pub fn aggregate(observations: &[&Observation]) -> Cell {
    let values: Vec<f64> = observations
        .iter()
        .filter_map(|o| match o {
            Observation::Value { ns, .. } => Some(*ns),
            Observation::Unavailable(_) => None,
        })
        .collect();
    let crossings: Vec<f64> = observations
        .iter()
        .filter_map(|o| match o {
            Observation::Value { crossings, .. } => *crossings,
            Observation::Unavailable(_) => None,
        })
        .collect();
    match (median(&values), min_max(&values)) {
        (Some(median), Some((min, max))) => Cell::Value(Stat {
            median,
            min,
            max,
            spread_pct: spread_pct(&values).unwrap_or(0.0),
            crossings: self::median(&crossings),
            boots: values.len(),
        }),
        _ => Cell::Unavailable(
            observations
                .iter()
                .find_map(|o| match o {
                    Observation::Unavailable(why) => Some(why.clone()),
                    Observation::Value { .. } => None,
                })
                .unwrap_or_else(|| "not reported: no boot got as far as this row".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN, 2.0, 3.0]), Some(2.0));
        // One wild boot does not move it.
        assert_eq!(median(&[10.0, 11.0, 10.5, 1000.0, 10.2]), Some(10.5));
    }

    #[test]
    fn spreads() {
        assert_eq!(spread_pct(&[7.0]), Some(0.0));
        assert_eq!(spread_pct(&[90.0, 100.0, 110.0]), Some(20.0));
        assert_eq!(spread_pct(&[0.0, 0.0]), None);
        assert_eq!(spread_pct(&[]), None);
    }

    #[test]
    fn aggregation_prefers_values_and_keeps_the_reason_otherwise() {
        let v = |ns, c| Observation::Value { ns, crossings: c };
        let u = |s: &str| Observation::Unavailable(s.into());
        let (a, b, c, d) = (v(100.0, Some(2.0)), v(120.0, Some(2.0)), u("pipe: ENOSYS"), v(110.0, Some(2.0)));
        match aggregate(&[&a, &b, &c, &d]) {
            Cell::Value(s) => {
                assert_eq!((s.median, s.min, s.max, s.boots), (110.0, 100.0, 120.0, 3));
                assert!((s.spread_pct - 20.0 / 110.0 * 100.0).abs() < 1e-9);
                assert_eq!(s.crossings, Some(2.0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(aggregate(&[&c, &u("other")]), Cell::Unavailable("pipe: ENOSYS".into()));
        assert!(matches!(aggregate(&[]), Cell::Unavailable(why) if why.contains("not reported")));
        let no_count = v(5.0, None);
        assert_eq!(aggregate(&[&no_count]).value().unwrap().crossings, None);
    }
}
