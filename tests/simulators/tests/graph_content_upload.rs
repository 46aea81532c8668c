//! Win32 app content upload: content versions, files, the blob storage on the simulator's
//! listener, commit verification, `committedContentVersion` and publishing.

mod graph_support;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use broker_sim::graph::{ContentUploadKnobs, GraphFleet, GraphSimConfig, Knobs};
use graph_support::content::*;
use graph_support::{start, start_with, Client};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

#[tokio::test]
async fn upload_flow_publishes_app() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let app = create_app_id(&client, "Flow app").await;
    let (_, created) = client.get(&format!("{APPS}/{app}")).await;
    assert_eq!(created["publishingState"], "notPublished");
    assert_eq!(created["committedContentVersion"], Value::Null);

    let versions = format!("{APPS}/{app}/microsoft.graph.win32LobApp/contentVersions");
    let (status, version) = client.call(Method::POST, &versions, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(version["@odata.type"], "#microsoft.graph.mobileAppContent");
    assert_eq!(version["id"], "1");
    let (items, _) = client.get_all(&versions).await;
    assert_eq!(items.len(), 1);
    let (status, one) = client.get(&format!("{versions}/1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], "1");

    let body = json!({
        "@odata.type": "#microsoft.graph.mobileAppContentFile",
        "name": "flow.intunewin",
        "size": package.size,
        "sizeEncrypted": package.blob.len(),
        "manifest": null,
        "isDependency": false,
    });
    let (status, file) = client
        .call(Method::POST, &format!("{versions}/1/files"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["uploadState"], "azureStorageUriRequestPending");
    assert_eq!(file["isCommitted"], false);
    assert_eq!(file["azureStorageUri"], Value::Null);
    assert_eq!(file["azureStorageUriExpirationDateTime"], Value::Null);
    assert_eq!(file["size"], package.size);
    assert_eq!(file["sizeEncrypted"], package.blob.len());
    assert!(file["createdDateTime"].is_string());
    let upload = Upload {
        app: app.clone(),
        version: "1".into(),
        file: file["id"].as_str().unwrap().to_string(),
    };

    let (_, first) = client.get(&upload.file_path()).await;
    assert_eq!(first["uploadState"], "azureStorageUriRequestPending");
    let (_, second) = client.get(&upload.file_path()).await;
    assert_eq!(second["uploadState"], "azureStorageUriRequestSuccess");
    let uri = second["azureStorageUri"].as_str().unwrap();
    let prefix = format!("{}/storage/{app}/{}.bin?", sim.base_url(), upload.file);
    assert!(uri.starts_with(&prefix), "{uri}");
    assert!(uri.contains("&sig="), "{uri}");
    assert!(second["azureStorageUriExpirationDateTime"].is_string());

    let blocks = upload_blob(uri, &package.blob, 2048).await;
    assert!(blocks > 1, "the package spans several blocks");
    assert_eq!(
        snapshot_file(&sim, &upload).blob_bytes,
        Some(package.blob.len() as u64)
    );
    assert_eq!(
        commit(&client, &upload, &package.commit_body).await,
        StatusCode::NO_CONTENT
    );
    let (_, pending) = client.get(&upload.file_path()).await;
    assert_eq!(pending["uploadState"], "commitFilePending");
    assert_eq!(pending["isCommitted"], false);
    let (_, done) = client.get(&upload.file_path()).await;
    assert_eq!(done["uploadState"], "commitFileSuccess");
    assert_eq!(done["isCommitted"], true);

    let (status, _) = commit_version(&client, &upload, "1").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, published) = client.get(&upload.app_path()).await;
    assert_eq!(published["publishingState"], "published");
    assert_eq!(published["committedContentVersion"], "1");
    let (status, body) = assign(&client, &sim, &app).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (_, next) = client.call(Method::POST, &versions, Some(json!({}))).await;
    assert_eq!(next["id"], "2", "ids count per app");

    let counters = sim.upload_counters();
    assert_eq!(counters.content_versions_created, 2);
    assert_eq!(counters.files_created, 1);
    assert_eq!(counters.block_puts, blocks as u64);
    assert_eq!(counters.block_list_puts, 1);
    assert_eq!(counters.bytes_stored, package.blob.len() as u64);
    assert_eq!(counters.commits_succeeded, 1);
    assert_eq!(counters.commits_failed, 0);
    assert_eq!(counters.storage_rejected_sas, 0);
    assert_eq!(counters.storage_rejected_authorization, 0);
}

#[tokio::test]
async fn commit_failures_record_reason() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();

    let mut bad_mac = package.commit_body.clone();
    bad_mac["fileEncryptionInfo"]["mac"] = json!(BASE64.encode([0u8; 32]));
    let mut bad_digest = package.commit_body.clone();
    bad_digest["fileEncryptionInfo"]["fileDigest"] = json!(BASE64.encode([0u8; 32]));
    let mut bad_mac_key = package.commit_body.clone();
    bad_mac_key["fileEncryptionInfo"]["macKey"] = json!(BASE64.encode([1u8; 32]));
    let no_setup = build_package(&[("other.cmd", b"echo")]);

    let cases = [
        ("bad mac", &package, bad_mac, "mac differs"),
        ("bad mac key", &package, bad_mac_key, "hmac"),
        ("bad digest", &package, bad_digest, "filedigest"),
        (
            "missing setup file",
            &no_setup,
            no_setup.commit_body.clone(),
            SETUP_FILE,
        ),
    ];
    for (case, package, body, reason_part) in &cases {
        let upload = start_upload(&client, package).await;
        let file = upload_and_commit(&client, &upload, package, body).await;
        assert_eq!(file["uploadState"], "commitFileFailed", "{case}");
        assert_eq!(file["isCommitted"], false, "{case}");
        let reason = snapshot_file(&sim, &upload).failure_reason.unwrap();
        assert!(
            reason.to_lowercase().contains(&reason_part.to_lowercase()),
            "{case}: {reason}"
        );
        let (status, _) = commit_version(&client, &upload, "1").await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{case}: PATCH after a failure"
        );
    }
    let counters = sim.upload_counters();
    assert_eq!(counters.commits_failed, cases.len() as u64);
    assert_eq!(counters.commits_succeeded, 0);
}

