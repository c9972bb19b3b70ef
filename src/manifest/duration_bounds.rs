//! Bounds of durations as regular expressions, for the manifests' JSON Schema.
//!
//! A JSON Schema cannot compare "90s" with "1h": durations are text. It can
//! match the text of every duration within bounds, though, unit by unit: a
//! timeout from 1s to 24h is 1000 to 86,400,000 in ms, 1 to 86,400 in s,
//! 1/60 to 1,440 in m and 1/3600 to 24 in h. The patterns below say exactly
//! that in decimal digits (`0.017m` is at least 1s, `0.0166m` is not), so
//! that an editor refuses what `shipctl check` refuses, and nothing else
//! (`crate::duration::parse` reads decimals exactly too).

/// Milliseconds per unit, as `crate::duration::parse` reads them.
const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];

/// The longest duration `crate::duration::parse` reads, in ms.
pub const MAX_MS: u64 = crate::duration::MAX.as_millis() as u64;

/// A lower bound.
#[derive(Debug, Clone, Copy)]
pub enum Low {
    /// Zero is allowed.
    Zero,
    /// More than zero (`kill_grace`).
    AboveZero,
    /// At least this many milliseconds.
    AtLeast(u64),
}

/// A pattern matched by the text of the durations from `low` to `high_ms`
/// (inclusive), written as `crate::duration::parse` reads them; the form
/// itself (a number and a unit) is `DURATION`'s to check.
pub fn pattern(low: Low, high_ms: u64) -> String {
    let units: Vec<String> = UNITS
        .iter()
        .map(|(unit, scale)| {
            assert!(
                high_ms.is_multiple_of(*scale),
                "an upper bound of whole {unit}"
            );
            let below = at_most(high_ms / scale);
            match low {
                Low::Zero => format!("(?:{below}){unit}"),
                Low::AboveZero => format!("(?=(?:{}){unit}\\s*$)(?:{below}){unit}", positive()),
                Low::AtLeast(ms) => {
                    let above = at_least(ms, *scale);
                    format!("(?=(?:{above}){unit}\\s*$)(?:{below}){unit}")
                }
            }
        })
        .collect();
    format!(r"^\s*(?:{})\s*$", units.join("|"))
}

/// Decimal numbers (`[0-9]+(\.[0-9]*)?` or `\.[0-9]+`) of at most `high`.
fn at_most(high: u64) -> String {
    let digits = high.to_string();
    let below = match whole_below(&digits) {
        Some(whole) => format!("(?:{whole})?"),
        None => String::new(),
    };
    format!(r"0*{below}(?:\.[0-9]*)?|0*{digits}(?:\.0*)?")
}

/// Decimal numbers of at least `ms` milliseconds in a unit of `scale` ms.
fn at_least(ms: u64, scale: u64) -> String {
    let (whole, rest) = (ms / scale, ms % scale);
    if rest == 0 {
        if whole == 0 {
            return r"[0-9.]+".into();
        }
        return format!(r"0*(?:{})(?:\.[0-9]*)?", whole_from(whole));
    }
    // Above `whole`, any fraction; at `whole`, a fraction of at least rest/scale.
    let at = if whole == 0 {
        String::new()
    } else {
        whole.to_string()
    };
    format!(
        r"0*(?:{})(?:\.[0-9]*)?|0*{at}\.(?:{})",
        whole_from(whole + 1),
        fraction_from(rest, scale)
    )
}

/// Decimal numbers of more than zero.
fn positive() -> &'static str {
    r"0*[1-9][0-9]*(?:\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*"
}

/// `[a-b]`, or the digit alone.
fn digit_range(a: u8, b: u8) -> String {
    if a == b {
        format!("{a}")
    } else {
        format!("[{a}-{b}]")
    }
}

fn any_digits(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "[0-9]".into(),
        n => format!("[0-9]{{{n}}}"),
    }
}

/// Whole numbers without leading zeros of at least `low` (`low` ≥ 1).
fn whole_from(low: u64) -> String {
    let d: Vec<u8> = low.to_string().bytes().map(|b| b - b'0').collect();
    let n = d.len();
    let mut alts = vec![format!("[1-9][0-9]{{{n},}}"), low.to_string()];
    for i in 0..n {
        if d[i] < 9 {
            let prefix: String = d[..i].iter().map(|x| x.to_string()).collect();
            alts.push(format!(
                "{prefix}{}{}",
                digit_range(d[i] + 1, 9),
                any_digits(n - i - 1)
            ));
        }
    }
    alts.join("|")
}

/// Whole numbers without leading zeros below `high` (its digits; ≥ 1), zero
/// (the empty string) left out; `None` when only zero is below it.
fn whole_below(high: &str) -> Option<String> {
    let d: Vec<u8> = high.bytes().map(|b| b - b'0').collect();
    let n = d.len();
    let mut alts = Vec::new();
    if n >= 2 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    for i in 0..n {
        let least = if i == 0 { 1 } else { 0 };
        if d[i] > least {
            alts.push(format!(
                "{}{}{}",
                &high[..i],
                digit_range(least, d[i] - 1),
                any_digits(n - i - 1)
            ));
        }
    }
    (!alts.is_empty()).then(|| alts.join("|"))
}

