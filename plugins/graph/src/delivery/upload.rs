//! Upload of a Win32 app's content, which Intune requires before it publishes the app. The
//! steps are: create a content version and its file, wait for the Azure Storage upload URL,
//! upload the encrypted package in blocks, commit the file with its encryption info, wait for
//! the commit, then point the app's `committedContentVersion` at the version (Microsoft Graph
//! v1.0 `mobileAppContentFile` and its `commit` and `renewUpload` actions).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use broker_http::{Body, BrokerRequest, BrokerResponse};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::json;
use url::Url;
use vdi_contracts::{BrokerWrite, Container, ErrorKind, ProviderError, ProviderResult};

use super::package::{build_package, ContentPackage};
use super::{write, IntuneDelivery};
use crate::enums::{PublishingState, UploadState};
use crate::model::{MobileApp, MobileAppContent, MobileAppContentFile};

/// Newest content versions checked for a commit an earlier publish left behind.
const RESUME_LOOKBACK: usize = 3;

/// Size of one uploaded block. Azure accepts blocks of up to 4000 MiB; the package is a few
/// kilobytes, so it goes in one block, and larger content would go in 4 MiB steps.
const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// A stage of the file's upload request, with the states that end it.
#[derive(Debug, Clone, Copy)]
enum Stage {
    StorageUri,
    Renewal,
    Commit,
}

impl Stage {
    fn done(self) -> UploadState {
        match self {
            Stage::StorageUri => UploadState::AzureStorageUriRequestSuccess,
            Stage::Renewal => UploadState::AzureStorageUriRenewalSuccess,
            Stage::Commit => UploadState::CommitFileSuccess,
        }
    }

    fn failed(self, state: &UploadState) -> bool {
        let stage_failed = match self {
            Stage::StorageUri => matches!(
                state,
                UploadState::AzureStorageUriRequestFailed
                    | UploadState::AzureStorageUriRequestTimedOut
            ),
            Stage::Renewal => matches!(
                state,
                UploadState::AzureStorageUriRenewalFailed
                    | UploadState::AzureStorageUriRenewalTimedOut
            ),
            Stage::Commit => matches!(
                state,
                UploadState::CommitFileFailed | UploadState::CommitFileTimedOut
            ),
        };
        stage_failed || *state == UploadState::Error
    }

    fn describe(self) -> &'static str {
        match self {
            Stage::StorageUri => "the upload URL",
            Stage::Renewal => "a renewed upload URL",
            Stage::Commit => "the commit",
        }
    }
}

impl IntuneDelivery {
    /// Makes a gateway-owned app assignable: uploads and commits its content when none is
    /// committed, then waits until Intune reports it `published`.
    ///
    /// # Errors
    /// `unavailable` when Intune is still processing after the configured reads (the next
    /// publish resumes); `invalid` when Intune rejects the upload; Graph and storage errors.
    pub(super) async fn ensure_content(
        &self,
        app: &MobileApp,
        container: &Container,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        if app.publishing_state == Some(PublishingState::Published) {
            return Ok(());
        }
        if app.committed_content_version.is_none() {
            let name = self.object_name(&container.id, &container.version);
            if let Some(version) = self.resumable_version(&app.id).await? {
                // An earlier publish uploaded and committed the file but stopped before
                // pointing the app at it, or Intune took longer than the reads allowed.
                self.commit_app_version(&app.id, &version, writes).await?;
                tracing::info!(
                    app = %name, content_version = %version,
                    "Resumed the committed content of a gateway-owned Win32 app."
                );
            } else {
                let package = build_package(&name, container)?;
                self.upload_content(&app.id, &package, writes).await?;
                tracing::info!(
                    app = %name, size = package.size,
                    "Uploaded and committed the content of a gateway-owned Win32 app."
                );
            }
        }
        self.wait_until_published(&app.id).await
    }

