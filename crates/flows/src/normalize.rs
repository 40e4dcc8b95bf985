//! Pure normalisers shared by the CEL functions (`expr`) and the validation step (`validate`):
//! exact decimals and money, dates, e-mail, phone, country and US state codes, names, addresses.
//! Nothing here touches CEL or does I/O, so every function is testable on its own and the same
//! rule gives the same answer whether a consultant calls it in a map or validation applies it.

use heartsuite_core::Money;
use heartsuite_core::money::{exponent_of, parse_currency};
use jiff::civil::Date;
use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// Parses a plain decimal ("19.99", "-5", "1e3" is refused). Errors are short sentences that end
/// up in a data failure, so they repeat the offending value.
pub fn parse_decimal(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty string is not a decimal".into());
    }
    Decimal::from_str(t).map_err(|_| format!("`{s}` is not a decimal number"))
}

/// Minor units (an integer, as GP-API sends them) to the decimal string NetSuite wants, with
/// exactly the currency's number of places.
pub fn minor_to_decimal(minor: &str, currency: &str) -> Result<String, String> {
    Money::from_minor_str(minor, currency)
        .map(|m| m.to_decimal_string())
        .map_err(|e| e.to_string())
}

/// A decimal amount back to minor units; more places than the currency allows is an error rather
/// than a silent rounding (a rounding would move money).
pub fn decimal_to_minor(amount: &str, currency: &str) -> Result<i64, String> {
    Money::from_decimal_str(amount, currency)
        .map(|m| m.minor)
        .map_err(|e| e.to_string())
}

/// Places of a currency, for rounding conversions into it.
pub fn currency_places(currency: &str) -> Result<u32, String> {
    parse_currency(currency)
        .map(exponent_of)
        .map_err(|e| e.to_string())
}

pub fn rounding(mode: &str) -> Result<RoundingStrategy, String> {
    Ok(match mode {
        // Commercial rounding is what invoices and NetSuite's own currency rounding use.
        "half_up" => RoundingStrategy::MidpointAwayFromZero,
        "half_even" => RoundingStrategy::MidpointNearestEven,
        "down" => RoundingStrategy::ToZero,
        "up" => RoundingStrategy::AwayFromZero,
        other => {
            return Err(format!(
                "unknown rounding mode `{other}`; expected half_up, half_even, down or up"
            ));
        }
    })
}

/// Rounds to exactly `places` places and keeps trailing zeros ("20" → "20.00"), which is the
/// form NetSuite and the examples compare against.
pub fn round_to(d: Decimal, places: u32, mode: RoundingStrategy) -> Decimal {
    let mut r = d.round_dp_with_strategy(places, mode);
    r.rescale(places);
    r
}

/// An amount as people type it: "$1,234.50", "USD 12", "(12.00)", "12,00 €" → "1234.50",
/// "12", "-12.00", "12.00". Returns None when what remains is not a plain decimal, so a
/// caller never guesses.
pub fn clean_amount(s: &str) -> Option<String> {
    let mut t = s.trim().to_string();
    let mut negative = false;
    if t.starts_with('(') && t.ends_with(')') && t.len() >= 2 {
        negative = true;
        t = t[1..t.len() - 1].to_string();
    }
    // Currency codes written next to the amount.
    let upper = t.to_ascii_uppercase();
    for code in [
        "USD", "CAD", "EUR", "GBP", "AUD", "JPY", "MXN", "US$", "C$", "A$",
    ] {
        if let Some(rest) = upper.strip_prefix(code) {
            t = t[t.len() - rest.len()..].to_string();
            break;
        }
        if let Some(rest) = upper.strip_suffix(code) {
            t = t[..rest.len()].to_string();
            break;
        }
    }
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '$' | '€' | '£' | '¥' | ' ' | '\u{a0}' => {}
            '-' => negative = !negative,
            _ => out.push(c),
        }
    }
    // Which separator is the decimal one: the later of the two when both appear ("1.234,56"),
    // a lone comma only when exactly two digits follow it ("12,00"); otherwise commas group.
    let decimal_comma = match (out.rfind('.'), out.rfind(',')) {
        (Some(d), Some(c)) => c > d,
        (None, Some(c)) => out.matches(',').count() == 1 && out.len() - c == 3,
        _ => false,
    };
    out = if decimal_comma {
        out.replace('.', "").replace(',', ".")
    } else {
        out.replace(',', "")
    };
    if out.is_empty()
        || !out.chars().all(|c| c.is_ascii_digit() || c == '.')
        || out.matches('.').count() > 1
    {
        return None;
    }
    let d = Decimal::from_str(&out).ok()?;
    Some(if negative {
        (-d).to_string()
    } else {
        d.to_string()
    })
}

