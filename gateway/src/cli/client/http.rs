//! HTTP access to the gateway: bearer token, transport check, paging and error decoding.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::{Host, Url};

use super::ClientOptions;

/// Time allowed to open a connection to the gateway. A gateway on the same network accepts in
/// milliseconds, so a longer wait means it is down or filtered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a whole request. Writes return once the desired state is stored, without
/// waiting for brokers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Maximum pages a listing command follows, so a gateway that keeps returning cursors cannot
/// keep the client looping.
const MAX_PAGES: usize = 1000;

/// Failure of a client command that the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made.
    #[error("cannot reach the gateway at {url}: {detail}; is `vdi-gateway serve` running?")]
    Unreachable {
        /// URL of the request.
        url: String,
        /// Innermost cause, for example `Connection refused (os error 111)`.
        detail: String,
    },
    /// The gateway did not respond in time.
    #[error("request to {url} timed out after {seconds} s; check the gateway's load and logs")]
    TimedOut {
        /// URL of the request.
        url: String,
        /// Time limit in seconds.
        seconds: u64,
    },
    /// The gateway returned its JSON error body.
    #[error("{code}: {message}{hint}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code of the API, for example `not_found`.
        code: String,
        /// Message of the API.
        message: String,
        /// Suggested next step when the client can tell, or an empty string.
        hint: String,
    },
    /// The response was an error without the API's error body (a proxy page, for example).
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// HTTP status and reason.
        status: String,
        /// URL of the request.
        url: String,
        /// Start of the body.
        body: String,
    },
}

/// HTTP access to the gateway with the bearer token and error mapping of every command.
pub(super) struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    pub(super) json: bool,
}

/// A successful response.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl ApiClient {
    pub(super) fn new(options: &ClientOptions) -> anyhow::Result<Self> {
        if options.server.cannot_be_a_base() {
            bail!(
                "--server {} is not an http(s) base URL; use for example http://127.0.0.1:8080",
                options.server
            );
        }
        let token = match (&options.token, &options.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_token_file(path)?),
            (None, None) => None,
        };
        check_transport(&options.server, token.is_some(), options.allow_plain_http)?;

        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("vdi-gateway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("failed to build the HTTP client")?;
        Ok(Self {
            http,
            base: options.server.clone(),
            token,
            json: options.json,
        })
    }

    /// Returns the URL of `/v1/<segments…>`, percent-encoding each segment.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(body) = body {
            request = request.json(body);
        }

        let response = request
            .send()
            .await
            .map_err(|err| transport_error(&url, &err))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| transport_error(&url, &err))?;
        if !status.is_success() {
            return Err(api_error(status, &url, &text, self.token.is_some()).into());
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{url} returned a body that is not JSON"))?
        };
        Ok(Reply { status, body })
    }

    /// Sends a GET with an `Accept` header and returns the body as text (CSV exports).
    pub(super) async fn get_text(&self, url: Url, accept: &str) -> anyhow::Result<String> {
        let mut request = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport_error(&url, &err))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| transport_error(&url, &err))?;
        if !status.is_success() {
            return Err(api_error(status, &url, &text, self.token.is_some()).into());
        }
        Ok(text)
    }

    pub(super) async fn get(&self, url: Url) -> anyhow::Result<Value> {
        Ok(self.send(Method::GET, url, None).await?.body)
    }

    /// Fetches every page of a cursor-paged listing and returns the items under `key`.
    pub(super) async fn get_all(&self, mut url: Url, key: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self.get(url.clone()).await?;
            match page.get(key) {
                Some(Value::Array(found)) => items.extend(found.iter().cloned()),
                Some(Value::Null) | None => {}
                Some(_) => bail!("{url} returned a {key:?} field that is not a list"),
            }
            let Some(cursor) = page.get("next_cursor").and_then(Value::as_str) else {
                return Ok(items);
            };
            if !seen.insert(cursor.to_owned()) {
                bail!("{url} returned cursor {cursor:?} twice; stopping to avoid a loop");
            }
            set_query_param(&mut url, "cursor", cursor);
        }
        bail!("stopped after {MAX_PAGES} pages of {key}; narrow the listing with filters")
    }
}

fn read_token_file(path: &std::path::Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the token file {}", path.display()))?;
    let token = text.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        bail!(
            "token file {} is empty; write the token into it",
            path.display()
        );
    }
    Ok(SecretString::from(token))
}

/// Rejects sending a token in clear text over the network.
fn check_transport(server: &Url, has_token: bool, allow_plain_http: bool) -> anyhow::Result<()> {
    match server.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match server.host() {
                Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if has_token && !loopback && !allow_plain_http {
                bail!(
                    "rejected --server {server}: plain http would expose the token on the network; use \
                     an https URL (a TLS proxy in front of the gateway) or pass --allow-plain-http"
                );
            }
            Ok(())
        }
        other => bail!("--server {server} uses the {other:?} scheme; use http or https"),
    }
}

pub(super) fn set_query_param(url: &mut Url, name: &str, value: &str) {
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != name)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (key, value) in &others {
        pairs.append_pair(key, value);
    }
    pairs.append_pair(name, value);
}

fn transport_error(url: &Url, err: &reqwest::Error) -> anyhow::Error {
    let url = url.to_string();
    if err.is_timeout() {
        return ClientError::TimedOut {
            url,
            seconds: REQUEST_TIMEOUT.as_secs(),
        }
        .into();
    }
    if err.is_connect() {
        return ClientError::Unreachable {
            url,
            detail: innermost_cause(err),
        }
        .into();
    }
    anyhow::anyhow!("request to {url} failed: {}", innermost_cause(err))
}

fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Error body of the API: `{"error": {"code", "message", "details"}}`.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

fn api_error(status: StatusCode, url: &Url, text: &str, has_token: bool) -> ClientError {
    match serde_json::from_str::<ErrorEnvelope>(text) {
        Ok(envelope) => {
            let hint = if status == StatusCode::UNAUTHORIZED && !has_token {
                " (no token was sent; set VDIGW_TOKEN or pass --token-file)".to_owned()
            } else {
                String::new()
            };
            ClientError::Api {
                status: status.as_u16(),
                code: envelope.error.code,
                message: envelope.error.message,
                hint,
            }
        }
        Err(_) => {
            let mut body: String = text.trim().chars().take(200).collect();
            if body.is_empty() {
                body = "(empty body)".to_owned();
            }
            ClientError::Http {
                status: status.to_string(),
                url: url.to_string(),
                body,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_token_rejected() {
        let remote = Url::parse("http://gateway.hospital.example:8080").unwrap();
        let err = check_transport(&remote, true, false).unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");

        assert!(check_transport(&remote, true, true).is_ok());
        assert!(check_transport(&remote, false, false).is_ok());
        let loopback = Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(check_transport(&loopback, true, false).is_ok());
        let tls = Url::parse("https://gateway.hospital.example").unwrap();
        assert!(check_transport(&tls, true, false).is_ok());
    }

    #[test]
    fn server_path_prefix_kept() {
        let opts = ClientOptions {
            server: Url::parse("https://proxy.example/vdigw/").unwrap(),
            token: None,
            token_file: None,
            json: false,
            allow_plain_http: false,
        };
        let client = ApiClient::new(&opts).unwrap();

        let url = client.url(&["providers", "a b/c", "targets"]);

        assert_eq!(
            url.as_str(),
            "https://proxy.example/vdigw/v1/providers/a%20b%2Fc/targets"
        );
    }
}
