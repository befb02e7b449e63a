//! Per-client API keys: list, create, rotate with an overlap window,
//! disable, enable, revoke. The same operations on every target, through
//! the `KeyStore` trait (implemented in `local/keys.rs` and `aws/keys.rs`);
//! what the planner does with `[[clients]]` keys is in `plan.rs`. What both
//! targets decide the same way lives here, once: how a key id and value are
//! made, which key `rotate` replaces, when a rotated key has expired.
//!
//! A key's identity is its tenant and client name. Rotation gives the new
//! key the old key's name (so the tenant file's client keeps its identity
//! and `apply` sees nothing to do) and renames the old one, which keeps
//! working until the grace period ends.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::target::Secret;

/// Origin of a key made by `apifactory keys create`.
pub const ORIGIN_CLI: &str = "cli";
/// Origin of a key replaced by `apifactory keys rotate`, working until it
/// expires.
pub const ORIGIN_ROTATED: &str = "rotated";

/// Origin of a key brought in by `apifactory keys import`: a value the
/// client already uses (the stack a tenant moved from made it).
pub const ORIGIN_IMPORTED: &str = "imported";

/// API Gateway's bounds on a key value ("Amazon API Gateway quotas": an
/// API key value is 20 to 128 characters).
pub const KEY_VALUE_MIN: usize = 20;
pub const KEY_VALUE_MAX: usize = 128;

/// The key value `keys import` read from standard input: one trailing
/// newline (as `echo` or a file ends it) is not part of it. 20 to 128
/// printable ASCII characters without spaces: API Gateway's length, and
/// what an `x-api-key` header can carry. The error never shows the value.
pub fn imported_value(input: &str) -> anyhow::Result<String> {
    let value = input
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(input);
    let length = value.chars().count();
    if !(KEY_VALUE_MIN..=KEY_VALUE_MAX).contains(&length) {
        anyhow::bail!(
            "a key value is {KEY_VALUE_MIN} to {KEY_VALUE_MAX} characters (API Gateway's bounds), found {length} on standard input; nothing was changed"
        );
    }
    if let Some(at) = value.chars().position(|c| !c.is_ascii_graphic()) {
        anyhow::bail!(
            "a key value is printable ASCII without spaces (it travels in the x-api-key header), found another character at position {}; nothing was changed",
            at + 1
        );
    }
    Ok(value.to_owned())
}

/// What `keys import` did: never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub tenant: String,
    pub client: String,
    pub id: String,
    /// Whether a key with this value existed already (and was taken over)
    /// rather than made.
    pub adopted: bool,
}

/// A key as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub tenant: String,
    pub client: String,
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// `file` (declared in `[[clients]]`), `cli` (`keys create`) or
    /// `rotated` (replaced by `keys rotate`, working until `expires`).
    pub origin: String,
    pub created: String,
    pub expires: Option<String>,
    pub last_used: Option<String>,
}

/// A rotation: the new key (its value shown once) and when the old stops.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    #[serde(flatten)]
    pub new: Secret,
    pub old_id: String,
    pub old_expires: String,
}

