//! Value types written as strings in `rampart.toml`: durations (`30s`), sizes (`10MB`),
//! CIDRs (`10.0.0.0/8`), socket addresses and header-policy toggles.
//!
//! Each parses at deserialisation time, so a bad value is reported with its key path.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration as StdDuration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as a number and a unit: `250ms`, `30s`, `15m`, `2h`, `7d`, `2y`.
///
/// Several parts may be joined (`1h30m`). A bare `0` means zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub StdDuration);

/// The longest duration any key takes: ten years. Longer ones are refused at parse time, so
/// no deadline computed from a configured duration can overflow a clock.
pub const MAX_DURATION: StdDuration = StdDuration::from_secs(10 * 365 * 86_400);

/// Parses a duration such as `30s` or `1h30m`.
///
/// # Errors
/// A message naming the expected shape when the text is not a duration, or the limit when
/// it is longer than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<StdDuration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(StdDuration::ZERO);
    }
    let bad = || {
        format!("invalid duration {text:?}: expected a number and a unit such as \"500ms\", \"30s\", \"15m\", \"2h\", \"7d\"")
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = StdDuration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => StdDuration::from_millis(n),
            "s" => StdDuration::from_secs(n),
            "m" => StdDuration::from_secs(n.saturating_mul(60)),
            "h" => StdDuration::from_secs(n.saturating_mul(3600)),
            "d" => StdDuration::from_secs(n.saturating_mul(86_400)),
            "w" => StdDuration::from_secs(n.saturating_mul(7 * 86_400)),
            "y" => StdDuration::from_secs(n.saturating_mul(365 * 86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
    }
    if total > MAX_DURATION {
        return Err(format!(
            "duration {text:?} is longer than the longest any key takes (10 years)"
        ));
    }
    Ok(total)
}

/// Writes a duration the way a config would: the largest units that divide it exactly
/// (`30s`, `15m`, `1h30m`, `100ms`, `7d`); [`parse_duration`] reads it back.
pub fn format_duration(d: StdDuration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut ms = d.as_millis();
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Duration).map_err(de::Error::custom)
    }
}

/// A size in bytes: `512`, `64KB` (1000-based), `64KiB` (1024-based), `10MB`, `1GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses a size such as `10MB` or `64KiB`.
///
/// # Errors
/// A message naming the expected shape when the text is not a size.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let bad = || {
        format!("invalid size {text:?}: expected bytes or a number and a unit such as \"64KB\", \"10MB\", \"1MiB\"")
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match s[digits..].trim() {
        "" | "B" | "b" => 1,
        "KB" | "kB" | "kb" => 1_000,
        "MB" | "mb" => 1_000_000,
        "GB" | "gb" => 1_000_000_000,
        // nginx's single letters (`client_max_body_size 500m`) mean what nginx means.
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" | "m" => 1 << 20,
        "GiB" | "G" | "g" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Writes a size the way a config would: `64KiB`, `32MiB`, `10MB`, `1KB` when a unit
/// divides it exactly (1024-based first), else bytes; [`parse_size`] reads it back.
pub fn format_size(bytes: u64) -> String {
    let units = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    units
        .iter()
        .find(|(_, len)| bytes >= *len && bytes.is_multiple_of(*len))
        .map_or_else(
            || bytes.to_string(),
            |(u, len)| format!("{}{u}", bytes / len),
        )
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"10MB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// An IP network in CIDR form (`10.0.0.0/8`, `::1/128`); a bare address means a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            // Reject host bits set (10.0.0.1/8): almost always a typo for a different network.
            if net.trunc() != net {
                return Err(de::Error::custom(format!(
                    "invalid CIDR {s:?}: host bits are set; did you mean \"{}\"?",
                    net.trunc()
                )));
            }
            return Ok(Cidr(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Cidr(ipnet::IpNet::from(ip)));
        }
        Err(de::Error::custom(format!(
            "invalid CIDR {s:?}: expected an address or a network such as \"10.0.0.0/8\""
        )))
    }
}

/// A listen address: `0.0.0.0:443`, `[::]:443`, or `:443` (all IPv4 interfaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let full = if s.starts_with(':') {
            format!("0.0.0.0{s}")
        } else {
            s.clone()
        };
        full.parse::<SocketAddr>().map(ListenAddr).map_err(|_| {
            de::Error::custom(format!(
                "invalid listen address {s:?}: expected IP:PORT such as \"0.0.0.0:443\" or \"[::]:443\""
            ))
        })
    }
}

/// A header policy value: `true` (the default value), `false` (off), or a string (this value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toggle {
    /// `true`: use rampart's default.
    Default,
    /// `false`: do not send the header.
    Off,
    /// A string: send exactly this value.
    Value(String),
}