    /// Finds a content version an earlier publish left committed or still committing, newest
    /// first, waiting for a pending commit. Returns `None` when a new upload is needed.
    async fn resumable_version(&self, app_id: &str) -> ProviderResult<Option<String>> {
        let versions_path = format!(
            "v1.0/deviceAppManagement/mobileApps/{app_id}/microsoft.graph.win32LobApp/contentVersions"
        );
        let request = BrokerRequest::get(versions_path.clone()).operation("list_content_versions");
        let mut versions: Vec<MobileAppContent> =
            self.client.list("content versions", request).await?;
        // Ids are decimal counters ("1", "2", ...); the newest is the largest.
        versions.sort_by_key(|v| std::cmp::Reverse(v.id.parse::<u64>().unwrap_or(0)));
        for version in versions.iter().take(RESUME_LOOKBACK) {
            let files_path = format!("{versions_path}/{}/files", version.id);
            let request = BrokerRequest::get(files_path.clone()).operation("list_content_files");
            let files: Vec<MobileAppContentFile> =
                self.client.list("content files", request).await?;
            for file in files {
                match file.upload_state {
                    Some(UploadState::CommitFileSuccess) => return Ok(Some(version.id.clone())),
                    Some(UploadState::CommitFilePending) => {
                        let file_path = format!("{files_path}/{}", file.id);
                        match self.wait_for_file(&file_path, Stage::Commit).await {
                            Ok(_) => return Ok(Some(version.id.clone())),
                            Err(error) if error.kind == ErrorKind::Invalid => {
                                tracing::info!(
                                    app = %app_id, content_version = %version.id, error = %error,
                                    "A pending commit of an earlier publish failed; uploading again."
                                );
                            }
                            Err(error) => return Err(error),
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    async fn commit_app_version(
        &self,
        app_id: &str,
        version: &str,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let app_path = format!("v1.0/deviceAppManagement/mobileApps/{app_id}");
        let body = json!({
            "@odata.type": "#microsoft.graph.win32LobApp",
            "committedContentVersion": version,
        });
        let request = BrokerRequest::patch(app_path.clone())
            .operation("commit_app_content")
            .idempotent(true)
            .json(body);
        let response = self.client.send(request).await?;
        writes.push(write(
            "commit_app_content",
            "PATCH",
            &app_path,
            None,
            &response,
        ));
        Ok(())
    }

    async fn upload_content(
        &self,
        app_id: &str,
        package: &ContentPackage,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let app_path = format!("v1.0/deviceAppManagement/mobileApps/{app_id}");
        let versions_path = format!("{app_path}/microsoft.graph.win32LobApp/contentVersions");
        let response = self
            .post(&versions_path, "create_content_version", json!({}), writes)
            .await?;
        let version: MobileAppContent = response.json()?;

        let files_path = format!("{versions_path}/{}/files", version.id);
        let body = json!({
            "@odata.type": "#microsoft.graph.mobileAppContentFile",
            "name": package.file_name,
            "size": package.size,
            "sizeEncrypted": package.encrypted.len(),
            "manifest": null,
            "isDependency": false,
        });
        let response = self
            .post(&files_path, "create_content_file", body, writes)
            .await?;
        let file: MobileAppContentFile = response.json()?;
        let file_path = format!("{files_path}/{}", file.id);

        let file = self.wait_for_file(&file_path, Stage::StorageUri).await?;
        self.upload_blob(&file_path, &file, &package.encrypted, writes)
            .await?;

        let commit_path = format!("{file_path}/commit");
        let body = package.encryption.commit_body();
        self.post(&commit_path, "commit_content_file", body, writes)
            .await?;
        self.wait_for_file(&file_path, Stage::Commit).await?;
        self.commit_app_version(app_id, &version.id, writes).await
    }

    async fn post(
        &self,
        path: &str,
        operation: &'static str,
        body: serde_json::Value,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<BrokerResponse> {
        let request = BrokerRequest::post(path).operation(operation).json(body);
        let response = self.client.send(request).await?;
        writes.push(write(operation, "POST", path, None, &response));
        Ok(response)
    }

    /// Reads the file until its upload request reaches the end of `stage`.
    async fn wait_for_file(
        &self,
        file_path: &str,
        stage: Stage,
    ) -> ProviderResult<MobileAppContentFile> {
        let attempts = self.settings.upload_poll_attempts;
        let mut last = None;
        for attempt in 1..=attempts {
            let request = BrokerRequest::get(file_path).operation("get_content_file");
            let file: MobileAppContentFile = self.client.get_json(request).await?;
            match &file.upload_state {
                Some(state) if *state == stage.done() => return Ok(file),
                Some(state) if stage.failed(state) => {
                    return Err(ProviderError::invalid(format!(
                        "Intune reported {} for {} of content file {}; the next publish \
                         uploads the content again",
                        state.as_str(),
                        stage.describe(),
                        file.id
                    )));
                }
                _ => {}
            }
            last = file.upload_state;
            if attempt < attempts {
                tokio::time::sleep(self.settings.upload_poll_delay).await;
            }
        }
        let state = last.as_ref().map_or("no state", UploadState::as_str);
        Err(ProviderError::new(
            ErrorKind::Unavailable,
            format!(
                "Intune was still at {state} waiting for {} of {file_path} after {attempts} \
                 reads {} ms apart; the next publish uploads the content again, or raise \
                 delivery.upload_poll_attempts",
                stage.describe(),
                self.settings.upload_poll_delay.as_millis()
            ),
        ))
    }

    /// Uploads the package to the file's storage URL. When the URL's signature has expired,
    /// it requests a new URL once (`renewUpload`) and uploads again.
    async fn upload_blob(
        &self,
        file_path: &str,
        file: &MobileAppContentFile,
        bytes: &Bytes,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let uri = storage_uri(file)?;
        match self.put_blocks(uri, bytes, writes).await {
            Err(error) if error.kind == ErrorKind::Forbidden => {
                tracing::info!(
                    file = %file.id, error = %error,
                    "Azure Storage rejected the upload URL; renewing it."
                );
                let renew_path = format!("{file_path}/renewUpload");
                self.post(&renew_path, "renew_content_upload", json!({}), writes)
                    .await?;
                let renewed = self.wait_for_file(file_path, Stage::Renewal).await?;
                self.put_blocks(storage_uri(&renewed)?, bytes, writes)
                    .await
                    .map_err(|error| storage_rejected(error, &file.id))
            }
            result => result,
        }
    }

    async fn put_blocks(
        &self,
        uri: &str,
        bytes: &Bytes,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<()> {
        let url = self.client.storage_url(uri)?;
        let mut block_ids = Vec::new();
        for (index, start) in (0..bytes.len()).step_by(BLOCK_SIZE).enumerate() {
            let end = (start + BLOCK_SIZE).min(bytes.len());
            // Azure requires every block id of a blob to have the same length.
            let block_id = STANDARD.encode(format!("block-{index:08}"));
            let mut block_url = url.clone();
            block_url
                .query_pairs_mut()
                .append_pair("comp", "block")
                .append_pair("blockid", &block_id);
            let body = Body::Raw {
                content_type: "application/octet-stream".into(),
                bytes: bytes.slice(start..end),
            };
            self.put(block_url, "upload_content_block", body).await?;
            block_ids.push(block_id);
        }

        let mut list = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for block_id in &block_ids {
            list.push_str(&format!("<Latest>{block_id}</Latest>"));
        }
        list.push_str("</BlockList>");
        let mut list_url = url.clone();
        list_url.query_pairs_mut().append_pair("comp", "blocklist");
        let body = Body::Raw {
            content_type: "application/xml".into(),
            bytes: Bytes::from(list),
        };
        let response = self.put(list_url, "upload_content", body).await?;
        writes.push(BrokerWrite {
            operation: "upload_content".into(),
            method: "PUT".into(),
            path: storage_display(&url),
            machine: None,
            status: Some(response.status.as_u16()),
            broker_request_id: response.request_id.clone(),
        });
        Ok(())
    }

    async fn put(
        &self,
        url: Url,
        operation: &'static str,
        body: Body,
    ) -> ProviderResult<BrokerResponse> {
        let mut request = BrokerRequest::new(Method::PUT, "")
            .absolute(url)
            .operation(operation)
            .header(
                HeaderName::from_static("x-ms-blob-type"),
                HeaderValue::from_static("BlockBlob"),
            );
        request.body = Some(body);
        self.client.send_storage(request).await
    }

    /// Reads the app until Intune reports it `published`.
    async fn wait_until_published(&self, app_id: &str) -> ProviderResult<()> {
        let path = format!("v1.0/deviceAppManagement/mobileApps/{app_id}");
        let attempts = self.settings.upload_poll_attempts;
        let mut state = None;
        for attempt in 1..=attempts {
            let request = BrokerRequest::get(path.clone()).operation("get_app");
            let app: MobileApp = self.client.get_json(request).await?;
            if app.publishing_state == Some(PublishingState::Published) {
                return Ok(());
            }
            state = app.publishing_state;
            if attempt < attempts {
                tokio::time::sleep(self.settings.upload_poll_delay).await;
            }
        }
        let state = state.as_ref().map_or("no state", PublishingState::as_str);
        Err(ProviderError::new(
            ErrorKind::Unavailable,
            format!(
                "Intune still reports app {app_id} as {state} after {attempts} reads; it cannot \
                 be assigned until it is published, and the next publish checks again"
            ),
        ))
    }
}

/// Rewords a storage 403 after renewal: the generic advice to grant the account a right does
/// not apply to a signed URL, which fails when it has expired or the clocks disagree.
fn storage_rejected(error: ProviderError, file_id: &str) -> ProviderError {
    if error.kind != ErrorKind::Forbidden {
        return error;
    }
    ProviderError::new(
        ErrorKind::Unavailable,
        format!(
            "Azure Storage rejected the renewed upload URL of content file {file_id} (HTTP 403): \
             the signed URL expired before the upload or the gateway's clock is off; check \
             the clock (NTP), and the next publish uploads again ({})",
            error.message
        ),
    )
}

fn storage_uri(file: &MobileAppContentFile) -> ProviderResult<&str> {
    file.azure_storage_uri
        .as_deref()
        .filter(|uri| !uri.is_empty())
        .ok_or_else(|| {
            ProviderError::invalid(format!(
                "Intune reported the upload URL of content file {} as ready but returned no \
                 azureStorageUri",
                file.id
            ))
        })
}

/// Returns the storage URL for audit records: scheme, host and path, without the signature.
fn storage_display(url: &Url) -> String {
    let mut text = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        text.push_str(&format!(":{port}"));
    }
    text.push_str(url.path());
    text
}
