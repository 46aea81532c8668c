//! An imitation of Azure Blob Storage for content files, served under `/storage/` on the
//! simulator's own listener.
//!
//! A content file's `azureStorageUri` is a service SAS URL,
//! `/storage/{appId}/{fileId}.bin?sv=2019-02-02&sr=b&sp=rw&se=…&sig=…`. The storage accepts
//! Put Block (`&comp=block&blockid=…`) and Put Block List (`&comp=blocklist`), which
//! [`blob`](super::blob) applies.
//!
//! Storage requests are not Graph requests. They skip the Graph token check, throttling,
//! fault knobs and latency, and their errors are Azure XML
//! (`<Error><Code>…</Code><Message>…</Message></Error>`). A request that carries an
//! `Authorization` header is rejected, because a client that sends its Graph bearer token
//! to storage leaks it.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::server::Shared;
use super::state::GraphState;
use crate::common::http::{SimRequest, SimResponse};

/// Storage service version that the SAS URLs name (`sv`).
pub(crate) const STORAGE_VERSION: &str = "2019-02-02";
/// Largest Put Block body this storage reads.
// NOTE: Azure allows 4,000 MiB from version 2019-12-12 and less before. 100 MiB for
// 2019-02-02 is a recalled limit, not checked against the Put Block reference.
const MAX_BLOCK_BYTES: usize = 100 * 1024 * 1024;
/// Bytes percent-encoded in a SAS query value: all but the URL-safe ones.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A signed grant to write one blob, as a SAS URL carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SasGrant {
    /// The `sig` value, base64.
    pub signature: String,
    /// The `se` expiry, whole seconds.
    pub expires: DateTime<Utc>,
}

impl SasGrant {
    /// Returns `se` as the SAS URL spells it, for example `2026-12-04T19:20:00Z`.
    pub fn expiry_text(&self) -> String {
        self.expires.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Returns the SAS URL of the blob `{app_id}/{file_id}.bin` under `base_url`.
    pub fn url(&self, base_url: &str, app_id: &str, file_id: &str) -> String {
        let encode =
            |text: &str| percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string();
        format!(
            "{base_url}/storage/{app_id}/{file_id}.bin?sv={STORAGE_VERSION}&sr=b&sp=rw&se={}&sig={}",
            encode(&self.expiry_text()),
            encode(&self.signature)
        )
    }
}

/// An Azure Storage error response.
#[derive(Debug, Clone)]
pub(crate) struct StorageError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Extra element after `<Message>`, such as `AuthenticationErrorDetail`.
    detail: Option<(&'static str, String)>,
}

impl StorageError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub(crate) fn authentication(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(("AuthenticationErrorDetail", detail.into())),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of the \
                 Authorization header or the SAS is formed correctly including the signature.",
            )
        }
    }

    pub(crate) fn invalid_query(name: &str, message: impl Into<String>) -> Self {
        Self {
            detail: Some(("QueryParameterName", name.to_string())),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "InvalidQueryParameterValue",
                message,
            )
        }
    }

    pub(crate) fn invalid_block(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidBlobOrBlock", message)
    }

    pub(crate) fn invalid_block_list(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidBlockList", message)
    }

    pub(crate) fn invalid_xml(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidXmlDocument", message)
    }

    /// Renders the error as Azure XML with the request id in the message, as Azure does.
    fn render(&self, request_id: &str) -> SimResponse {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\n\
             RequestId:{request_id}\nTime:{time}</Message>",
            self.code,
            escape_xml(&self.message)
        );
        if let Some((element, text)) = &self.detail {
            body.push_str(&format!("<{element}>{}</{element}>", escape_xml(text)));
        }
        body.push_str("</Error>");
        let mut response = SimResponse::empty(self.status);
        response.body = body.into();
        response.content_type = Some("application/xml");
        response.with_header(HeaderName::from_static("x-ms-error-code"), self.code)
    }
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Which storage operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    PutBlock,
    PutBlockList,
}

impl Shared {
    /// Handles one storage request and counts its outcome.
    fn handle_storage(&self, request: &SimRequest) -> Result<SimResponse, StorageError> {
        // Checked first, so a leaked token is counted whatever else is wrong.
        if request.headers.contains_key(header::AUTHORIZATION) {
            self.count_upload(|counters| counters.storage_rejected_authorization += 1);
            tracing::warn!(method = %request.method, path = %request.path, "Rejected a storage request that carried an Authorization header");
            return Err(StorageError::authentication(
                "A SAS request must not carry an Authorization header; do not send the Graph \
                 bearer token to storage.",
            ));
        }
        if request.method != Method::PUT {
            return Err(StorageError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnsupportedHttpVerb",
                format!(
                    "The resource doesn't support the HTTP verb {}; this storage accepts only \
                     PUT (Put Block and Put Block List).",
                    request.method
                ),
            ));
        }
        let operation = match request.query.get("comp").map(String::as_str) {
            Some("block") => Operation::PutBlock,
            Some("blocklist") => Operation::PutBlockList,
            other => {
                return Err(StorageError::invalid_query(
                    "comp",
                    format!(
                        "Unsupported comp value {other:?}; this storage accepts comp=block (Put \
                         Block) and comp=blocklist (Put Block List)."
                    ),
                ))
            }
        };
        let (app_id, file_id) = match request.segments.as_slice() {
            [_, app, file] => match file.strip_suffix(".bin") {
                Some(file) => (app.as_str(), file),
                None => return Err(not_found()),
            },
            _ => return Err(not_found()),
        };

