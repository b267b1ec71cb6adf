//! Address resolution for http runs: an IP literal is its own address.
//!
//! ureq's default resolver, when the request has a time limit (every run
//! has one), looks the host up on a thread it spawns per request, so that
//! a hung DNS lookup cannot outlast the limit. For a URL whose host is an
//! IP address (`http://127.0.0.1:8080/`, `http://[::1]/`) there is nothing
//! to look up, and a thread spawned and joined per run costs a worker more
//! than the request itself when the server is local. [`LiteralFirst`]
//! answers those from the URL and hands every other host to ureq's own
//! resolver, unchanged.
//!
//! ureq marks its resolver trait `unversioned` (it may change in a minor
//! release): Cargo.lock pins the version, and an update of ureq must build
//! this file again and pass `kinds::`'s http tests.

use std::net::{IpAddr, SocketAddr};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Resolves IP-literal hosts from the URL; other hosts as ureq does.
#[derive(Debug, Default)]
pub struct LiteralFirst(DefaultResolver);

impl Resolver for LiteralFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

/// The socket address of an `http`/`https` URL whose host is an IP
/// address, with the scheme's port when the URL names none.
fn literal(uri: &Uri) -> Option<SocketAddr> {
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port_u16().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(url: &str) -> Option<SocketAddr> {
        literal(&url.parse().expect("uri"))
    }

    #[test]
    fn ip_literals_are_their_own_address() {
        assert_eq!(
            of("http://127.0.0.1:9/x"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(of("http://10.0.0.1/"), Some("10.0.0.1:80".parse().unwrap()));
        assert_eq!(
            of("https://10.0.0.1/"),
            Some("10.0.0.1:443".parse().unwrap())
        );
        assert_eq!(
            of("http://[::1]:8080/"),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(
            of("https://[2001:db8::1]/"),
            Some("[2001:db8::1]:443".parse().unwrap())
        );
    }

    #[test]
    fn names_and_other_schemes_go_to_the_resolver() {
        assert_eq!(of("http://localhost:9/"), None);
        assert_eq!(of("http://example.com/"), None);
        assert_eq!(of("http://127.0.0.1.nip.io/"), None);
        assert_eq!(of("ftp://127.0.0.1/"), None);
        assert_eq!(of("http://999.0.0.1/"), None);
    }
}