impl<'de> Deserialize<'de> for Toggle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Toggle;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a header value string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Toggle, E> {
                Ok(if v { Toggle::Default } else { Toggle::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Toggle, E> {
                Ok(Toggle::Value(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A switch written as a TOML boolean or as the text a `${VAR}` gives (`true`/`false`,
/// `1`/`0`, `yes`/`no`, `on`/`off`), so `.env` flags such as guide 000's
/// `INTEGRITY_REQUIRE_SIGNED=true` can be used as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => Ok(Flag(true)),
                    "false" | "0" | "no" | "off" => Ok(Flag(false)),
                    _ => Err(E::custom(format!("{v:?}: expected true or false"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// JSON Schemas of the value types (`rampart config schema`; editors validate against it).
mod schema {
    use std::borrow::Cow;

    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

    macro_rules! schema {
        ($t:ty, $name:literal, $json:tt) => {
            impl JsonSchema for $t {
                fn schema_name() -> Cow<'static, str> {
                    $name.into()
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    json_schema!($json)
                }
            }
        };
    }

    schema!(super::Duration, "Duration", {
        "type": "string",
        "description": "A duration: a number and a unit (ms, s, m, h, d, w, y), several added (\"1h30m\"), or \"0\"",
        "pattern": "^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"
    });
    schema!(super::Size, "Size", {
        "description": "A size: bytes, or a number and a unit (KB, MB, GB 1000-based; KiB, MiB, GiB 1024-based)",
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": "^ *[0-9]+ *(B|b|KB|kB|kb|MB|mb|GB|gb|KiB|K|k|MiB|M|m|GiB|G|g)? *$" }
        ]
    });
    schema!(super::Cidr, "Cidr", {
        "type": "string",
        "description": "An IP network (\"10.0.0.0/8\", \"::1/128\") or a single address"
    });
    schema!(super::ListenAddr, "ListenAddr", {
        "type": "string",
        "description": "A listen address: \"0.0.0.0:443\", \"[::]:443\" or \":443\"",
        "pattern": "^(\\[[0-9A-Fa-f:.]+\\]|[0-9.]*):[0-9]+$"
    });
    schema!(super::Toggle, "Toggle", {
        "description": "true (rampart's default value), false (not sent), or the header's value",
        "type": ["boolean", "string"]
    });
    schema!(super::Flag, "Flag", {
        "description": "true or false (also \"true\"/\"false\", \"1\"/\"0\", \"yes\"/\"no\", \"on\"/\"off\" from ${VAR})",
        "anyOf": [
            { "type": "boolean" },
            { "type": "string", "pattern": "^ *(true|false|1|0|yes|no|on|off|TRUE|FALSE|True|False|YES|NO|Yes|No|ON|OFF|On|Off) *$" }
        ]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_durations_and_sizes_read_back() {
        for (ms, text) in [
            (0, "0s"),
            (100, "100ms"),
            (30_000, "30s"),
            (5_400_000, "1h30m"),
            (604_800_000, "7d"),
            (61_500, "1m1s500ms"),
        ] {
            let d = StdDuration::from_millis(ms);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d);
        }
        for (bytes, text) in [
            (65_536, "64KiB"),
            (10_000_000, "10MB"),
            (1024, "1KiB"),
            (1000, "1KB"),
            (33_554_432, "32MiB"),
            (1023, "1023"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text).unwrap(), bytes);
        }
    }

    #[test]
    fn durations_parse_with_units_and_compounds() {
        assert_eq!(parse_duration("30s").unwrap(), StdDuration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), StdDuration::from_secs(900));
        assert_eq!(
            parse_duration("1h30m").unwrap(),
            StdDuration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("250ms").unwrap(),
            StdDuration::from_millis(250)
        );
        assert_eq!(parse_duration("0").unwrap(), StdDuration::ZERO);
        assert_eq!(
            parse_duration("10y").unwrap(),
            StdDuration::from_secs(10 * 365 * 86_400)
        );
        for bad in [
            "",
            "30",
            "s",
            "3x",
            "-1s",
            "1.5s",
            "30 s",
            "11y",
            "18446744073709551615s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn sizes_distinguish_si_and_binary_units() {
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1MiB").unwrap(), 1_048_576);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        // nginx's `client_max_body_size 500m` is 500 MiB, here too.
        assert_eq!(parse_size("500m").unwrap(), 500 << 20);
        assert_eq!(parse_size("8k").unwrap(), 8192);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        for bad in ["", "MB", "10XB", "99999999999999999999GB", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