#[tokio::test]
async fn commit_checks_size_and_blob() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();

    let upload = start_upload(&client, &package).await;
    storage_uri(&client, &upload).await;
    assert_eq!(
        commit(&client, &upload, &package.commit_body).await,
        StatusCode::NO_CONTENT
    );
    poll_until(&client, &upload, "commitFileFailed").await;
    let reason = snapshot_file(&sim, &upload).failure_reason.unwrap();
    assert!(reason.contains("no blob"), "commit before upload: {reason}");

    let upload = start_upload(&client, &package).await;
    let uri = storage_uri(&client, &upload).await;
    let short = package.blob[..package.blob.len() - 16].to_vec();
    upload_blob(&uri, &short, 4096).await;
    assert_eq!(
        commit(&client, &upload, &package.commit_body).await,
        StatusCode::NO_CONTENT
    );
    poll_until(&client, &upload, "commitFileFailed").await;
    let reason = snapshot_file(&sim, &upload).failure_reason.unwrap();
    assert!(reason.contains("sizeEncrypted"), "short blob: {reason}");
}

#[tokio::test]
async fn commit_rejects_missing_field() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let uri = storage_uri(&client, &upload).await;
    upload_blob(&uri, &package.blob, 4096).await;

    let mut body = package.commit_body.clone();
    body["fileEncryptionInfo"]
        .as_object_mut()
        .unwrap()
        .remove("fileDigest");
    let path = format!("{}/commit", upload.file_path());
    let (status, error) = client.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "BadRequest");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("fileDigest"), "{message}");
    assert_eq!(
        snapshot_file(&sim, &upload).upload_state,
        "azureStorageUriRequestSuccess",
        "a rejected commit changes nothing"
    );

    let file = upload_and_commit(&client, &upload, &package, &package.commit_body).await;
    assert_eq!(file["uploadState"], "commitFileSuccess");
    assert_eq!(
        commit(&client, &upload, &package.commit_body).await,
        StatusCode::BAD_REQUEST,
        "a committed file cannot be committed again"
    );
}

