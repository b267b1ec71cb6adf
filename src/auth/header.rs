//! Reading the token out of an HTTP `Authorization` header:
//! `Bearer TOKEN`, or `Basic base64(user:TOKEN)` for browsers (any user
//! name; the password may contain colons). Scheme names are
//! case-insensitive; any other scheme carries no token.

use super::AuthToken;
use base64::Engine;

/// Whether an `Authorization` value carries `secret` (Bearer, or the
/// password of Basic), compared in constant time. Draws on no budget and
/// counts nothing: the verdict on a request is [`super::Gate::judge_header`]'s;
/// the server also asks this to lift the pre-auth body limit of a request
/// that carries the right token (see [the module doc](super), pre-auth
/// limits).
pub fn header_matches(secret: &AuthToken, value: &[u8]) -> bool {
    match split_scheme(value) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer") => secret.matches(rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"basic") => {
            basic_password(rest).is_some_and(|pw| secret.matches(&pw))
        }
        _ => false,
    }
}

/// `"Scheme rest"` → `(scheme, rest)`, spaces trimmed.
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = value.trim_ascii();
    let sp = value.iter().position(|&b| b == b' ')?;
    Some((&value[..sp], value[sp + 1..].trim_ascii()))
}

/// The password of a Basic credential (`base64(user:password)`).
fn basic_password(encoded: &[u8]) -> Option<Vec<u8>> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_basic_passwords() {
        assert_eq!(
            split_scheme(b" Bearer  abc "),
            Some((&b"Bearer"[..], &b"abc"[..]))
        );
        assert_eq!(split_scheme(b"abc"), None);
        // base64("me:s3cret:x") — the password may contain colons.
        let enc = base64::engine::general_purpose::STANDARD.encode("me:s3cret:x");
        assert_eq!(basic_password(enc.as_bytes()), Some(b"s3cret:x".to_vec()));
        assert_eq!(basic_password(b"not base64!"), None);
    }

    #[test]
    fn a_header_carries_the_token_as_bearer_or_as_basic_password() {
        let secret = AuthToken::new("sesame");
        let basic = |userpass: &str| {
            let enc = base64::engine::general_purpose::STANDARD.encode(userpass);
            format!("Basic {enc}")
        };
        assert!(header_matches(&secret, b"Bearer sesame"));
        assert!(header_matches(&secret, b"bEaReR   sesame  "));
        assert!(header_matches(&secret, basic("anyone:sesame").as_bytes()));
        assert!(header_matches(&secret, basic(":sesame").as_bytes()));
        assert!(!header_matches(&secret, basic("sesame:").as_bytes()));
        assert!(!header_matches(&secret, b"Bearer sesame2"));
        assert!(!header_matches(&secret, b"Token sesame"));
        assert!(!header_matches(&secret, b"sesame"));
    }
}
