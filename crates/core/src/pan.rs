//! Card-number (PAN) scrubbing for PCI DSS: any Luhn-valid run of 13–19 digits, written plainly
//! or grouped with single spaces or dashes, is replaced by its first 6 and last 4 digits with the
//! middle masked, wherever it appears in a payload. This runs before anything is stored or logged.

use serde_json::Value;

const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn mask_digits(digits: &[u8]) -> String {
    let n = digits.len();
    let mut out = String::with_capacity(n);
    for (i, d) in digits.iter().enumerate() {
        out.push(if i < 6 || i >= n - 4 { char::from(*d) } else { '*' });
    }
    out
}

/// Masks every PAN in `text`; returns the new text and how many were masked.
pub fn mask_text(text: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    // Fast path: most strings have no long digit run at all.
    let mut run = 0usize;
    let mut longest = 0usize;
    for b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            longest = longest.max(run);
        } else if *b != b' ' && *b != b'-' {
            run = 0;
        }
    }
    if longest < MIN_DIGITS {
        return (text.to_string(), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut masked = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            // Copy one UTF-8 character.
            let ch_len = text[i..].chars().next().map(char::len_utf8).unwrap_or(1);
            out.push_str(&text[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        // A run of digits, allowing single separators between digit groups.
        let start = i;
        let mut end = i;
        let mut digits = Vec::with_capacity(24);
        let mut j = i;
        while j < bytes.len() {
            if bytes[j].is_ascii_digit() {
                digits.push(bytes[j]);
                j += 1;
                end = j;
            } else if (bytes[j] == b' ' || bytes[j] == b'-')
                && j + 1 < bytes.len()
                && bytes[j + 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        if (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) && luhn_valid(&digits) {
            out.push_str(&mask_digits(&digits));
            masked += 1;
        } else {
            out.push_str(&text[start..end]);
        }
        i = end;
    }
    (out, masked)
}

/// Masks PANs in every string and number of a JSON document, in place; returns the count.
/// A number that was a PAN becomes a masked string.
pub fn mask_json(v: &mut Value) -> usize {
    match v {
        Value::String(s) => {
            let (m, n) = mask_text(s);
            if n > 0 {
                *s = m;
            }
            n
        }
        Value::Number(num) => {
            let s = num.to_string();
            let (m, n) = mask_text(&s);
            if n > 0 {
                *v = Value::String(m);
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(mask_json).sum(),
        Value::Object(map) => map.values_mut().map(mask_json).sum(),
        Value::Bool(_) | Value::Null => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_test_cards_in_any_position() {
        let (s, n) = mask_text("card 4263970000005262 exp 12/30");
        assert_eq!(n, 1);
        assert_eq!(s, "card 426397******5262 exp 12/30");
        let (s, n) = mask_text("4263 9700 0000 5262");
        assert_eq!((s.as_str(), n), ("426397******5262", 1));
        let (s, n) = mask_text("amex 374101000000608.");
        assert_eq!((s.as_str(), n), ("amex 374101*****0608.", 1));
    }

    #[test]
    fn leaves_non_luhn_and_short_runs_alone() {
        for t in ["4263970000005263", "order 123456789012", "phone 555-123-4567", "2025-01-01"] {
            assert_eq!(mask_text(t), (t.to_string(), 0), "{t}");
        }
    }

    #[test]
    fn masks_nested_json_strings_and_numbers() {
        let mut v = json!({"a": {"card": {"number": "5425230000004415"}}, "n": 6011000000000087u64,
                           "list": ["x", "note: 4000120000001154"]});
        assert_eq!(mask_json(&mut v), 3);
        let text = v.to_string();
        for pan in ["5425230000004415", "6011000000000087", "4000120000001154"] {
            assert!(!text.contains(pan), "{text}");
        }
        assert_eq!(v["n"], json!("601100******0087"));
    }
}