/// Key operations a target supports.
pub trait KeyStore: Send + Sync {
    fn list(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = anyhow::Result<Vec<KeyInfo>>> + Send;
    /// An ad-hoc key for a client, attached to the tenant's usage plan.
    fn create(
        &self,
        tenant: &str,
        client: &str,
    ) -> impl Future<Output = anyhow::Result<Secret>> + Send;
    /// A new key for the client; the current one works until `grace` ends.
    fn rotate(
        &self,
        tenant: &str,
        client: &str,
        grace: Duration,
    ) -> impl Future<Output = anyhow::Result<Rotation>> + Send;
    fn set_enabled(
        &self,
        tenant: &str,
        id: &str,
        enabled: bool,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Makes an existing key value the client's key, attached to the
    /// tenant's usage plan: a key that already has the value is taken
    /// over (a target refuses to hold two keys with one value), otherwise
    /// one is made with it. Running it again changes nothing.
    fn import(
        &self,
        tenant: &str,
        client: &str,
        value: &str,
    ) -> impl Future<Output = anyhow::Result<Imported>> + Send;
    /// Deletes the key.
    fn revoke(&self, tenant: &str, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Makes keys whose grace period has ended stop working; returns their ids.
    fn expire(&self) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `90s`, `30m`, `24h`, `7d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as 90s, 30m, 24h or 7d, found {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "expected a duration such as 90s, 30m, 24h or 7d, found {s:?}"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A new key value: 256 bits from the OS CSPRNG as 43 URL-safe characters
/// (API Gateway accepts 20 to 128).
pub fn new_key_value() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A key id in API Gateway's style: 10 lowercase letters and digits.
pub fn new_key_id() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect())
}

/// What the rotation rule needs to know of one of a client's keys; each
/// target reads it from its own record (`created` is anything that orders
/// keys oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<C> {
    /// Lets requests in now.
    pub working: bool,
    /// Already replaced by a rotation (and counting down to its expiry).
    pub rotated: bool,
    /// Declared in the tenant file's `[[clients]]`.
    pub from_file: bool,
    pub created: C,
}

/// The key `rotate` replaces among one client's keys: the client's
/// current key, that is its working file key if it has one, else its
/// newest working key; never one already rotated. `None` when the client
/// has no working key.
pub fn to_rotate<K, C: Ord>(
    keys: impl IntoIterator<Item = K>,
    facts: impl Fn(&K) -> Candidate<C>,
) -> Option<K> {
    keys.into_iter()
        .map(|k| (facts(&k), k))
        .filter(|(c, _)| c.working && !c.rotated)
        // `min_by` keeps the first of equals, so ties go to list order.
        .min_by(|(a, _), (b, _)| {
            (!a.from_file, std::cmp::Reverse(&a.created))
                .cmp(&(!b.from_file, std::cmp::Reverse(&b.created)))
        })
        .map(|(_, k)| k)
}

/// Whether `expire` must disable a key: it still works but its grace
/// period (Unix seconds) ended at or before `now`.
pub fn grace_over(enabled: bool, expires: Option<i64>, now: i64) -> bool {
    enabled && expires.is_some_and(|e| e <= now)
}

/// The keys as a table for people.
pub struct KeyTable<'a>(pub &'a [KeyInfo]);

impl fmt::Display for KeyTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:<16} {:<10} {:<8} {:<8} {:<20} {:<20} last used",
            "tenant", "client", "key id", "enabled", "origin", "created", "expires"
        )?;
        for k in self.0 {
            writeln!(
                f,
                "{:<12} {:<16} {:<10} {:<8} {:<8} {:<20} {:<20} {}",
                k.tenant,
                k.client,
                k.id,
                if k.enabled { "yes" } else { "no" },
                k.origin,
                k.created,
                k.expires.as_deref().unwrap_or("-"),
                k.last_used.as_deref().unwrap_or("-")
            )?;
        }
        write!(f, "{} key(s)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imported_value_is_20_to_128_printable_characters_without_its_newline() {
        let twenty = "k".repeat(20);
        assert_eq!(imported_value(&twenty).unwrap(), twenty);
        assert_eq!(imported_value(&format!("{twenty}\n")).unwrap(), twenty);
        assert_eq!(imported_value(&format!("{twenty}\r\n")).unwrap(), twenty);
        let max = "K".repeat(128);
        assert_eq!(imported_value(&max).unwrap(), max);
        // Only one newline goes: a second is part of the value, and refused.
        assert!(imported_value(&format!("{twenty}\n\n")).is_err());
        for bad in ["k".repeat(19), "k".repeat(129), String::new(), "\n".into()] {
            let e = imported_value(&bad).unwrap_err().to_string();
            assert!(e.contains("20 to 128 characters"), "{e}");
            assert!(e.contains("nothing was changed"), "{e}");
        }
        let secret = format!("{twenty} spaced");
        let e = imported_value(&secret).unwrap_err().to_string();
        assert!(e.contains("position 21"), "{e}");
        assert!(!e.contains(&twenty), "the error never shows the value: {e}");
    }

    fn key(working: bool, rotated: bool, from_file: bool, created: u32) -> Candidate<u32> {
        Candidate {
            working,
            rotated,
            from_file,
            created,
        }
    }

    fn pick(keys: &[Candidate<u32>]) -> Option<usize> {
        to_rotate(0..keys.len(), |i| keys[*i].clone())
    }

    #[test]
    fn rotate_replaces_the_file_key_else_the_newest_working_one() {
        // The file key wins over newer `keys create` keys.
        let file_and_cli = [key(true, false, false, 5), key(true, false, true, 1)];
        assert_eq!(pick(&file_and_cli), Some(1));
        // Without a file key, the newest working one.
        let two_cli = [key(true, false, false, 1), key(true, false, false, 3)];
        assert_eq!(pick(&two_cli), Some(1));
        // A disabled file key or a rotated one is never the current key.
        let stale = [
            key(false, false, true, 9),
            key(true, true, false, 8),
            key(true, false, false, 2),
        ];
        assert_eq!(pick(&stale), Some(2));
        assert_eq!(
            pick(&[key(true, true, true, 1), key(false, false, false, 2)]),
            None
        );
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn a_key_expires_once_its_grace_period_is_over() {
        assert!(grace_over(true, Some(100), 100));
        assert!(!grace_over(true, Some(101), 100));
        assert!(!grace_over(false, Some(50), 100), "already disabled");
        assert!(!grace_over(true, None, 100), "never rotated");
    }

    #[test]
    fn key_values_and_ids_have_api_gateways_shape() {
        let a = new_key_value().unwrap();
        let b = new_key_value().unwrap();
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
        let id = new_key_id().unwrap();
        assert_eq!(id.len(), 10);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
