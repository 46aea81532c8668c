//! Win32 app content: content versions, content files, storage URI grants and commits.
//!
//! The paths are under `/deviceAppManagement/mobileApps/{appId}/microsoft.graph.win32LobApp/`
//! (Microsoft Graph v1.0 and beta `mobileAppContent` and `mobileAppContentFile`). A new file
//! is `azureStorageUriRequestPending` and gets a SAS URL on this listener after
//! `storage_uri_polls` GETs. `commit` checks the uploaded blob at once (see
//! [`package`](super::package)), revokes the SAS, and shows `commitFilePending` for
//! `commit_polls` GETs before the outcome. `renewUpload` grants a new SAS the same way and
//! also reopens a file whose commit failed, so the client can upload again and retry.

use std::time::Duration;

use axum::http::{header, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rand::Rng;
use serde_json::{Map, Value};

use super::apps::require_string;
use super::blob::Blob;
use super::error::{GraphError, GraphResult};
use super::model::{self, ApiVersion};
use super::package::{self, EncryptionInfo, Expected};
use super::routes::{json_body, ListKind};
use super::server::Shared;
use super::state::{ContentFile, ContentVersion, GraphState, MobileApp, UploadState};
use super::storage::SasGrant;
use crate::common::http::{SimRequest, SimResponse};

/// Properties a `POST …/files` body may carry.
const FILE_PROPERTIES: [&str; 8] = [
    "name",
    "size",
    "sizeEncrypted",
    "sizeInBytes",
    "sizeEncryptedInBytes",
    "manifest",
    "isDependency",
    "isFrameworkFile",
];

/// Read-only file properties that a client may echo back and that are ignored.
const READ_ONLY_FILE_PROPERTIES: [&str; 6] = [
    "id",
    "createdDateTime",
    "isCommitted",
    "uploadState",
    "azureStorageUri",
    "azureStorageUriExpirationDateTime",
];

/// Ids of the objects a content path names, original case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContentPath<'a> {
    pub app: &'a str,
    pub version: &'a str,
    pub file: &'a str,
}

fn app_mut<'a>(state: &'a mut GraphState, id: &str) -> Result<&'a mut MobileApp, GraphError> {
    state
        .app_mut(id)
        .ok_or_else(|| GraphError::not_found("mobileApp", id))
}

fn version_mut<'a>(app: &'a mut MobileApp, id: &str) -> Result<&'a mut ContentVersion, GraphError> {
    app.content_version_mut(id)
        .ok_or_else(|| GraphError::not_found("mobileAppContent", id))
}

fn file_mut<'a>(
    version: &'a mut ContentVersion,
    id: &str,
) -> Result<&'a mut ContentFile, GraphError> {
    version
        .file_mut(id)
        .ok_or_else(|| GraphError::not_found("mobileAppContentFile", id))
}

/// Reads a size property or its newer `…InBytes` form, which must agree when both are sent.
fn read_size(object: &Map<String, Value>, name: &str, newer: &str) -> Result<u64, GraphError> {
    let parse = |key: &str| -> Result<Option<u64>, GraphError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid value {value} for '{key}'; send the byte count as a non-negative \
                     JSON integer."
                ))
            }),
        }
    };
    match (parse(name)?, parse(newer)?) {
        (Some(old), Some(new)) if old != new => Err(GraphError::bad_request(format!(
            "'{name}' is {old} but '{newer}' is {new}. Send one of them, or equal values."
        ))),
        (Some(value), _) | (None, Some(value)) => Ok(value),
        (None, None) => Err(GraphError::bad_request(format!(
            "The property '{name}' (or '{newer}') is required."
        ))),
    }
}

/// Checks a `POST …/files` body and returns the new file without id and time.
fn parse_file(object: &Map<String, Value>) -> Result<ContentFile, GraphError> {
    for key in object.keys() {
        let known = key == "@odata.type"
            || FILE_PROPERTIES.contains(&key.as_str())
            || READ_ONLY_FILE_PROPERTIES.contains(&key.as_str());
        if !known {
            return Err(GraphError::bad_request(format!(
                "The property '{key}' does not exist on type \
                 'microsoft.graph.mobileAppContentFile'."
            )));
        }
    }
    let name = require_string(object, "name")?.to_string();
    let size = read_size(object, "size", "sizeInBytes")?;
    let size_encrypted = read_size(object, "sizeEncrypted", "sizeEncryptedInBytes")?;
    let manifest = match object.get("manifest") {
        None => Value::Null,
        Some(value @ (Value::Null | Value::String(_))) => value.clone(),
        Some(other) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value {other} for 'manifest'. Send null or base64 text."
            )))
        }
    };
    let is_dependency = match object.get("isDependency") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value {other} for 'isDependency'. Send true or false."
            )))
        }
    };
    Ok(ContentFile {
        id: String::new(),
        name,
        size,
        size_encrypted,
        manifest,
        is_dependency,
        created_at: String::new(),
        upload_state: UploadState::AzureStorageUriRequestPending,
        polls_left: 0,
        commit_outcome: Ok(()),
        failure_reason: None,
        sas: None,
        sas_revoked: false,
        blob: Blob::default(),
    })
}

