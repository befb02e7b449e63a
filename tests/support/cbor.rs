//! Just enough CBOR (RFC 8949) for the fault proxy to carry CloudWatch
//! calls between the AWS SDK for Rust, which speaks Smithy RPC v2 CBOR to
//! CloudWatch, and moto 5.2.5, which answers CloudWatch in AWS JSON 1.0
//! (botocore's `cloudwatch` model lists both protocols): a CBOR body read
//! as JSON, and a JSON answer written as CBOR.
//!
//! Timestamps are CBOR tag 1 (epoch seconds) in RPC v2 CBOR and epoch
//! seconds in AWS JSON ("Smithy RPC v2 CBOR protocol", timestamp
//! serialization); doubles must be CBOR floats. JSON has no shapes, so
//! [`encode`] is told which member names hold timestamps and doubles.

use serde_json::{Map, Number, Value};

/// A CBOR item as JSON: tag 1 as its number, byte strings as base64-less
/// arrays of numbers (CloudWatch's calls here carry none). `None` when the
/// input is not well-formed or has trailing bytes.
pub fn decode(bytes: &[u8]) -> Option<Value> {
    let mut at = 0;
    let v = item(bytes, &mut at)?;
    (at == bytes.len()).then_some(v)
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = bytes.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

/// The argument of a head byte: `None` for an indefinite length.
fn argument(bytes: &[u8], at: &mut usize, info: u8) -> Option<Option<u64>> {
    let n = match info {
        0..=23 => return Some(Some(u64::from(info))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => return Some(None),
        _ => return None,
    };
    let raw = take(bytes, at, n)?;
    Some(Some(raw.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))))
}

fn is_break(bytes: &[u8], at: &mut usize) -> bool {
    if bytes.get(*at) == Some(&0xff) {
        *at += 1;
        true
    } else {
        false
    }
}

fn half(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn text(bytes: &[u8], at: &mut usize, len: Option<u64>) -> Option<String> {
    match len {
        Some(n) => String::from_utf8(take(bytes, at, usize::try_from(n).ok()?)?.to_vec()).ok(),
        None => {
            let mut s = String::new();
            while !is_break(bytes, at) {
                match item(bytes, at)? {
                    Value::String(part) => s.push_str(&part),
                    _ => return None,
                }
            }
            Some(s)
        }
    }
}

fn item(bytes: &[u8], at: &mut usize) -> Option<Value> {
    let head = *take(bytes, at, 1)?.first()?;
    let (major, info) = (head >> 5, head & 0x1f);
    if major == 7 {
        return match info {
            20 => Some(Value::Bool(false)),
            21 => Some(Value::Bool(true)),
            22 | 23 => Some(Value::Null),
            25 => {
                let b = take(bytes, at, 2)?;
                Some(float(half(u16::from_be_bytes([b[0], b[1]]))))
            }
            26 => {
                let b = take(bytes, at, 4)?;
                Some(float(f64::from(f32::from_be_bytes(b.try_into().ok()?))))
            }
            27 => {
                let b = take(bytes, at, 8)?;
                Some(float(f64::from_be_bytes(b.try_into().ok()?)))
            }
            _ => None,
        };
    }
    let arg = argument(bytes, at, info)?;
    match major {
        0 => Some(Value::from(arg?)),
        1 => Some(Value::from(-1 - i64::try_from(arg?).ok()?)),
        2 => {
            let raw = take(bytes, at, usize::try_from(arg?).ok()?)?;
            Some(Value::Array(raw.iter().map(|&b| Value::from(b)).collect()))
        }
        3 => text(bytes, at, arg).map(Value::String),
        4 => {
            let mut out = Vec::new();
            match arg {
                Some(n) => {
                    for _ in 0..n {
                        out.push(item(bytes, at)?);
                    }
                }
                None => {
                    while !is_break(bytes, at) {
                        out.push(item(bytes, at)?);
                    }
                }
            }
            Some(Value::Array(out))
        }
        5 => {
            let mut out = Map::new();
            let mut pair = |bytes: &[u8], at: &mut usize| -> Option<()> {
                let Value::String(k) = item(bytes, at)? else {
                    return None;
                };
                let v = item(bytes, at)?;
                out.insert(k, v);
                Some(())
            };
            match arg {
                Some(n) => {
                    for _ in 0..n {
                        pair(bytes, at)?;
                    }
                }
                None => {
                    while !is_break(bytes, at) {
                        pair(bytes, at)?;
                    }
                }
            }
            Some(Value::Object(out))
        }
        // A tag: its content stands for it (tag 1, a timestamp, as its
        // epoch seconds).
        6 => item(bytes, at),
        _ => None,
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

fn double(out: &mut Vec<u8>, f: f64) {
    out.push(0xfb);
    out.extend(f.to_be_bytes());
}

/// What a JSON member holds, for the shapes JSON does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    /// A timestamp, or a list of them.
    Timestamp,
    /// A double, or a list of them.
    Double,
}

/// A JSON value as CBOR; `kind(member)` says which members are
/// timestamps or doubles.
pub fn encode(v: &Value, kind: &dyn Fn(&str) -> Kind) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, v, Kind::Plain, kind);
    out
}