/// Booleans as exports and spreadsheets write them.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "f" | "no" | "n" | "0" | "off" | "" => Some(false),
        _ => None,
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_from_name(s: &str) -> Option<i8> {
    let l = s.trim_end_matches('.').to_ascii_lowercase();
    if l.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| l.starts_with(m))
        .map(|i| i as i8 + 1)
}

fn mk_date(y: i32, m: i32, d: i32) -> Option<Date> {
    let y = if (0..100).contains(&y) { 2000 + y } else { y };
    Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()
}

/// Dates in the formats that reach us from POS exports, spreadsheets and APIs. Slashed dates are
/// read month-first (US), because Heartland Retail and US NetSuite accounts write them that way;
/// dotted dates are read day-first (European). A timestamp gives its own (UTC-offset) date.
pub fn parse_date(s: &str) -> Option<Date> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(d) = t.parse::<Date>() {
        return Some(d);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date());
    }
    if t.len() == 8 && t.chars().all(|c| c.is_ascii_digit()) {
        let n = |a: usize, b: usize| t[a..b].parse::<i32>().ok();
        return mk_date(n(0, 4)?, n(4, 6)?, n(6, 8)?);
    }
    // Only the date part of "2026-01-05 10:00:00" or "01/05/2026 10:00".
    let t = t
        .split_whitespace()
        .next()
        .filter(|first| first.contains(['/', '-', '.']) && first.len() >= 6)
        .unwrap_or(t);
    for sep in ['/', '-', '.'] {
        let parts: Vec<&str> = t.split(sep).collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            let n: Vec<i32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
            if n.len() != 3 {
                return None;
            }
            return if parts[0].len() == 4 {
                mk_date(n[0], n[1], n[2])
            } else if sep == '.' {
                mk_date(n[2], n[1], n[0])
            } else {
                mk_date(n[2], n[0], n[1])
            };
        }
    }
    // "Jan 5, 2026", "January 5 2026", "5 Jan 2026", "05-Jan-2026".
    let words: Vec<&str> = s
        .split(|c: char| c == ' ' || c == ',' || c == '-' || c == '/')
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() == 3 {
        if let Some(m) = month_from_name(words[0]) {
            return mk_date(words[2].parse().ok()?, m as i32, words[1].parse().ok()?);
        }
        if let Some(m) = month_from_name(words[1]) {
            return mk_date(words[2].parse().ok()?, m as i32, words[0].parse().ok()?);
        }
    }
    None
}

/// Lower-cases and trims an address and checks its shape. The whole address is lower-cased, not
/// just the domain: NetSuite matches e-mail duplicates case-insensitively and no mainstream
/// mailbox provider treats the local part as case-sensitive, so a mixed-case copy would only
/// create a second customer.
pub fn email_norm(s: &str) -> Result<String, String> {
    let e = s.trim().to_lowercase();
    let Some((local, domain)) = e.split_once('@') else {
        return Err(format!("`{s}` is not an e-mail address (no @)"));
    };
    let ok_local = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let ok_domain = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2);
    if ok_local && ok_domain {
        Ok(e)
    } else {
        Err(format!("`{s}` is not a valid e-mail address"))
    }
}

