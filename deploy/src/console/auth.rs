//! Who may use the console: whoever holds the admin token printed once at
//! start (as a notebook server does). The process keeps only the token's
//! SHA-256 and compares digests in constant time; after the first visit
//! the token travels in an `HttpOnly; SameSite=Strict` cookie, out of
//! reach of scripts and of other sites' requests. Every change also needs
//! the CSRF token embedded in the console's own forms: a second lock on
//! top of SameSite, for browsers that ignore it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::COOKIE;
use sha2::{Digest, Sha256};

/// The cookie that carries the admin token.
pub const COOKIE_NAME: &str = "apifactory_console";

/// The admin token's digest and this process's CSRF token.
pub struct Auth {
    token_hash: [u8; 32],
    /// One admin token per process, so one session: a random value per
    /// process is bound to the only session there is.
    csrf: String,
}

/// 32 bytes from the OS CSPRNG, URL-safe (43 characters).
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Equal digests, in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// A fresh admin token (returned, to print once) and its checker.
    pub fn generate() -> anyhow::Result<(Auth, String)> {
        let token = random_token()?;
        let auth = Auth::new(&token, random_token()?);
        Ok((auth, token))
    }

    fn new(token: &str, csrf: String) -> Auth {
        Auth {
            token_hash: digest(token),
            csrf,
        }
    }

    /// Whether `token` is the admin token.
    pub fn accepts(&self, token: &str) -> bool {
        same(&digest(token), &self.token_hash)
    }

    /// Whether the request carries the admin token in its cookie.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        cookie(headers, COOKIE_NAME).is_some_and(|t| self.accepts(t))
    }

    /// The CSRF token every form of the console embeds.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a form's `csrf` field is this process's.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| same(&digest(g), &digest(&self.csrf)))
    }
}

/// The `Set-Cookie` value that keeps the token for the console's paths.
/// No `Secure`: the console is plain HTTP on this machine's loopback.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/_console")
}

/// A cookie's value, from every `Cookie` header of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_the_admin_token_is_accepted() {
        let (auth, token) = Auth::generate().unwrap();
        assert_eq!(token.len(), 43);
        assert!(auth.accepts(&token));
        assert!(!auth.accepts(""));
        assert!(!auth.accepts(&token[..42]));
        assert!(!auth.accepts(&format!("{token}x")));
        let (other, other_token) = Auth::generate().unwrap();
        assert_ne!(token, other_token);
        assert!(!other.accepts(&token));
    }

    #[test]
    fn the_token_is_kept_only_as_a_digest() {
        let auth = Auth::new("secret-token", "c".into());
        assert_eq!(auth.token_hash, digest("secret-token"));
        assert_ne!(&auth.token_hash[..], b"secret-token");
    }

    #[test]
    fn the_cookie_admits_among_other_cookies() {
        let auth = Auth::new("tok", "c".into());
        assert!(auth.admits(&with_cookie("a=1; apifactory_console=tok; b=2")));
        assert!(auth.admits(&with_cookie("apifactory_console=tok")));
        assert!(!auth.admits(&with_cookie("apifactory_console=tak")));
        assert!(!auth.admits(&with_cookie("other=tok")));
        assert!(!auth.admits(&HeaderMap::new()));
        let mut two = with_cookie("a=1");
        two.append(COOKIE, HeaderValue::from_static("apifactory_console=tok"));
        assert!(auth.admits(&two), "a second Cookie header counts too");
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("tok");
        assert!(c.starts_with("apifactory_console=tok;"));
        assert!(c.contains("HttpOnly"));
        assert!(c.contains("SameSite=Strict"));
        assert!(c.contains("Path=/_console"));
        assert!(!c.contains("Secure"));
    }

    #[test]
    fn csrf_must_match_exactly() {
        let auth = Auth::new("tok", "the-csrf".into());
        assert!(auth.csrf_ok(Some("the-csrf")));
        assert!(!auth.csrf_ok(None));
        assert!(!auth.csrf_ok(Some("")));
        assert!(!auth.csrf_ok(Some("the-csrf ")));
        assert!(
            !auth.csrf_ok(Some("tok")),
            "the admin token is not the csrf token"
        );
    }
}
