//! Checks of URL-valued provider settings: https, or plain http only to a loopback host.

use std::net::IpAddr;

use serde_json::{Map, Value};
use url::{Host, Url};

use super::secrets::redact_url;
use super::validate::Checker;

/// Rejects plain-http URLs to non-loopback hosts in any settings key that ends in `url`.
pub(super) fn check_setting_urls(
    checker: &mut Checker<'_>,
    key: &str,
    settings: &Map<String, Value>,
) {
    for (name, value) in settings {
        let full_key = format!("{key}.{name}");
        match value {
            Value::Object(table) => check_setting_urls(checker, &full_key, table),
            Value::String(text) if name.to_ascii_lowercase().ends_with("url") => {
                if let Err(message) = check_url(text) {
                    checker.problem(full_key, message);
                }
            }
            _ => {}
        }
    }
}

fn check_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text).map_err(|err| {
        format!(
            "{:?} is not a valid URL ({err}); use an absolute https:// URL",
            redact_url(text)
        )
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host().is_some_and(|h| is_loopback(&h)) => Ok(()),
        "http" => Err(format!(
            "{:?}: plain http is allowed only for loopback addresses; use https",
            redact_url(text)
        )),
        other => Err(format!(
            "{:?} uses the {other:?} scheme; use https",
            redact_url(text)
        )),
    }
}

/// Returns whether a URL host is a loopback address or `localhost`.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_http_is_allowed() {
        for url in [
            "http://127.0.0.1:8443/cvad/manage/",
            "http://127.5.0.1/",
            "http://[::1]:9000/",
            "http://localhost:9000/",
        ] {
            assert_eq!(check_url(url), Ok(()), "{url}");
        }
    }
}