/// Country calling code and national trunk prefix for the regions our merchants sell in.
/// A full numbering-plan library (the `phonenumber` crate) brings megabytes of metadata and a
/// regex engine to the build for what is, for us, "US/Canada numbers written ten ways" plus a
/// few neighbours; this small table covers those exactly and refuses the rest rather than guess.
fn calling_code(region: &str) -> Option<(&'static str, Option<char>)> {
    Some(match region.to_ascii_uppercase().as_str() {
        "US" | "CA" | "PR" | "VI" | "GU" => ("1", None),
        "MX" => ("52", None),
        "GB" | "UK" => ("44", Some('0')),
        "IE" => ("353", Some('0')),
        "DE" => ("49", Some('0')),
        "FR" => ("33", Some('0')),
        "NL" => ("31", Some('0')),
        "ES" => ("34", None),
        "IT" => ("39", None),
        "AU" => ("61", Some('0')),
        "NZ" => ("64", Some('0')),
        _ => return None,
    })
}

/// Phone number to E.164 ("+15125550100"). Input may carry spaces, dots, dashes, parentheses,
/// a leading +, a 00 international prefix, or an extension ("x123", which is dropped: E.164 has
/// no extensions). Numbers without a country code are read in `region` (US by default).
pub fn phone_e164(s: &str, region: &str) -> Result<String, String> {
    let lower = s.trim().to_ascii_lowercase();
    let main = lower
        .split(|c| c == 'x' || c == '#')
        .next()
        .unwrap_or("")
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .trim_end_matches("ext")
        .trim();
    let main = main.strip_suffix("ext").unwrap_or(main).trim();
    if main
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-.()/".contains(c)))
    {
        return Err(format!("`{s}` is not a phone number"));
    }
    let plus = main.starts_with('+');
    let mut digits: String = main.chars().filter(|c| c.is_ascii_digit()).collect();
    let international =
        plus || digits.starts_with("00") || digits.starts_with("011") && digits.len() > 11;
    if !plus && digits.starts_with("011") && international {
        digits = digits[3..].to_string();
    } else if !plus && digits.starts_with("00") {
        digits = digits[2..].to_string();
    }
    if international {
        if digits.starts_with('1') {
            return nanp(&digits[1..], s);
        }
        if (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
            return Ok(format!("+{digits}"));
        }
        return Err(format!("`{s}` is not a valid international number"));
    }
    let (cc, trunk) =
        calling_code(region).ok_or_else(|| format!("no phone rules for region `{region}`"))?;
    if cc == "1" {
        let national = if digits.len() == 11 && digits.starts_with('1') {
            &digits[1..]
        } else {
            &digits[..]
        };
        return nanp(national, s);
    }
    let national = match trunk {
        Some(t) => digits.strip_prefix(t).unwrap_or(&digits),
        None => &digits,
    };
    if (6..=13).contains(&national.len()) {
        Ok(format!("+{cc}{national}"))
    } else {
        Err(format!("`{s}` is not a valid {region} phone number"))
    }
}

/// North American numbers: area code and exchange both start 2–9.
fn nanp(national: &str, original: &str) -> Result<String, String> {
    let b = national.as_bytes();
    if b.len() == 10 && (b'2'..=b'9').contains(&b[0]) && (b'2'..=b'9').contains(&b[3]) {
        Ok(format!("+1{national}"))
    } else {
        Err(format!(
            "`{original}` is not a valid North American phone number (need 10 digits, area code and exchange starting 2-9)"
        ))
    }
}