        let mut state = self.lock_state();
        let file = find_file(&mut state, app_id, file_id).ok_or_else(not_found)?;
        let grant = file.sas.as_ref().filter(|_| !file.sas_revoked);
        if let Err(error) = check_sas(request, grant) {
            drop(state);
            self.count_upload(|counters| counters.storage_rejected_sas += 1);
            return Err(error);
        }
        match operation {
            Operation::PutBlock => {
                let block_id = request.query.get("blockid").ok_or_else(|| {
                    StorageError::new(
                        StatusCode::BAD_REQUEST,
                        "MissingRequiredQueryParameter",
                        "Put Block needs the blockid query parameter.",
                    )
                })?;
                let length = request.body.len() as u64;
                file.blob.put_block(block_id, request.body.clone())?;
                drop(state);
                self.count_upload(|counters| {
                    counters.block_puts += 1;
                    counters.bytes_stored += length;
                });
                Ok(SimResponse::empty(StatusCode::CREATED))
            }
            Operation::PutBlockList => {
                file.blob.put_block_list(&request.body)?;
                let length = file.blob.committed_length();
                drop(state);
                tracing::debug!(
                    app = app_id,
                    file = file_id,
                    bytes = length,
                    "Committed a block list"
                );
                self.count_upload(|counters| counters.block_list_puts += 1);
                let etag = format!("\"0x{:016X}\"", uuid::Uuid::new_v4().as_u64_pair().0);
                Ok(SimResponse::empty(StatusCode::CREATED).with_header(header::ETAG, etag))
            }
        }
    }
}

fn not_found() -> StorageError {
    StorageError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The specified resource does not exist.",
    )
}

fn find_file<'a>(
    state: &'a mut GraphState,
    app_id: &str,
    file_id: &str,
) -> Option<&'a mut super::state::ContentFile> {
    state
        .app_mut(app_id)?
        .content_versions
        .iter_mut()
        .flat_map(|version| version.files.iter_mut())
        .find(|file| file.id.eq_ignore_ascii_case(file_id))
}

/// Checks the SAS query parameters against the file's current grant.
fn check_sas(request: &SimRequest, grant: Option<&SasGrant>) -> Result<(), StorageError> {
    let parameter = |name: &str| request.query.get(name).map(String::as_str);
    let (Some(signature), Some(expiry)) = (parameter("sig"), parameter("se")) else {
        return Err(StorageError::authentication(
            "The SAS is missing its sig or se parameter; use the azureStorageUri of the \
             content file as it is.",
        ));
    };
    let Some(grant) = grant else {
        return Err(StorageError::authentication(
            "No SAS is valid for this blob now: the storage URI was not granted yet, or the \
             file was committed. Poll the content file until azureStorageUriRequestSuccess, \
             or call renewUpload.",
        ));
    };
    let fields_match = signature == grant.signature
        && expiry == grant.expiry_text()
        && parameter("sv") == Some(STORAGE_VERSION)
        && parameter("sr") == Some("b")
        && parameter("sp").is_some_and(|permissions| permissions.contains('w'));
    if !fields_match {
        return Err(StorageError::authentication(
            "Signature did not match. Use the latest azureStorageUri of the content file; \
             renewUpload replaces the signature.",
        ));
    }
    if grant.expires <= Utc::now() {
        return Err(StorageError::authentication(format!(
            "Signed expiry time [{}] must be after the current time; call renewUpload for a \
             new storage URI.",
            grant.expiry_text()
        )));
    }
    Ok(())
}

/// Axum handler of every request under `/storage/`.
pub(crate) async fn storage_entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = match to_bytes(body, MAX_BLOCK_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, path = %parts.uri.path(), "Failed to read a storage request body");
            let error = StorageError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestBodyTooLarge",
                format!(
                    "The request body could not be read or is larger than the {} MiB a block \
                     may have: {error}.",
                    MAX_BLOCK_BYTES / (1024 * 1024)
                ),
            );
            return with_storage_headers(error.render(&request_id), &request_id).into_response();
        }
    };
    let request = SimRequest::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    let response = shared
        .handle_storage(&request)
        .unwrap_or_else(|error| error.render(&request_id));
    shared.record(&request, response.status, true);
    with_storage_headers(response, &request_id).into_response()
}

fn with_storage_headers(response: SimResponse, request_id: &str) -> SimResponse {
    response
        .with_header(HeaderName::from_static("x-ms-request-id"), request_id)
        .with_header(HeaderName::from_static("x-ms-version"), STORAGE_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_url_encodes_signature() {
        let grant = SasGrant {
            signature: "a+b/c=".to_string(),
            expires: DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let url = grant.url("http://127.0.0.1:1", "app", "file");
        assert_eq!(
            url,
            "http://127.0.0.1:1/storage/app/file.bin?sv=2019-02-02&sr=b&sp=rw\
             &se=2030-01-02T03%3A04%3A05Z&sig=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn error_renders_azure_xml() {
        let response = StorageError::authentication("expired").render("req-1");
        let body = String::from_utf8(response.body.to_vec()).unwrap();
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert!(body.contains("<Code>AuthenticationFailed</Code>"), "{body}");
        assert!(body.contains("RequestId:req-1"), "{body}");
        assert!(
            body.contains("<AuthenticationErrorDetail>expired</AuthenticationErrorDetail>"),
            "{body}"
        );
        assert_eq!(response.content_type, Some("application/xml"));
    }
}
