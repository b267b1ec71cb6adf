//! What a request's head must satisfy before it is routed: the `Host`
//! rules of RFC 9112 section 3.2 and the absolute-form target
//! ([`head_check`], for every path: a refusal is 400 and ends the
//! connection), then the guards against hostile web pages
//! ([`browser_check`], for every path but `/healthz`).

use super::{bad_request, HttpRequest, Refusal};
use crate::protocol::{ErrorCode, RpcError};

/// What RFC 9112 section 3.2 asks of `Host` and the request target, for
/// every path: an HTTP/1.1 request has exactly one `Host`, and at most one
/// at any version; its value is a syntactically valid authority. An
/// absolute-form target (`http://127.0.0.1:7070/healthz?x`) is routed by
/// its path, and its authority replaces the `Host` header (section 3.2.2),
/// so the DNS-rebinding guard ([`browser_check`]) judges the authority.
/// Returns the host to judge, the path and the query; a refusal is 400.
pub(super) fn head_check<'a>(
    version: u8,
    headers: &[httparse::Header<'a>],
    target: &'a str,
) -> Result<(Option<&'a str>, &'a str, &'a str), Refusal> {
    let mut host = None;
    let mut hosts = 0;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
    {
        hosts += 1;
        host = Some(
            std::str::from_utf8(h.value)
                .ok()
                .filter(|v| v.is_empty() || valid_authority(v))
                .ok_or_else(|| bad_request("invalid Host header"))?,
        );
    }
    if hosts > 1 {
        return Err(bad_request("more than one Host header"));
    }
    if version >= 1 && hosts == 0 {
        return Err(bad_request("an HTTP/1.1 request needs a Host header"));
    }
    let (authority, path_query) = match absolute_form(target) {
        Some(rest) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path_query) = rest.split_at(end);
            if !valid_authority(authority) {
                return Err(bad_request("invalid authority in the request target"));
            }
            (Some(authority), path_query)
        }
        None => (None, target),
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let path = if path.is_empty() { "/" } else { path };
    Ok((authority.or(host), path, query))
}

/// The part after `http://` or `https://` (scheme case-insensitive) of an
/// absolute-form target.
fn absolute_form(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
    })
}

/// An authority as `Host` and an absolute-form target carry it:
/// `host[:port]`, the host a name, an IPv4 address or a bracketed IPv6
/// one, the port digits. No user info (`user@`, which RFC 9110 section
/// 4.2.4 says to refuse), no spaces, nothing empty.
fn valid_authority(value: &str) -> bool {
    let host = match value.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, port)) => {
                return addr.parse::<std::net::Ipv6Addr>().is_ok()
                    && (port.is_empty()
                        || port
                            .strip_prefix(':')
                            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
            }
            None => return false,
        },
        None => match value.split_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return false,
            None => value,
        },
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
}

/// Refuses what only a hostile web page would send: a `Host` naming
/// something else than an IP address, `localhost` or one of `allowed`
/// (`daemon.http_allowed_hosts`: DNS rebinding), an
/// `Origin` that is not this server (a cross-site request), a `POST`
/// without `Content-Type: application/json` (a cross-site form).
pub(super) fn browser_check(req: &HttpRequest<'_>, allowed: &[String]) -> Result<(), Refusal> {
    let forbidden = |message: &str| {
        Refusal(
            403,
            RpcError::new(ErrorCode::Forbidden, format!("forbidden: {message}")),
            "",
        )
    };
    let host = match req.host {
        Some(h) if local_host(h) || allowed_host(h, allowed) => Some(h),
        Some(_) => {
            return Err(forbidden(
                "Host must be an IP address, localhost or a name of daemon.http_allowed_hosts (DNS rebinding guard)",
            ))
        }
        None => None,
    };
    if let Some(origin) = req.origin {
        let same = host.is_some_and(|h| {
            origin.strip_prefix(b"http://") == Some(h.as_bytes())
                || origin.strip_prefix(b"https://") == Some(h.as_bytes())
        });
        if !same {
            return Err(forbidden("cross-origin request"));
        }
    }
    if matches!(req.method, "POST" | "PUT") && !json_type(req.content_type) {
        return Err(Refusal(
            415,
            RpcError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "unsupported media type: a {} must have Content-Type: application/json",
                    req.method
                ),
            ),
            "",
        ));
    }
    Ok(())
}

