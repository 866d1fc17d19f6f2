//! USD amounts as a router writes them (costs, spend, credits left), read
//! into picodollars: as exact decimals (`0.000015`, `1.5e-05`), or, when
//! the router computes money in binary floats (`1.3049999999999999e-05`,
//! as LiteLLM does), rounded to the nearest picodollar.

use super::Picodollars;

/// How exactly a router writes its amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Exact decimals: a digit below a picodollar is an error.
    Decimal,
    /// Binary floats printed in decimal: rounded to the nearest picodollar
    /// (half to even).
    Float,
}

/// The most fractional digits a picodollar amount has.
const PICO_DIGITS: usize = 12;

/// `text` (plain or with an exponent, optionally signed, optionally quoted)
/// in picodollars; `None` when it is not a number, or, at
/// [`Precision::Decimal`], when it has digits below a picodollar.
pub fn usd(text: &str, precision: Precision) -> Option<Picodollars> {
    let text = text.trim().trim_matches('"');
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let plain = match magnitude.split_once(['e', 'E']) {
        None => magnitude.to_string(),
        Some((mantissa, exponent)) => shift_point(mantissa, exponent.parse().ok()?)?,
    };
    let plain = match precision {
        Precision::Decimal => plain,
        Precision::Float => round_to_pico(&plain)?,
    };
    let p = Picodollars::from_usd_decimal(&plain).ok()?;
    Some(if negative { Picodollars(-p.0) } else { p })
}

/// The plain decimal `mantissa` × 10^`exponent`, by moving its point.
fn shift_point(mantissa: &str, exponent: i32) -> Option<String> {
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() || !(whole.chars().chain(fraction.chars())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    // The point sits after `point` digits.
    let point = i64::try_from(whole.len()).ok()? + i64::from(exponent);
    if point.unsigned_abs() > 64 {
        return None;
    }
    Some(if point <= 0 {
        format!("0.{}{digits}", "0".repeat(usize::try_from(-point).ok()?))
    } else {
        let point = usize::try_from(point).ok()?;
        if point >= digits.len() {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    })
}

/// A plain decimal rounded to [`PICO_DIGITS`] fractional digits, half to even.
fn round_to_pico(plain: &str) -> Option<String> {
    let (whole, fraction) = plain.split_once('.').unwrap_or((plain, ""));
    if !(whole.chars().chain(fraction.chars())).all(|c| c.is_ascii_digit()) || whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.len() <= PICO_DIGITS {
        return Some(plain.to_string());
    }
    let (kept, dropped) = fraction.split_at(PICO_DIGITS);
    let mut digits: Vec<u8> = format!("{}{kept}", if whole.is_empty() { "0" } else { whole }).into_bytes();
    let first = dropped.as_bytes()[0];
    let rest_nonzero = dropped.bytes().skip(1).any(|d| d != b'0');
    let last_odd = digits.last().is_some_and(|d| (d - b'0') % 2 == 1);
    let up = first > b'5' || (first == b'5' && (rest_nonzero || last_odd));
    if up {
        // Carry from the last digit up.
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let digits = String::from_utf8(digits).ok()?;
    let (w, f) = digits.split_at(digits.len() - PICO_DIGITS);
    Some(format!("{w}.{f}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly() {
        let d = |t| usd(t, Precision::Decimal);
        assert_eq!(d("0.000015"), Some(Picodollars(15_000_000)));
        assert_eq!(d("1.5e-05"), Some(Picodollars(15_000_000)));
        assert_eq!(d("1.425E-5"), Some(Picodollars(14_250_000)));
        assert_eq!(d("2e3"), Some(Picodollars(2_000 * 1_000_000_000_000)));
        assert_eq!(d("-0.25"), Some(Picodollars(-250_000_000_000)));
        assert_eq!(d("\"1.5\""), Some(Picodollars(1_500_000_000_000)));
        assert_eq!(d("1e-13"), None, "below a picodollar");
        assert_eq!(
            d("1.3049999999999999e-05"),
            None,
            "a float's digits are not an exact amount"
        );
        assert_eq!(d("abc"), None);
        assert_eq!(d("1e"), None);
    }

    #[test]
    fn floats_round_to_the_nearest_picodollar() {
        let f = |t| usd(t, Precision::Float);
        // $0.15/M × 87 tokens = 13.05 µ$, as Python prints the float.
        assert_eq!(f("1.3049999999999999e-05"), Some(Picodollars(13_050_000)));
        assert_eq!(f("0.0000130500000000001"), Some(Picodollars(13_050_000)));
        assert_eq!(f("0.0000000000005"), Some(Picodollars(0)), "half to even: down to 0");
        assert_eq!(f("0.0000000000015"), Some(Picodollars(2)), "half to even: up to 2");
        assert_eq!(
            f("0.9999999999999"),
            Some(Picodollars(1_000_000_000_000)),
            "a carry into the units"
        );
        assert_eq!(f("-2.5e-13"), Some(Picodollars(0)));
        assert_eq!(f("-7.5e-12"), Some(Picodollars(-8)));
        assert_eq!(f("0.000015"), Some(Picodollars(15_000_000)));
        assert_eq!(f("nan"), None);
    }
}