/// Returns a new SAS for `lifetime` from now, with `se` in whole seconds.
fn new_grant(rng: &mut impl Rng, lifetime: Duration) -> SasGrant {
    let signature_bytes: [u8; 32] = rng.random();
    let now = Utc::now();
    let expires = TimeDelta::from_std(lifetime)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let expires = DateTime::from_timestamp(expires.timestamp(), 0).unwrap_or(expires);
    SasGrant {
        signature: BASE64.encode(signature_bytes),
        expires,
    }
}

/// Moves a file one GET further through its pending states.
fn advance(file: &mut ContentFile, rng: &mut impl Rng, lifetime: Duration) {
    let pending = matches!(
        file.upload_state,
        UploadState::AzureStorageUriRequestPending
            | UploadState::AzureStorageUriRenewalPending
            | UploadState::CommitFilePending
    );
    if !pending {
        return;
    }
    if file.polls_left > 0 {
        file.polls_left -= 1;
        return;
    }
    file.upload_state = match file.upload_state {
        UploadState::AzureStorageUriRequestPending => {
            file.sas = Some(new_grant(rng, lifetime));
            file.sas_revoked = false;
            UploadState::AzureStorageUriRequestSuccess
        }
        UploadState::AzureStorageUriRenewalPending => {
            file.sas = Some(new_grant(rng, lifetime));
            file.sas_revoked = false;
            UploadState::AzureStorageUriRenewalSuccess
        }
        _ => match &file.commit_outcome {
            Ok(()) => UploadState::CommitFileSuccess,
            Err(reason) => {
                file.failure_reason = Some(reason.clone());
                UploadState::CommitFileFailed
            }
        },
    };
}

impl Shared {
    /// Handles `POST …/contentVersions` and returns 201 with the new `mobileAppContent`.
    pub(crate) fn create_content_version(&self, request: &SimRequest, app_id: &str) -> GraphResult {
        if !request.body.is_empty() && !json_body(request)?.is_object() {
            return Err(GraphError::bad_request(
                "The request body must be a JSON object, such as {}.",
            ));
        }
        let mut state = self.lock_state();
        let app = app_mut(&mut state, app_id)?;
        let version = ContentVersion {
            id: (app.content_versions.len() + 1).to_string(),
            files: Vec::new(),
        };
        let rendered = model::content_version(&version);
        let location = format!(
            "{}/v1.0/deviceAppManagement/mobileApps/{}/microsoft.graph.win32LobApp/contentVersions/{}",
            self.base_url, app.id, version.id
        );
        app.content_versions.push(version);
        drop(state);
        self.count_upload(|counters| counters.content_versions_created += 1);
        let response = self.object_response(request, rendered, StatusCode::CREATED, &[])?;
        Ok(response.with_header(header::LOCATION, location))
    }