/// Country names and common aliases → ISO 3166-1 alpha-2. Also accepts alpha-2 and alpha-3 codes.
/// The list covers the countries merchants on Heartland ship to most; an unknown name is a data
/// error naming the field, never a guess.
const COUNTRIES: &[(&str, &str, &[&str])] = &[
    (
        "US",
        "USA",
        &[
            "united states",
            "united states of america",
            "u.s.",
            "u.s.a.",
            "us of a",
            "america",
        ],
    ),
    ("CA", "CAN", &["canada"]),
    ("MX", "MEX", &["mexico", "méxico"]),
    (
        "GB",
        "GBR",
        &[
            "united kingdom",
            "uk",
            "great britain",
            "england",
            "scotland",
            "wales",
            "northern ireland",
            "britain",
        ],
    ),
    ("IE", "IRL", &["ireland", "republic of ireland"]),
    ("DE", "DEU", &["germany", "deutschland"]),
    ("FR", "FRA", &["france"]),
    ("ES", "ESP", &["spain", "españa"]),
    ("IT", "ITA", &["italy", "italia"]),
    ("NL", "NLD", &["netherlands", "the netherlands", "holland"]),
    ("BE", "BEL", &["belgium"]),
    ("CH", "CHE", &["switzerland"]),
    ("AT", "AUT", &["austria"]),
    ("SE", "SWE", &["sweden"]),
    ("NO", "NOR", &["norway"]),
    ("DK", "DNK", &["denmark"]),
    ("FI", "FIN", &["finland"]),
    ("PL", "POL", &["poland"]),
    ("PT", "PRT", &["portugal"]),
    ("GR", "GRC", &["greece"]),
    ("AU", "AUS", &["australia"]),
    ("NZ", "NZL", &["new zealand"]),
    ("JP", "JPN", &["japan"]),
    ("CN", "CHN", &["china", "people's republic of china"]),
    ("KR", "KOR", &["south korea", "korea", "republic of korea"]),
    ("IN", "IND", &["india"]),
    ("BR", "BRA", &["brazil", "brasil"]),
    ("AR", "ARG", &["argentina"]),
    ("CL", "CHL", &["chile"]),
    ("CO", "COL", &["colombia"]),
    ("PE", "PER", &["peru"]),
    ("PR", "PRI", &["puerto rico"]),
    ("JM", "JAM", &["jamaica"]),
    ("DO", "DOM", &["dominican republic"]),
    ("CR", "CRI", &["costa rica"]),
    ("PA", "PAN", &["panama"]),
    ("BS", "BHS", &["bahamas", "the bahamas"]),
    ("IL", "ISR", &["israel"]),
    ("AE", "ARE", &["united arab emirates", "uae"]),
    ("SA", "SAU", &["saudi arabia"]),
    ("ZA", "ZAF", &["south africa"]),
    ("SG", "SGP", &["singapore"]),
    ("HK", "HKG", &["hong kong"]),
    ("TW", "TWN", &["taiwan"]),
    ("PH", "PHL", &["philippines"]),
    ("TH", "THA", &["thailand"]),
    ("VN", "VNM", &["vietnam", "viet nam"]),
    ("TR", "TUR", &["turkey", "türkiye"]),
];

pub fn country_code(s: &str) -> Option<&'static str> {
    let t = s.trim();
    let l = t.to_lowercase();
    COUNTRIES
        .iter()
        .find(|(a2, a3, names)| {
            t.eq_ignore_ascii_case(a2) || t.eq_ignore_ascii_case(a3) || names.contains(&l.as_str())
        })
        .map(|(a2, _, _)| *a2)
}

const US_STATES: &[(&str, &str)] = &[
    ("AL", "alabama"),
    ("AK", "alaska"),
    ("AZ", "arizona"),
    ("AR", "arkansas"),
    ("CA", "california"),
    ("CO", "colorado"),
    ("CT", "connecticut"),
    ("DE", "delaware"),
    ("FL", "florida"),
    ("GA", "georgia"),
    ("HI", "hawaii"),
    ("ID", "idaho"),
    ("IL", "illinois"),
    ("IN", "indiana"),
    ("IA", "iowa"),
    ("KS", "kansas"),
    ("KY", "kentucky"),
    ("LA", "louisiana"),
    ("ME", "maine"),
    ("MD", "maryland"),
    ("MA", "massachusetts"),
    ("MI", "michigan"),
    ("MN", "minnesota"),
    ("MS", "mississippi"),
    ("MO", "missouri"),
    ("MT", "montana"),
    ("NE", "nebraska"),
    ("NV", "nevada"),
    ("NH", "new hampshire"),
    ("NJ", "new jersey"),
    ("NM", "new mexico"),
    ("NY", "new york"),
    ("NC", "north carolina"),
    ("ND", "north dakota"),
    ("OH", "ohio"),
    ("OK", "oklahoma"),
    ("OR", "oregon"),
    ("PA", "pennsylvania"),
    ("RI", "rhode island"),
    ("SC", "south carolina"),
    ("SD", "south dakota"),
    ("TN", "tennessee"),
    ("TX", "texas"),
    ("UT", "utah"),
    ("VT", "vermont"),
    ("VA", "virginia"),
    ("WA", "washington"),
    ("WV", "west virginia"),
    ("WI", "wisconsin"),
    ("WY", "wyoming"),
    ("DC", "district of columbia"),
    ("PR", "puerto rico"),
    ("GU", "guam"),
    ("VI", "u.s. virgin islands"),
    ("AS", "american samoa"),
    ("MP", "northern mariana islands"),
];

