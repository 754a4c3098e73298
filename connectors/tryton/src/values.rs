//! Tryton's JSON encodings of values that JSON lacks, to and from what the
//! connector uses: datetimes (`{"__class__": "datetime", "year": …}`,
//! naive UTC) as RFC 3339, decimals (`{"__class__": "Decimal", "decimal":
//! "12.50"}`) as numbers, and the URL-safe base64 its REST API takes for a
//! search domain (`d=`) and an order (`o=`).

use junction_guest::Error;
use junction_guest::serde_json::{Value, json};

/// `2026-12-04T11:53:58Z` for Tryton's datetime object; `None` for
/// anything else.
pub fn rfc3339(v: &Value) -> Option<String> {
    if v.get("__class__")?.as_str()? != "datetime" {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(Value::as_i64);
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        n("year")?,
        n("month")?,
        n("day")?,
        n("hour")?,
        n("minute")?,
        n("second")?
    ))
}

/// Tryton's datetime object for an RFC 3339 UTC time (seconds precision).
pub fn datetime(rfc3339: &str) -> Result<Value, Error> {
    let bad = || {
        Error::permanent(format!(
            "{rfc3339:?} is not an RFC 3339 UTC time such as 2026-12-04T10:00:00Z"
        ))
    };
    let t = rfc3339.trim_end_matches('Z');
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let time = time.split('.').next().unwrap_or(time);
    let h: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let ([year, month, day], [hour, minute, second]) = (d.as_slice(), h.as_slice()) else {
        return Err(bad());
    };
    Ok(
        json!({"__class__": "datetime", "year": year, "month": month, "day": day,
              "hour": hour, "minute": minute, "second": second, "microsecond": 0}),
    )
}

/// Tryton's Decimal object as a JSON number; `None` for null (an unset
/// price). Anything else is an error naming the value.
pub fn number(v: &Value) -> Result<Option<Value>, Error> {
    if v.is_null() {
        return Ok(None);
    }
    let text = v
        .get("decimal")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::permanent(format!("{v} is not a Tryton Decimal")))?;
    let n: f64 = text
        .parse()
        .map_err(|_| Error::permanent(format!("Decimal {text:?} is not a number")))?;
    Ok(Some(json!(n)))
}

/// A local number (or numeric string) as Tryton's Decimal object; the
/// error names `what`.
pub fn decimal(v: &Value, what: &str) -> Result<Value, Error> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
    .ok_or_else(|| Error::permanent(format!("{what} {v} is not a number")))?;
    Ok(json!({"__class__": "Decimal", "decimal": n.to_string()}))
}

/// The latest of several Tryton datetimes, as RFC 3339.
pub fn latest<'a>(times: impl IntoIterator<Item = &'a Value>) -> Option<String> {
    // RFC 3339 UTC with a fixed width orders as text.
    times.into_iter().filter_map(rfc3339).max()
}

/// URL-safe base64 with padding, as Python's `urlsafe_b64decode` reads it.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip_and_base64_matches_python() {
        let t = datetime("2026-12-04T11:53:58Z").unwrap();
        assert_eq!(rfc3339(&t).as_deref(), Some("2026-12-04T11:53:58Z"));
        assert!(datetime("yesterday").is_err());
        assert_eq!(rfc3339(&json!("2026")), None);
        // base64.urlsafe_b64encode(b'{"company": 1}') in Python.
        assert_eq!(base64url(br#"{"company": 1}"#), "eyJjb21wYW55IjogMX0=");
        assert_eq!(base64url(b"ab?"), "YWI_");
    }

    #[test]
    fn decimals_convert_both_ways_and_bad_ones_are_named() {
        let price = json!({"__class__": "Decimal", "decimal": "12.50"});
        assert_eq!(number(&price).unwrap(), Some(json!(12.5)));
        assert_eq!(number(&Value::Null).unwrap(), None);
        assert!(number(&json!("12.50")).is_err());
        assert_eq!(decimal(&json!(19.9), "price").unwrap()["decimal"], "19.9");
        assert_eq!(decimal(&json!("3"), "price").unwrap()["decimal"], "3");
        let e = decimal(&json!("cheap"), "price of MB-1").unwrap_err();
        assert!(matches!(e, Error::Permanent(m) if m.contains("price of MB-1")));
    }

    #[test]
    fn the_latest_of_several_times_wins() {
        let t = |h: i64| json!({"__class__": "datetime", "year": 2026, "month": 12, "day": 4, "hour": h, "minute": 0, "second": 0});
        assert_eq!(
            latest([&t(9), &Value::Null, &t(11), &t(10)]).as_deref(),
            Some("2026-12-04T11:00:00Z")
        );
        assert_eq!(latest([&Value::Null]), None);
    }
}