#[tokio::test]
async fn storage_rejects_bad_sas() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let uri = storage_uri(&client, &upload).await;
    let block = BASE64.encode("block-0000");

    let mut wrong_sig = Url::parse(&uri).unwrap();
    let pairs: Vec<(String, String)> = wrong_sig
        .query_pairs()
        .map(|(name, value)| {
            let value = if name == "sig" {
                "AAAA".to_string()
            } else {
                value.into_owned()
            };
            (name.into_owned(), value)
        })
        .collect();
    wrong_sig.query_pairs_mut().clear().extend_pairs(&pairs);
    let response = put_block(wrong_sig.as_str(), &block, vec![1, 2, 3]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["content-type"],
        "application/xml",
        "storage errors are Azure XML"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("<Error><Code>AuthenticationFailed</Code>"),
        "{text}"
    );

    let without_sig = uri.split("&sig=").next().unwrap().to_string();
    let response = put_block(&without_sig, &block, vec![1]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "missing sig");

    let url = with_query(&uri, &[("comp", "block"), ("blockid", &block)]);
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth(&client.token)
        .body(vec![1u8])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "bearer token");

    let counters = sim.upload_counters();
    assert_eq!(counters.storage_rejected_sas, 2);
    assert_eq!(counters.storage_rejected_authorization, 1);
    assert_eq!(counters.block_puts, 0);
    assert_eq!(snapshot_file(&sim, &upload).blob_bytes, None);
}

#[tokio::test]
async fn expired_sas_needs_renewal() {
    let sim = start_with(GraphSimConfig {
        content_upload: ContentUploadKnobs {
            sas_lifetime: Duration::ZERO,
            ..ContentUploadKnobs::default()
        },
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let expired = storage_uri(&client, &upload).await;
    let block = BASE64.encode("block-0000");
    let response = put_block(&expired, &block, vec![1]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "expired SAS");
    let text = response.text().await.unwrap();
    assert!(text.contains("AuthenticationFailed"), "{text}");

    sim.set_upload_knobs(ContentUploadKnobs::default());
    let renew = format!("{}/renewUpload", upload.file_path());
    let (status, _) = client.call(Method::POST, &renew, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, pending) = client.get(&upload.file_path()).await;
    assert_eq!(pending["uploadState"], "azureStorageUriRenewalPending");
    let renewed = poll_until(&client, &upload, "azureStorageUriRenewalSuccess").await;
    let renewed = renewed["azureStorageUri"].as_str().unwrap().to_string();
    assert_ne!(renewed, expired);

    let response = put_block(&expired, &block, vec![1]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "old signature");
    let file = upload_and_commit_at(&client, &upload, &package, &renewed).await;
    assert_eq!(file["uploadState"], "commitFileSuccess");
    assert_eq!(sim.upload_counters().storage_rejected_sas, 2);
}

#[tokio::test]
async fn renewal_replaces_signature() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let old = storage_uri(&client, &upload).await;
    let block = BASE64.encode("block-0000");
    let response = put_block(&old, &block, vec![1]).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the first SAS works"
    );

    let renew = format!("{}/renewUpload", upload.file_path());
    let (status, _) = client.call(Method::POST, &renew, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let renewed = poll_until(&client, &upload, "azureStorageUriRenewalSuccess").await;
    let new = renewed["azureStorageUri"].as_str().unwrap();
    let signature = |uri: &str| {
        Url::parse(uri)
            .unwrap()
            .query_pairs()
            .find(|(name, _)| name == "sig")
            .map(|(_, value)| value.into_owned())
    };
    assert_ne!(signature(new), signature(&old));

    let response = put_block(&old, &block, vec![1]).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "the old SAS stops working"
    );
    let response = put_block(new, &block, vec![1]).await;
    assert_eq!(response.status(), StatusCode::CREATED, "the new SAS works");
    assert_eq!(sim.upload_counters().storage_rejected_sas, 1);
}

/// Uploads to a known storage URI, commits, and returns the file after the commit ended.
async fn upload_and_commit_at(
    client: &Client,
    upload: &Upload,
    package: &Package,
    uri: &str,
) -> Value {
    upload_blob(uri, &package.blob, 2048).await;
    assert_eq!(
        commit(client, upload, &package.commit_body).await,
        StatusCode::NO_CONTENT
    );
    poll_until(client, upload, "commitFileSuccess").await
}