pub fn us_state_code(s: &str) -> Option<&'static str> {
    let t = s.trim().trim_end_matches('.');
    let l = t.to_lowercase();
    let l = l.replace('.', "");
    US_STATES
        .iter()
        .find(|(code, name)| {
            t.eq_ignore_ascii_case(code) || *name == l || name.replace('.', "") == l
        })
        .map(|(code, _)| *code)
        .or(match l.as_str() {
            "washington dc" | "washington, dc" | "dc" => Some("DC"),
            "calif" | "cal" => Some("CA"),
            "mass" => Some("MA"),
            "penn" | "penna" => Some("PA"),
            _ => None,
        })
}

/// "Smith, Jane" or "Jane Q. Smith" → ("Jane" / "Jane Q.", "Smith"). The last word is the family
/// name, because that is how NetSuite's firstName/lastName split is usually filled by hand.
pub fn split_name(full: &str) -> (String, String) {
    let t = full.trim();
    if let Some((last, first)) = t.split_once(',') {
        return (collapse(first), collapse(last));
    }
    let words: Vec<&str> = t.split_whitespace().collect();
    match words.len() {
        0 => (String::new(), String::new()),
        1 => (words[0].to_string(), String::new()),
        n => (words[..n - 1].join(" "), words[n - 1].to_string()),
    }
}