/// Digit strings F with 0.F ≥ num/den (0 < num < den): the expansion of
/// num/den is worked out by long division, with its repeating part.
fn fraction_from(num: u64, den: u64) -> String {
    let mut digits = Vec::new();
    let mut seen: Vec<u64> = Vec::new();
    let mut r = num;
    while r != 0 && !seen.contains(&r) {
        seen.push(r);
        digits.push((r * 10 / den) as u8);
        r = r * 10 % den;
    }
    let text = |ds: &[u8]| ds.iter().map(|x| x.to_string()).collect::<String>();
    let greater =
        |prefix: String, d: u8| (d < 9).then(|| format!("{prefix}{}[0-9]*", digit_range(d + 1, 9)));
    if r == 0 {
        // A finite expansion D: F starting with D, or greater at some digit.
        let mut alts: Vec<String> = (0..digits.len())
            .filter_map(|i| greater(text(&digits[..i]), digits[i]))
            .collect();
        alts.push(format!("{}[0-9]*", text(&digits)));
        return alts.join("|");
    }
    // A repeating one: A then P forever. F is never equal to it, so F is
    // greater at some digit, in A or in some repetition of P.
    let start = seen.iter().position(|x| *x == r).unwrap_or(0);
    let (a, p) = digits.split_at(start);
    let mut alts: Vec<String> = (0..a.len())
        .filter_map(|i| greater(text(&a[..i]), a[i]))
        .collect();
    let head = format!("{}(?:{})*", text(a), text(p));
    alts.extend((0..p.len()).filter_map(|j| greater(format!("{head}{}", text(&p[..j])), p[j])));
    alts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The pattern as a JSON Schema validator reads it (ECMA-262 regular expressions).
    fn matcher(pattern: &str) -> impl Fn(&str) -> bool {
        let schema = serde_json::json!({ "type": "string", "pattern": pattern });
        let validator = jsonschema::validator_for(&schema).expect("a valid pattern");
        move |text| validator.is_valid(&serde_json::json!(text))
    }

    fn matches(pattern: &str, text: &str) -> bool {
        matcher(pattern)(text)
    }

    /// Every number and unit of a grid around the bounds, against the
    /// loader's own reading of it.
    fn agrees(low: Low, high_ms: u64, name: &str) {
        let pattern = pattern(low, high_ms);
        let matches = matcher(&pattern);
        let numbers = [
            "0",
            "00",
            "0.",
            ".0",
            "0.0",
            "0.0001",
            ".001",
            "0.001",
            "0.0009",
            "0.01",
            "0.0166",
            "0.01666",
            "0.016667",
            "0.017",
            "0.0002",
            "0.000277",
            "0.000278",
            "0.00028",
            "0.5",
            ".5",
            "1",
            "01",
            "1.",
            "1.0",
            "1.5",
            "9",
            "10",
            "59",
            "60",
            "60.0",
            "60.0001",
            "61",
            "99",
            "100",
            "999",
            "999.9",
            "1000",
            "1000.0",
            "1001",
            "1440",
            "1440.0",
            "1440.01",
            "1441",
            "3599",
            "3600",
            "3600.000",
            "3600.5",
            "3601",
            "8784",
            "8785",
            "86399",
            "86400",
            "86400.0",
            "86401",
            "527040",
            "527041",
            "3600000",
            "3600001",
            "86400000",
            "86400000.0",
            "86400000.1",
            "86400001",
            "31622400",
            "31622401",
            "31622400000",
            "31622400001",
            "99999999999999",
        ];
        for n in numbers {
            for (unit, _) in UNITS {
                for text in [format!("{n}{unit}"), format!(" {n}{unit} ")] {
                    let Ok(d) = crate::duration::parse(&text) else {
                        continue;
                    };
                    let low_ok = match low {
                        Low::Zero => true,
                        Low::AboveZero => !d.is_zero(),
                        Low::AtLeast(ms) => d >= Duration::from_millis(ms),
                    };
                    let want = low_ok && d <= Duration::from_millis(high_ms);
                    assert_eq!(
                        matches(&text),
                        want,
                        "{name}: {text:?} ({d:?}) should {}match {pattern}",
                        if want { "" } else { "not " }
                    );
                }
            }
        }
    }

    #[test]
    fn the_patterns_say_what_the_loader_checks() {
        agrees(Low::AtLeast(1000), 86_400_000, "timeout");
        agrees(Low::AtLeast(1000), MAX_MS, "expires");
        agrees(Low::Zero, 3_600_000, "interval");
        agrees(Low::AboveZero, 3_600_000, "kill_grace");
        agrees(Low::Zero, MAX_MS, "any");
    }

    #[test]
    fn repeating_fractions_are_compared_digit_by_digit() {
        // 1/60 = 0.01666…, 1/3600 = 0.000277…
        let m = format!("^(?:{})$", fraction_from(1, 60));
        for (f, want) in [
            ("0166", false),
            ("01666666", false),
            ("01667", true),
            ("017", true),
            ("02", true),
            ("1", true),
            ("0", false),
        ] {
            assert_eq!(matches(&m, f), want, "0.{f} ≥ 1/60");
        }
        let h = format!("^(?:{})$", fraction_from(1, 3600));
        for (f, want) in [
            ("000277", false),
            ("0002777777", false),
            ("000278", true),
            ("00028", true),
            ("0003", true),
        ] {
            assert_eq!(matches(&h, f), want, "0.{f} ≥ 1/3600");
        }
        let half = format!("^(?:{})$", fraction_from(1, 2));
        for (f, want) in [("4999", false), ("5", true), ("50", true), ("51", true)] {
            assert_eq!(matches(&half, f), want, "0.{f} ≥ 1/2");
        }
    }
}