    /// Handles `GET …/contentVersions`.
    pub(crate) fn list_content_versions(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        app_id: &str,
    ) -> GraphResult {
        let mut state = self.lock_state();
        let app = app_mut(&mut state, app_id)?;
        let items = app
            .content_versions
            .iter()
            .map(model::content_version)
            .collect();
        drop(state);
        let kind = ListKind {
            version,
            context:
                "deviceAppManagement/mobileApps('id')/microsoft.graph.win32LobApp/contentVersions",
            type_name: "microsoft.graph.mobileAppContent",
            directory: false,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET …/contentVersions/{id}`.
    pub(crate) fn get_content_version(
        &self,
        request: &SimRequest,
        app_id: &str,
        version_id: &str,
    ) -> GraphResult {
        let mut state = self.lock_state();
        let app = app_mut(&mut state, app_id)?;
        let rendered = model::content_version(version_mut(app, version_id)?);
        drop(state);
        self.object_response(request, rendered, StatusCode::OK, &[])
    }

    /// Handles `POST …/contentVersions/{id}/files` and returns 201 with the new file in
    /// `azureStorageUriRequestPending`.
    pub(crate) fn create_content_file(
        &self,
        request: &SimRequest,
        app_id: &str,
        version_id: &str,
    ) -> GraphResult {
        let body = json_body(request)?;
        let object = body
            .as_object()
            .ok_or_else(|| GraphError::bad_request("The request body must be a JSON object."))?;
        let mut file = parse_file(object)?;
        file.polls_left = self.upload_knobs().storage_uri_polls;
        file.created_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);

        let mut state = self.lock_state();
        file.id = state.new_id();
        let app = app_mut(&mut state, app_id)?;
        let app_id = app.id.clone();
        let version = version_mut(app, version_id)?;
        let rendered = model::content_file(&file, &self.base_url, &app_id);
        version.files.push(file);
        drop(state);
        self.count_upload(|counters| counters.files_created += 1);
        self.object_response(request, rendered, StatusCode::CREATED, &[])
    }

    /// Handles `GET …/files`. Listing does not advance pending states.
    pub(crate) fn list_content_files(
        &self,
        request: &SimRequest,
        version: ApiVersion,
        path: ContentPath<'_>,
    ) -> GraphResult {
        let mut state = self.lock_state();
        let app = app_mut(&mut state, path.app)?;
        let app_id = app.id.clone();
        let items = version_mut(app, path.version)?
            .files
            .iter()
            .map(|file| model::content_file(file, &self.base_url, &app_id))
            .collect();
        drop(state);
        let kind = ListKind {
            version,
            context: "deviceAppManagement/mobileApps('id')/microsoft.graph.win32LobApp/contentVersions('id')/files",
            type_name: "microsoft.graph.mobileAppContentFile",
            directory: false,
            select_only: &[],
            mixed_types: false,
        };
        self.list_response(request, items, kind)
    }

    /// Handles `GET …/files/{id}`, which is how a client polls: each GET moves a pending
    /// file one step towards its next state.
    pub(crate) fn get_content_file(
        &self,
        request: &SimRequest,
        path: ContentPath<'_>,
    ) -> GraphResult {
        let lifetime = self.upload_knobs().sas_lifetime;
        let mut state = self.lock_state();
        let GraphState { apps, rng, .. } = &mut *state;
        let app = apps
            .iter_mut()
            .find(|app| app.id.eq_ignore_ascii_case(path.app))
            .ok_or_else(|| GraphError::not_found("mobileApp", path.app))?;
        let app_id = app.id.clone();
        let file = file_mut(version_mut(app, path.version)?, path.file)?;
        advance(file, rng, lifetime);
        let rendered = model::content_file(file, &self.base_url, &app_id);
        drop(state);
        self.object_response(request, rendered, StatusCode::OK, &[])
    }

    /// Handles `POST …/files/{id}/commit`: checks the blob now, revokes the SAS and returns
    /// 204. The outcome shows after `commit_polls` GETs.
    ///
    /// Fails with 400 when `fileEncryptionInfo` is incomplete or the file is already
    /// committed or being committed.
    pub(crate) fn commit_content_file(
        &self,
        request: &SimRequest,
        path: ContentPath<'_>,
    ) -> GraphResult {
        let body = json_body(request)?;
        let info = EncryptionInfo::from_commit_body(&body)?;
        let knobs = self.upload_knobs();

        let mut state = self.lock_state();
        let app = app_mut(&mut state, path.app)?;
        let setup_file = app
            .properties
            .get("setupFilePath")
            .and_then(Value::as_str)
            .map(str::to_string);
        let file = file_mut(version_mut(app, path.version)?, path.file)?;
        if matches!(
            file.upload_state,
            UploadState::CommitFilePending | UploadState::CommitFileSuccess
        ) {
            return Err(GraphError::bad_request(format!(
                "The content file {} is already {}; create a new content version to upload \
                 other content.",
                path.file,
                file.upload_state.as_str()
            )));
        }
        let injected = self.take_injected_commit_failure();
        let outcome = if injected {
            Err("the fail_next_commits knob failed this commit".to_string())
        } else {
            check_blob(file, &info, setup_file.as_deref())
        };
        file.upload_state = UploadState::CommitFilePending;
        file.polls_left = knobs.commit_polls;
        file.commit_outcome = outcome.clone();
        file.sas_revoked = true;
        drop(state);

        match outcome {
            Ok(()) => self.count_upload(|counters| counters.commits_succeeded += 1),
            Err(reason) => {
                tracing::debug!(app = path.app, file = path.file, %reason, "Content file commit failed");
                self.count_upload(|counters| counters.commits_failed += 1);
            }
        }
        Ok(SimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Handles `POST …/files/{id}/renewUpload`: the file shows
    /// `azureStorageUriRenewalPending` and then gets a new SAS, which replaces the old one.
    ///
    /// Fails with 400 before the first storage URI was granted and once the file is
    /// committed or being committed.
    pub(crate) fn renew_upload(&self, path: ContentPath<'_>) -> GraphResult {
        let polls = self.upload_knobs().storage_uri_polls;
        let mut state = self.lock_state();
        let app = app_mut(&mut state, path.app)?;
        let file = file_mut(version_mut(app, path.version)?, path.file)?;
        match file.upload_state {
            UploadState::AzureStorageUriRequestSuccess
            | UploadState::AzureStorageUriRenewalSuccess
            | UploadState::CommitFileFailed => {
                file.upload_state = UploadState::AzureStorageUriRenewalPending;
                file.polls_left = polls;
                Ok(SimResponse::empty(StatusCode::NO_CONTENT))
            }
            UploadState::AzureStorageUriRenewalPending => {
                Ok(SimResponse::empty(StatusCode::NO_CONTENT))
            }
            other => Err(GraphError::bad_request(format!(
                "The content file {} is {}, so its upload cannot be renewed; poll it until \
                 azureStorageUriRequestSuccess first, or create a new content version after a \
                 commit.",
                path.file,
                other.as_str()
            ))),
        }
    }
}

/// Returns why the file's blob does not match the commit, or `Ok` when it does.
fn check_blob(
    file: &ContentFile,
    info: &EncryptionInfo,
    setup_file: Option<&str>,
) -> Result<(), String> {
    let Some(blob) = file.blob.content() else {
        return Err(
            "no blob was uploaded: upload blocks with Put Block and commit them with Put Block \
             List before the commit"
                .to_string(),
        );
    };
    let setup_file =
        match (file.is_dependency, setup_file) {
            (true, _) => None,
            (false, Some(setup_file)) => Some(setup_file),
            (false, None) => return Err(
                "the app has no setupFilePath, so the package cannot be checked; PATCH the app \
                 with its setupFilePath"
                    .to_string(),
            ),
        };
    let expected = Expected {
        size: file.size,
        size_encrypted: file.size_encrypted,
        setup_file,
    };
    package::verify(&blob, info, expected)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;

    fn file_body(extra: Value) -> Map<String, Value> {
        let mut body = json!({
            "@odata.type": "#microsoft.graph.mobileAppContentFile",
            "name": "app.intunewin",
            "size": 10,
            "sizeEncrypted": 80,
            "manifest": null,
            "isDependency": false,
        });
        for (key, value) in extra.as_object().unwrap() {
            if value == "REMOVE" {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body.as_object().unwrap().clone()
    }

    #[test]
    fn parse_file_rejects_bad_sizes() {
        let cases = [
            json!({"name": "REMOVE"}),
            json!({"size": "REMOVE"}),
            json!({"sizeEncrypted": "REMOVE"}),
            json!({"size": -1}),
            json!({"size": 1.5}),
            json!({"sizeEncrypted": "80"}),
            json!({"sizeInBytes": 11}),
            json!({"isDependency": "no"}),
            json!({"chunkSize": 4}),
        ];
        for case in cases {
            let result = parse_file(&file_body(case.clone()));
            assert!(result.is_err(), "{case}");
        }
    }

    #[test]
    fn parse_file_accepts_newer_size_names() {
        let body = file_body(json!({
            "size": "REMOVE",
            "sizeEncrypted": "REMOVE",
            "sizeInBytes": 12,
            "sizeEncryptedInBytes": 96,
        }));
        let file = parse_file(&body).unwrap();
        assert_eq!(file.size, 12);
        assert_eq!(file.size_encrypted, 96);
    }

    #[test]
    fn advance_grants_after_polls() {
        let mut file = parse_file(&file_body(json!({}))).unwrap();
        file.polls_left = 1;
        let mut rng = StdRng::seed_from_u64(1);
        advance(&mut file, &mut rng, Duration::from_secs(60));
        assert_eq!(
            file.upload_state,
            UploadState::AzureStorageUriRequestPending
        );
        assert!(file.sas.is_none());
        advance(&mut file, &mut rng, Duration::from_secs(60));
        assert_eq!(
            file.upload_state,
            UploadState::AzureStorageUriRequestSuccess
        );
        let grant = file.sas.clone().unwrap();
        assert!(grant.expires > Utc::now());
    }

    #[test]
    fn advance_shows_commit_failure_reason() {
        let mut file = parse_file(&file_body(json!({}))).unwrap();
        file.upload_state = UploadState::CommitFilePending;
        file.commit_outcome = Err("bad mac".to_string());
        let mut rng = StdRng::seed_from_u64(1);
        advance(&mut file, &mut rng, Duration::from_secs(60));
        assert_eq!(file.upload_state, UploadState::CommitFileFailed);
        assert_eq!(file.failure_reason.as_deref(), Some("bad mac"));
    }

    #[test]
    fn check_blob_needs_uploaded_blob() {
        let file = parse_file(&file_body(json!({}))).unwrap();
        let package = package::tests::build_package(&[("install.cmd", b"x")]);
        let info = EncryptionInfo::from_commit_body(&package.commit_body).unwrap();
        let reason = check_blob(&file, &info, Some("install.cmd")).unwrap_err();
        assert!(reason.contains("no blob"), "{reason}");
    }
}
