//! Where a request goes: joining paths to the base URL without re-encoding them, the
//! plain-http rule, and the path the endpoint guard checks.

use std::net::IpAddr;

use url::{Host, Url};
use vdi_contracts::{ProviderError, ProviderResult};

use crate::redact::{redact_path, redact_url};
use crate::request::BrokerRequest;

/// Resolved destination of one logical request.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// URL sent on the wire, query included.
    pub(crate) url: Url,
    /// Path the guard checks: relative to the base path when under it, else the full path.
    pub(crate) guard_path: String,
    /// Path reported in responses and errors.
    pub(crate) display_path: String,
}

/// Returns whether the URL's host is a loopback address: 127.0.0.0/8, `::1` or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks that `url` uses https, or plain http to a loopback host when that is allowed.
///
/// # Errors
/// Returns an `invalid` error naming `what`, the URL and the fix.
pub fn check_scheme(url: &Url, allow_plain_http_loopback: bool, what: &str) -> ProviderResult<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http_loopback && is_loopback(url) => Ok(()),
        "http" if allow_plain_http_loopback => Err(ProviderError::invalid(format!(
            "{what} {} uses plain http to a host that is not loopback; use https://, because \
             allow_plain_http_loopback only permits 127.0.0.0/8, ::1 and localhost",
            redact_url(url)
        ))),
        "http" => Err(ProviderError::invalid(format!(
            "{what} {} uses plain http; use https://, or for a simulator on this machine use a \
             loopback host and set allow_plain_http_loopback",
            redact_url(url)
        ))),
        other => Err(ProviderError::invalid(format!(
            "{what} {} has scheme {other:?}; use https://",
            redact_url(url)
        ))),
    }
}