#[tokio::test]
async fn storage_enforces_block_rules() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let uri = storage_uri(&client, &upload).await;

    let first = BASE64.encode("block-0000");
    let longer = BASE64.encode("block-00001");
    assert_eq!(
        put_block(&uri, &first, vec![1]).await.status(),
        StatusCode::CREATED
    );
    let response = put_block(&uri, &longer, vec![2]).await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "block id length"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("<Code>InvalidBlobOrBlock</Code>"), "{text}");

    let unknown = BASE64.encode("block-9999");
    let response = put_block_list(&uri, &[first.clone(), unknown]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "unknown block");
    assert_eq!(snapshot_file(&sim, &upload).blob_bytes, None);

    let response = put_block(&uri, "not base64!", vec![1]).await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "block id encoding"
    );
    assert_eq!(sim.upload_counters().block_puts, 1);
}

#[tokio::test]
async fn storage_skips_graph_faults() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let uri = storage_uri(&client, &upload).await;
    sim.set_knobs(Knobs {
        error_rate: 1.0,
        rate_limit_per_second: Some(0.001),
        ..Knobs::default()
    });
    let (status, _) = client.get(&upload.file_path()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "Graph calls fail");
    let (status, _) = client.get(&upload.file_path()).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "Graph calls are throttled"
    );
    let blocks = upload_blob(&uri, &package.blob, 2048).await;
    assert_eq!(sim.upload_counters().block_puts, blocks as u64);
}

#[tokio::test]
async fn patch_requires_committed_file() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let uri = storage_uri(&client, &upload).await;
    upload_blob(&uri, &package.blob, 4096).await;

    let (status, error) = commit_version(&client, &upload, "1").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "uploaded but not committed"
    );
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("commitFileSuccess"), "{message}");
    let (status, _) = commit_version(&client, &upload, "9").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown content version");
    let body = json!({"committedContentVersion": 1});
    let (status, _) = client
        .call(Method::PATCH, &upload.app_path(), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "number instead of string");

    let body = json!({"@odata.type": "#microsoft.graph.win32LobApp", "description": "New text"});
    let (status, _) = client
        .call(Method::PATCH, &upload.app_path(), Some(body))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let body = json!({"@odata.type": "#microsoft.graph.win32LobApp", "installCommandLine": ""});
    let (status, _) = client
        .call(Method::PATCH, &upload.app_path(), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "validated as on create");
    let body = json!({"autoReboot": true});
    let (status, _) = client
        .call(Method::PATCH, &upload.app_path(), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown property");
    let (status, missing) = client
        .call(
            Method::PATCH,
            &format!("{APPS}/00000000-0000-0000-0000-000000000000"),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    let (_, app) = client.get(&upload.app_path()).await;
    assert_eq!(app["description"], "New text");
    assert_eq!(app["installCommandLine"], "install.cmd /quiet");
    assert_eq!(app["publishingState"], "notPublished");
    assert_eq!(app["committedContentVersion"], Value::Null);
}

#[tokio::test]
async fn assign_waits_for_commit_and_delay() {
    let sim = start_with(GraphSimConfig {
        app_publish_delay: Duration::from_millis(200),
        ..GraphSimConfig::default()
    })
    .await;
    let client = Client::connect(&sim).await;
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let (status, error) = assign(&client, &sim, &upload.app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not published");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("notPublished"), "{message}");

    let file = upload_and_commit(&client, &upload, &package, &package.commit_body).await;
    assert_eq!(file["uploadState"], "commitFileSuccess");
    let (status, _) = assign(&client, &sim, &upload.app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "committed file, no PATCH");

    let (status, _) = commit_version(&client, &upload, "1").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, app) = client.get(&upload.app_path()).await;
    assert_eq!(app["publishingState"], "processing");
    let (status, _) = assign(&client, &sim, &upload.app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "processing");

    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, app) = client.get(&upload.app_path()).await;
    assert_eq!(app["publishingState"], "published");
    let (status, _) = assign(&client, &sim, &upload.app).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn fail_next_commits_then_retry() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    sim.set_upload_knobs(ContentUploadKnobs {
        fail_next_commits: 1,
        ..ContentUploadKnobs::default()
    });
    let package = valid_package();
    let upload = start_upload(&client, &package).await;
    let file = upload_and_commit(&client, &upload, &package, &package.commit_body).await;
    assert_eq!(file["uploadState"], "commitFileFailed");
    let reason = snapshot_file(&sim, &upload).failure_reason.unwrap();
    assert!(reason.contains("fail_next_commits"), "{reason}");
    assert_eq!(sim.upload_knobs().fail_next_commits, 0);

    let block = BASE64.encode("block-0000");
    let uri = file["azureStorageUri"].as_str().unwrap();
    let response = put_block(uri, &block, vec![1]).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a commit revokes the SAS"
    );

    let renew = format!("{}/renewUpload", upload.file_path());
    let (status, _) = client.call(Method::POST, &renew, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let renewed = poll_until(&client, &upload, "azureStorageUriRenewalSuccess").await;
    let uri = renewed["azureStorageUri"].as_str().unwrap();
    let file = upload_and_commit_at(&client, &upload, &package, uri).await;
    assert_eq!(file["isCommitted"], true);
    let counters = sim.upload_counters();
    assert_eq!(counters.commits_failed, 1);
    assert_eq!(counters.commits_succeeded, 1);
}