pub fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn title_case(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One-line address → components: "123 Main St, Apt 4, Springfield, IL 62704, USA" gives
/// addr1 "123 Main St", addr2 "Apt 4", city, state, zip, country. Parts that are not there are
/// empty strings, so a map can still coalesce them.
pub fn parse_address(line: &str) -> Vec<(&'static str, String)> {
    let mut parts: Vec<String> = line
        .split(',')
        .map(collapse)
        .filter(|p| !p.is_empty())
        .collect();
    let mut country = String::new();
    if parts.len() >= 3 {
        if let Some(c) = parts.last().and_then(|p| country_code(p)) {
            country = c.to_string();
            parts.pop();
        }
    }
    let (mut state, mut zip, mut city) = (String::new(), String::new(), String::new());
    if let Some(last) = parts.last().cloned() {
        let words: Vec<&str> = last.split_whitespace().collect();
        let is_zip = |w: &str| {
            let d: String = w.chars().filter(|c| *c != '-').collect();
            (d.len() == 5 || d.len() == 9) && d.chars().all(|c| c.is_ascii_digit())
        };
        if let Some(z) = words.last().filter(|w| is_zip(w)) {
            zip = z.to_string();
            let rest = words[..words.len() - 1].join(" ");
            if let Some(code) = us_state_code(&rest) {
                state = code.to_string();
                parts.pop();
            } else if !rest.is_empty() {
                // "Springfield IL 62704" without a comma before the state.
                let rw: Vec<&str> = rest.split_whitespace().collect();
                if let Some(code) = rw.last().and_then(|w| us_state_code(w)) {
                    state = code.to_string();
                    city = rw[..rw.len() - 1].join(" ");
                    parts.pop();
                }
            }
        } else if let Some(code) = us_state_code(&last) {
            state = code.to_string();
            parts.pop();
        }
    }
    if city.is_empty() && parts.len() >= 2 {
        city = parts.pop().unwrap_or_default();
    }
    let addr1 = if parts.is_empty() {
        String::new()
    } else {
        parts.remove(0)
    };
    let addr2 = parts.join(", ");
    vec![
        ("addr1", addr1),
        ("addr2", addr2),
        ("city", city),
        ("state", state),
        ("zip", zip),
        ("country", country),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_with_symbols_and_separators_are_cleaned() {
        assert_eq!(clean_amount("$1,234.50").as_deref(), Some("1234.50"));
        assert_eq!(clean_amount(" USD 12 ").as_deref(), Some("12"));
        assert_eq!(clean_amount("(12.00)").as_deref(), Some("-12.00"));
        assert_eq!(clean_amount("12,00 €").as_deref(), Some("12.00"));
        assert_eq!(clean_amount("1.234,56").as_deref(), Some("1234.56"));
        assert_eq!(clean_amount("-$5.10").as_deref(), Some("-5.10"));
        assert_eq!(clean_amount("twelve"), None);
        assert_eq!(clean_amount("1.2.3"), None);
    }

    #[test]
    fn dates_in_common_formats() {
        let d = |s| parse_date(s).map(|d| d.to_string());
        assert_eq!(d("2026-01-05").as_deref(), Some("2026-01-05"));
        assert_eq!(d("01/05/2026").as_deref(), Some("2026-01-05"));
        assert_eq!(d("1/5/26").as_deref(), Some("2026-01-05"));
        assert_eq!(d("05.01.2026").as_deref(), Some("2026-01-05"));
        assert_eq!(d("20260105").as_deref(), Some("2026-01-05"));
        assert_eq!(d("Jan 5, 2026").as_deref(), Some("2026-01-05"));
        assert_eq!(d("5 January 2026").as_deref(), Some("2026-01-05"));
        assert_eq!(d("2026-01-05T23:30:00Z").as_deref(), Some("2026-01-05"));
        assert_eq!(d("02/30/2026"), None);
        assert_eq!(d("soon"), None);
    }

    #[test]
    fn phones_to_e164() {
        assert_eq!(phone_e164("(512) 555-0100", "US").unwrap(), "+15125550100");
        assert_eq!(
            phone_e164("512.555.0100 x23", "US").unwrap(),
            "+15125550100"
        );
        assert_eq!(phone_e164("1-512-555-0100", "US").unwrap(), "+15125550100");
        assert_eq!(
            phone_e164("+44 20 7946 0958", "US").unwrap(),
            "+442079460958"
        );
        assert_eq!(phone_e164("020 7946 0958", "GB").unwrap(), "+442079460958");
        assert_eq!(
            phone_e164("0044 20 7946 0958", "US").unwrap(),
            "+442079460958"
        );
        assert!(phone_e164("555-0100", "US").is_err());
        assert!(phone_e164("(112) 555-0100", "US").is_err());
        assert!(phone_e164("call me", "US").is_err());
    }

    #[test]
    fn emails_lowercased_and_checked() {
        assert_eq!(
            email_norm("  Jane.Doe@Example.COM ").unwrap(),
            "jane.doe@example.com"
        );
        assert!(email_norm("jane@").is_err());
        assert!(email_norm("jane example.com").is_err());
        assert!(email_norm("jane@example").is_err());
    }

    #[test]
    fn countries_and_states() {
        assert_eq!(country_code("United States"), Some("US"));
        assert_eq!(country_code("usa"), Some("US"));
        assert_eq!(country_code("Deutschland"), Some("DE"));
        assert_eq!(country_code("gb"), Some("GB"));
        assert_eq!(country_code("Narnia"), None);
        assert_eq!(us_state_code("Texas"), Some("TX"));
        assert_eq!(us_state_code("tx"), Some("TX"));
        assert_eq!(us_state_code("New York"), Some("NY"));
        assert_eq!(us_state_code("Calif."), Some("CA"));
        assert_eq!(us_state_code("Ontario"), None);
    }

    #[test]
    fn names_and_addresses_split() {
        assert_eq!(
            split_name("Jane Q. Smith"),
            ("Jane Q.".into(), "Smith".into())
        );
        assert_eq!(split_name("Smith,  Jane"), ("Jane".into(), "Smith".into()));
        let a = parse_address("123 Main St, Apt 4, Springfield, IL 62704, USA");
        let get = |k: &str| {
            a.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("addr1"), "123 Main St");
        assert_eq!(get("addr2"), "Apt 4");
        assert_eq!(get("city"), "Springfield");
        assert_eq!(get("state"), "IL");
        assert_eq!(get("zip"), "62704");
        assert_eq!(get("country"), "US");
        let b = parse_address("9 Elm Rd, Austin TX 78701");
        let get = |k: &str| {
            b.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            (
                get("addr1").as_str(),
                get("city").as_str(),
                get("state").as_str()
            ),
            ("9 Elm Rd", "Austin", "TX")
        );
    }
}