/// Returns the base URL with a trailing slash on its path, so joined paths extend it.
///
/// # Errors
/// Returns an `invalid` error when the base URL carries a query or fragment, or cannot be a
/// base at all.
pub(crate) fn normalise_base(mut base: Url) -> ProviderResult<Url> {
    if base.cannot_be_a_base() || base.host().is_none() {
        return Err(ProviderError::invalid(format!(
            "base_url {} has no host; use a URL such as https://broker.example.com/api/",
            redact_url(&base)
        )));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ProviderError::invalid(format!(
            "base_url {} has a query or fragment; remove it and pass parameters per request",
            redact_url(&base)
        )));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// Resolves where `request` goes.
///
/// A relative path is appended to the base URL text as it is, so percent-encoding such as
/// `X%7CY` reaches the broker unchanged. Leading slashes are dropped, so `/Machines` is also
/// relative to the base.
///
/// # Errors
/// Returns an `invalid` error when the path does not form a URL, leaves the base path through
/// `..` segments, or an absolute URL breaks the plain-http rule.
pub(crate) fn resolve(
    base: &Url,
    request: &BrokerRequest,
    allow_plain_http_loopback: bool,
) -> ProviderResult<Target> {
    let mut target = match &request.absolute_url {
        Some(url) => {
            check_scheme(url, allow_plain_http_loopback, "absolute URL")?;
            Target {
                url: url.clone(),
                guard_path: guard_path(base, url),
                display_path: url.path().to_owned(),
            }
        }
        None => {
            let relative = request.path.trim_start_matches('/');
            let text = format!("{}{relative}", base.as_str());
            let url = Url::parse(&text).map_err(|error| {
                ProviderError::invalid(format!(
                    "request path {} does not form a URL with base {} ({error}); \
                     percent-encode the path segments",
                    redact_path(&request.path),
                    redact_url(base)
                ))
            })?;
            if !url.path().starts_with(base.path()) {
                return Err(ProviderError::invalid(format!(
                    "request path {} resolves outside the base URL {}; remove '..' segments \
                     or send it with absolute()",
                    redact_path(&request.path),
                    redact_url(base)
                )));
            }
            Target {
                guard_path: url.path()[base.path().len()..].to_owned(),
                display_path: request.path.clone(),
                url,
            }
        }
    };
    target.url.set_fragment(None);
    if !request.query.is_empty() {
        target
            .url
            .query_pairs_mut()
            .extend_pairs(request.query.iter());
    }
    Ok(target)
}

/// Returns the absolute URL's path relative to the base path when it has the base's origin
/// and lies under it, else its full path.
fn guard_path(base: &Url, url: &Url) -> String {
    let same_origin = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default();
    match url.path().strip_prefix(base.path()) {
        Some(relative) if same_origin => relative.to_owned(),
        _ => url.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> Url {
        normalise_base(Url::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn join_keeps_percent_encoding() {
        let base = base("http://h/cvad/manage/");
        let target = resolve(&base, &BrokerRequest::get("Machines/X%7CY"), true).unwrap();
        assert_eq!(target.url.as_str(), "http://h/cvad/manage/Machines/X%7CY");
        assert_eq!(target.guard_path, "Machines/X%7CY");
    }

    #[test]
    fn join_adds_missing_trailing_slash() {
        let base = base("https://h/cvad/manage");
        let target = resolve(&base, &BrokerRequest::get("/Machines"), false).unwrap();
        assert_eq!(target.url.as_str(), "https://h/cvad/manage/Machines");
    }

    #[test]
    fn join_appends_query_parameters() {
        let base = base("https://h/api/");
        let request = BrokerRequest::get("Machines?limit=5").query("continuationToken", "a b&c");
        let target = resolve(&base, &request, false).unwrap();
        assert_eq!(
            target.url.as_str(),
            "https://h/api/Machines?limit=5&continuationToken=a+b%26c"
        );
        assert_eq!(target.guard_path, "Machines");
    }

    #[test]
    fn join_rejects_escape_from_base() {
        let base = base("https://h/api/v1/");
        let error = resolve(&base, &BrokerRequest::get("../../admin"), false).unwrap_err();
        assert!(
            error.message.contains("outside the base URL"),
            "{}",
            error.message
        );
    }

    #[test]
    fn join_treats_scheme_like_path_as_relative() {
        let base = base("https://h/api/");
        let target = resolve(&base, &BrokerRequest::get("//evil.example/x"), false).unwrap();
        assert_eq!(target.url.host_str(), Some("h"));
    }

    #[test]
    fn absolute_under_base_is_relative_for_guard() {
        let base = base("https://h/api/");
        let url = Url::parse("https://h/api/Machines/m1/$reboot?x=1").unwrap();
        let target = resolve(&base, &BrokerRequest::post("").absolute(url), false).unwrap();
        assert_eq!(target.guard_path, "Machines/m1/$reboot");
    }

    #[test]
    fn absolute_elsewhere_keeps_full_path() {
        let base = base("https://h/api/");
        let url = Url::parse("https://login.example/oauth/token").unwrap();
        let target = resolve(&base, &BrokerRequest::post("").absolute(url), false).unwrap();
        assert_eq!(target.guard_path, "/oauth/token");
    }

    #[test]
    fn absolute_plain_http_rejected() {
        let base = base("https://h/api/");
        let url = Url::parse("http://h/api/next").unwrap();
        let error = resolve(&base, &BrokerRequest::get("").absolute(url), true).unwrap_err();
        assert!(
            error.message.contains("http://h/api/next"),
            "{}",
            error.message
        );
    }

    #[test]
    fn loopback_table() {
        let cases = [
            ("http://127.0.0.1:8080/", true),
            ("http://127.8.9.10/", true),
            ("http://[::1]:9000/", true),
            ("http://localhost/", true),
            ("http://LOCALHOST/", true),
            ("http://10.0.0.1/", false),
            ("http://broker.example/", false),
            ("http://localhost.example/", false),
            ("http://[::2]/", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_loopback(&Url::parse(text).unwrap()), expected, "{text}");
        }
    }

    #[test]
    fn scheme_rules() {
        let plain = Url::parse("http://broker.example/api/").unwrap();
        let error = check_scheme(&plain, false, "base_url").unwrap_err();
        assert!(
            error.message.contains("http://broker.example/api/"),
            "{}",
            error.message
        );
        assert!(error.message.contains("use https://"), "{}", error.message);
        assert!(check_scheme(&plain, true, "base_url").is_err());

        let loopback = Url::parse("http://127.0.0.1:1/").unwrap();
        assert!(check_scheme(&loopback, false, "base_url").is_err());
        assert!(check_scheme(&loopback, true, "base_url").is_ok());

        let ftp = Url::parse("ftp://h/").unwrap();
        assert!(check_scheme(&ftp, true, "base_url").is_err());
    }

    #[test]
    fn base_with_query_rejected() {
        assert!(normalise_base(Url::parse("https://h/api/?x=1").unwrap()).is_err());
    }
}