#[tokio::test]
async fn content_paths_validate_input() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let app = create_app_id(&client, "Validation app").await;
    let versions = format!("{APPS}/{app}/microsoft.graph.win32LobApp/contentVersions");
    let missing_app = format!(
        "{APPS}/00000000-0000-0000-0000-000000000000/microsoft.graph.win32LobApp/contentVersions"
    );
    let (status, _) = client
        .call(Method::POST, &missing_app, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown app");
    let (status, _) = client.get(&format!("{versions}/1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown content version");
    client.call(Method::POST, &versions, Some(json!({}))).await;

    let files = format!("{versions}/1/files");
    let valid = json!({"name": "a.intunewin", "size": 10, "sizeEncrypted": 80});
    let cases = [
        ("name", json!(null)),
        ("size", json!(-1)),
        ("size", json!(2.5)),
        ("sizeEncrypted", json!("80")),
        ("isDependency", json!("yes")),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value.clone();
        }
        let (status, error) = client.call(Method::POST, &files, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field} = {value}");
        assert_eq!(error["error"]["code"], "BadRequest", "{field} = {value}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field}: {message}");
    }

    let newer = json!({"name": "b.intunewin", "sizeInBytes": 12, "sizeEncryptedInBytes": 96});
    let (status, file) = client.call(Method::POST, &files, Some(newer)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["sizeInBytes"], 12);
    assert_eq!(file["sizeEncrypted"], 96);
    let (status, _) = client
        .call(Method::POST, &format!("{versions}/2/files"), Some(valid))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "files of an unknown version");

    let renew = format!("{files}/{}/renewUpload", file["id"].as_str().unwrap());
    let (status, _) = client.call(Method::POST, &renew, None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "renew before the first grant"
    );
    assert_eq!(sim.upload_counters().files_created, 1);
}

#[tokio::test]
async fn control_endpoints_expose_upload() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    let app = create_app_id(&client, "Control app").await;
    let versions = format!("{APPS}/{app}/microsoft.graph.win32LobApp/contentVersions");
    client.call(Method::POST, &versions, Some(json!({}))).await;

    let http = reqwest::Client::new();
    let base = sim.base_url();
    let counters: Value = http
        .get(format!("{base}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["content_upload"]["content_versions_created"], 1);
    assert!(counters["total"].as_u64().unwrap() >= 3);
    let route = "POST /v1.0/deviceappmanagement/mobileapps/{id}/microsoft.graph.win32lobapp/contentversions";
    assert_eq!(counters["by_route"][route], 1, "{counters}");

    let knobs: Value = http
        .put(format!("{base}/_sim/upload/knobs"))
        .json(&json!({"commit_polls": 3, "sas_lifetime_secs": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["commit_polls"], 3);
    assert_eq!(
        knobs["storage_uri_polls"], 1,
        "missing fields keep defaults"
    );
    assert_eq!(sim.upload_knobs().sas_lifetime, Duration::from_secs(60));

    let status = http
        .post(format!("{base}/_sim/counters/reset"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.upload_counters().content_versions_created, 0);
}
