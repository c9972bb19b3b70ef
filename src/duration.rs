//! Durations as users write them everywhere: `500ms`, `2s`, `5m`, `1h`.

use std::time::Duration;

/// The longest duration `parse` reads: 366 days.
pub const MAX: Duration = Duration::from_secs(366 * 86_400);

/// Reads `500ms`, `2s`, `1.5m`, `1h`: exactly, in decimal (to the
/// nanosecond, below which digits are dropped), so that `format` gives back
/// the very same duration and a policy stored by reconcile reads back equal.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let not = || format!("{text:?} is not a duration; write it like 500ms, 2s or 5m");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(not());
    }
    let scale: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => {
            return Err(format!(
                "{text:?} has no unit; write it like 500ms, 2s or 5m"
            ));
        }
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}; use ms, s, m or h"
            ));
        }
    };
    let too_long = || format!("{text:?} is too long a duration");
    let whole = whole.trim_start_matches('0');
    if whole.len() > 20 {
        return Err(too_long());
    }
    let number = |digits: &str| -> u128 { digits.parse().unwrap_or(0) };
    // 18 decimals are below a nanosecond in every unit.
    let fraction = &fraction[..fraction.len().min(18)];
    let nanos =
        number(whole) * scale + number(fraction) * scale / 10u128.pow(fraction.len() as u32);
    if nanos > MAX.as_nanos() {
        return Err(too_long());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// The inverse of `parse`, exactly: `300ms`, `1.5s`, `2m`, `1250ms`,
/// `100.5ms`. Messages and stored policies both write durations so.
pub fn format(d: Duration) -> String {
    const MS: u128 = 1_000_000;
    let nanos = d.as_nanos();
    if !nanos.is_multiple_of(MS) {
        let fraction = format!("{:06}", nanos % MS);
        return format!("{}.{}ms", nanos / MS, fraction.trim_end_matches('0'));
    }
    let ms = nanos / MS;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms.is_multiple_of(100) {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse("5").is_err());
        assert!(parse("5x").is_err());
        assert!(parse("ms").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("99999999999h").is_err());
    }

    #[test]
    fn formats_back() {
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_secs(120)), "2m");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(1250)), "1250ms");
        assert_eq!(format(Duration::from_micros(100_500)), "100.5ms");
        assert_eq!(format(Duration::from_nanos(1)), "0.000001ms");
        assert_eq!(format(Duration::ZERO), "0ms");
    }

    #[test]
    fn decimals_are_read_exactly() {
        assert_eq!(parse("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1.25s"), Ok(Duration::from_millis(1250)));
        assert_eq!(parse("0.0166m"), Ok(Duration::from_millis(996)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("007s"), Ok(Duration::from_secs(7)));
        assert_eq!(
            parse("1.0000000000000000000000001h"),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(parse("8784h"), Ok(MAX));
        assert!(parse("8784.000001h").is_err());
        assert!(parse(".s").is_err());
        assert!(parse("1.2.3s").is_err());
    }

    /// What reconcile stores reads back as the same duration, whatever was written.
    #[test]
    fn every_duration_survives_being_stored() {
        for text in [
            "1.25s",
            "100.5ms",
            "1.05s",
            "1.75s",
            "0.017m",
            "0.000278h",
            "1.0001h",
            "0.0000001s",
            "12345.6789ms",
            "59.99999s",
            "1.5s",
            "2m",
            "0ms",
        ] {
            let d = parse(text).expect(text);
            assert_eq!(parse(&format(d)), Ok(d), "{text} → {}", format(d));
        }
    }
}