/// Whether a `Host` header (`name[:port]`) names an IP address or
/// `localhost`: names a hostile page could point at 127.0.0.1 are refused.
fn local_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, port)) if port.is_empty() || port.starts_with(':') => {
                return addr.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
}

/// Whether a `Host` header (`name[:port]`) names one of `allowed` (host
/// names in lower case, matched whole and without regard to case; any
/// port).
fn allowed_host(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let name = name.strip_suffix('.').unwrap_or(name);
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn json_type(value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| {
        let essence = v.split(|&b| b == b';').next().unwrap_or_default();
        essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/json")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_cannot_be_rebound() {
        for ok in [
            "127.0.0.1:7070",
            "localhost",
            "LOCALHOST:1",
            "[::1]:7070",
            "10.0.0.5",
            "a.localhost:80",
        ] {
            assert!(local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "evil.example",
            "[::1",
            "127.0.0.1.nip.io:7070",
        ] {
            assert!(!local_host(bad), "{bad}");
        }
        let allowed = ["tickd.example.internal".to_string()];
        for ok in [
            "tickd.example.internal",
            "TICKD.example.internal:7070",
            "tickd.example.internal.:443",
        ] {
            assert!(allowed_host(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.tickd.example.internal",
            "tickd.example.internal.evil",
            "example.internal",
            "[::1]:7070",
        ] {
            assert!(!allowed_host(bad, &allowed), "{bad}");
        }
        assert!(!allowed_host("tickd.example.internal", &[]));
        assert!(json_type(Some(b"Application/JSON; charset=utf-8")));
        assert!(!json_type(Some(b"text/plain")));
        assert!(!json_type(None));
    }

    fn host(value: &'static str) -> httparse::Header<'static> {
        httparse::Header {
            name: "Host",
            value: value.as_bytes(),
        }
    }

    fn refused(r: Result<(Option<&str>, &str, &str), Refusal>) -> Option<String> {
        r.err().map(|Refusal(status, err, _)| {
            assert_eq!(status, 400);
            err.message
        })
    }

    #[test]
    fn one_valid_host_is_required_on_http_1_1() {
        let one = [host("127.0.0.1:7070")];
        assert_eq!(
            head_check(1, &one, "/runs?limit=1").ok(),
            Some((Some("127.0.0.1:7070"), "/runs", "limit=1"))
        );
        assert_eq!(head_check(0, &[], "/").ok(), Some((None, "/", "")));
        assert!(refused(head_check(1, &[], "/healthz")).is_some_and(|m| m.contains("needs a Host")));
        let two = [host("localhost"), host("localhost")];
        for version in [0, 1] {
            assert!(refused(head_check(version, &two, "/"))
                .is_some_and(|m| m.contains("more than one")));
        }
        for bad in [
            "a b",
            "me@localhost",
            "localhost:x",
            "[::1",
            "[::1]x",
            ":80",
            "[zz]",
        ] {
            assert!(
                refused(head_check(1, &[host(bad)], "/")).is_some(),
                "{bad:?}"
            );
        }
        // An empty Host is allowed by RFC 9112 (then refused 403 as not local).
        assert_eq!(
            head_check(1, &[host("")], "/").ok(),
            Some((Some(""), "/", ""))
        );
    }

    #[test]
    fn an_absolute_form_target_gives_its_path_and_stands_for_host() {
        let h = [host("evil.example")];
        assert_eq!(
            head_check(1, &h, "http://127.0.0.1:7070/jobs/a?x=1").ok(),
            Some((Some("127.0.0.1:7070"), "/jobs/a", "x=1"))
        );
        assert_eq!(
            head_check(1, &h, "HTTPS://[::1]").ok(),
            Some((Some("[::1]"), "/", ""))
        );
        assert_eq!(
            head_check(1, &h, "http://localhost?q").ok(),
            Some((Some("localhost"), "/", "q"))
        );
        for bad in ["http:///x", "http://me@localhost/", "http://a b/"] {
            assert!(refused(head_check(1, &h, bad)).is_some(), "{bad:?}");
        }
        // Still one Host on HTTP/1.1 (RFC 9112 3.2), as Go's net/http asks.
        assert!(refused(head_check(1, &[], "http://localhost/")).is_some());
        // Not a URI: a relative path stays one (and is 404 later).
        assert_eq!(
            head_check(1, &h, "ftp://x/").ok(),
            Some((Some("evil.example"), "ftp://x/", ""))
        );
    }
}