fn write(out: &mut Vec<u8>, v: &Value, as_: Kind, kind: &dyn Fn(&str) -> Kind) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => match as_ {
            Kind::Timestamp => {
                head(out, 6, 1);
                double(out, n.as_f64().unwrap_or(0.0));
            }
            Kind::Double => double(out, n.as_f64().unwrap_or(0.0)),
            Kind::Plain => {
                if let Some(u) = n.as_u64() {
                    head(out, 0, u);
                } else if let Some(i) = n.as_i64() {
                    head(out, 1, (-1 - i) as u64);
                } else {
                    double(out, n.as_f64().unwrap_or(0.0));
                }
            }
        },
        Value::String(s) => {
            head(out, 3, s.len() as u64);
            out.extend(s.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            for i in items {
                write(out, i, as_, kind);
            }
        }
        Value::Object(map) => {
            head(out, 5, map.len() as u64);
            for (k, v) in map {
                head(out, 3, k.len() as u64);
                out.extend(k.as_bytes());
                write(out, v, kind(k), kind);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_goes_through_cbor_and_back() {
        let v = json!({
            "Id": "m0",
            "Timestamps": [1795000000, 1795003600.5],
            "Values": [1, 2.5],
            "Count": 70000,
            "Neg": -300,
            "Ok": true,
            "Nothing": null,
            "Nested": [{"a": "é"}]
        });
        let kind = |k: &str| match k {
            "Timestamps" => Kind::Timestamp,
            "Values" => Kind::Double,
            _ => Kind::Plain,
        };
        let bytes = encode(&v, &kind);
        let back = decode(&bytes).unwrap();
        assert_eq!(back["Timestamps"], json!([1795000000.0, 1795003600.5]));
        assert_eq!(back["Values"], json!([1.0, 2.5]));
        assert_eq!(back["Count"], json!(70000));
        assert_eq!(back["Neg"], json!(-300));
        assert_eq!(back["Nested"], v["Nested"]);
        assert_eq!(
            (back["Ok"].clone(), back["Nothing"].clone()),
            (json!(true), Value::Null)
        );
        // A timestamp is tag 1 then a double.
        let ts = encode(&json!({"T": 1}), &|_| Kind::Timestamp);
        assert_eq!(&ts[..5], &[0xa1, 0x61, b'T', 0xc1, 0xfb]);
    }

    #[test]
    fn indefinite_lengths_and_small_floats_decode() {
        // {_ "a": [_ 1, 1.5 (f16)], "b": (_ "x" "y")}
        let bytes = [
            0xbf, 0x61, b'a', 0x9f, 0x01, 0xf9, 0x3e, 0x00, 0xff, 0x61, b'b', 0x7f, 0x61, b'x',
            0x61, b'y', 0xff, 0xff,
        ];
        assert_eq!(decode(&bytes), Some(json!({"a": [1, 1.5], "b": "xy"})));
        assert_eq!(decode(&[0x01, 0x02]), None, "trailing bytes");
        assert_eq!(decode(&[0x62, b'a']), None, "short text");
    }
}
