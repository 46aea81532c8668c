//! Win32 app content: building an encrypted package and walking the upload steps against the
//! simulator, as the gateway's Intune delivery does.

use std::io::{Cursor, Write};

use aes::Aes256;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use broker_sim::graph::{GraphSim, SnapshotContentFile};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use super::{win32_app, Client};

pub const APPS: &str = "v1.0/deviceAppManagement/mobileApps";
/// `setupFilePath` of [`win32_app`].
pub const SETUP_FILE: &str = "install.cmd";

/// An encrypted content file and the commit body that describes it.
#[derive(Clone)]
pub struct Package {
    pub blob: Vec<u8>,
    pub size: u64,
    pub commit_body: Value,
}

/// Builds a zip of stored entries and encrypts it as the `.intunewin` content file is:
/// HMAC-SHA256 || IV || AES-256-CBC ciphertext.
pub fn build_package(entries: &[(&str, &[u8])]) -> Package {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(content).unwrap();
    }
    let plaintext = writer.finish().unwrap().into_inner();

    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let mac_key: [u8; 32] = std::array::from_fn(|i| 100 + i as u8);
    let iv: [u8; 16] = std::array::from_fn(|i| 200 + i as u8);
    let ciphertext = cbc::Encryptor::<Aes256>::new_from_slices(&key, &iv)
        .unwrap()
        .encrypt_padded_vec_mut::<Pkcs7>(&plaintext);
    let mut hmac = Hmac::<Sha256>::new_from_slice(&mac_key).unwrap();
    hmac.update(&iv);
    hmac.update(&ciphertext);
    let mac = hmac.finalize().into_bytes().to_vec();

    let mut blob = mac.clone();
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&ciphertext);
    let commit_body = json!({"fileEncryptionInfo": {
        "encryptionKey": BASE64.encode(key),
        "macKey": BASE64.encode(mac_key),
        "initializationVector": BASE64.encode(iv),
        "mac": BASE64.encode(&mac),
        "profileIdentifier": "ProfileVersion1",
        "fileDigest": BASE64.encode(Sha256::digest(&plaintext)),
        "fileDigestAlgorithm": "SHA256",
    }});
    Package {
        blob,
        size: plaintext.len() as u64,
        commit_body,
    }
}

/// Builds a package whose zip contains the setup file and a payload large enough to span
/// several blocks.
pub fn valid_package() -> Package {
    let payload = vec![b'p'; 5000];
    build_package(&[(SETUP_FILE, b"@echo installing"), ("payload.bin", &payload)])
}

/// Paths of one content file.
pub struct Upload {
    pub app: String,
    pub version: String,
    pub file: String,
}

impl Upload {
    pub fn app_path(&self) -> String {
        format!("{APPS}/{}", self.app)
    }

    pub fn versions_path(&self) -> String {
        format!(
            "{}/microsoft.graph.win32LobApp/contentVersions",
            self.app_path()
        )
    }

    pub fn file_path(&self) -> String {
        format!(
            "{}/{}/files/{}",
            self.versions_path(),
            self.version,
            self.file
        )
    }
}

pub async fn create_app_id(client: &Client, name: &str) -> String {
    let (status, app) = client.call(Method::POST, APPS, Some(win32_app(name))).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    app["id"].as_str().unwrap().to_string()
}

/// Creates an app, a content version and a file declared for `package`.
pub async fn start_upload(client: &Client, package: &Package) -> Upload {
    let app = create_app_id(client, "Upload app").await;
    let versions = format!("{APPS}/{app}/microsoft.graph.win32LobApp/contentVersions");
    let (status, version) = client.call(Method::POST, &versions, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    let version = version["id"].as_str().unwrap().to_string();

    let body = json!({
        "@odata.type": "#microsoft.graph.mobileAppContentFile",
        "name": "upload.intunewin",
        "size": package.size,
        "sizeEncrypted": package.blob.len(),
        "manifest": null,
        "isDependency": false,
    });
    let files = format!("{versions}/{version}/files");
    let (status, file) = client.call(Method::POST, &files, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    Upload {
        app,
        version,
        file: file["id"].as_str().unwrap().to_string(),
    }
}

/// Reads the file until `uploadState` is `state`, at most ten times.
pub async fn poll_until(client: &Client, upload: &Upload, state: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..10 {
        let (status, file) = client.get(&upload.file_path()).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        if file["uploadState"] == state {
            return file;
        }
        last = file;
    }
    panic!("the file never reached {state}; last read {last}");
}

/// Returns the storage URI once granted.
pub async fn storage_uri(client: &Client, upload: &Upload) -> String {
    let file = poll_until(client, upload, "azureStorageUriRequestSuccess").await;
    file["azureStorageUri"].as_str().unwrap().to_string()
}

pub fn with_query(uri: &str, pairs: &[(&str, &str)]) -> Url {
    let mut url = Url::parse(uri).unwrap();
    for (name, value) in pairs {
        url.query_pairs_mut().append_pair(name, value);
    }
    url
}

/// Sends one Put Block with a fresh client that has no token.
pub async fn put_block(uri: &str, block_id: &str, bytes: Vec<u8>) -> reqwest::Response {
    let url = with_query(uri, &[("comp", "block"), ("blockid", block_id)]);
    reqwest::Client::new()
        .put(url)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

pub async fn put_block_list(uri: &str, block_ids: &[String]) -> reqwest::Response {
    let mut list = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in block_ids {
        list.push_str(&format!("<Latest>{id}</Latest>"));
    }
    list.push_str("</BlockList>");
    let url = with_query(uri, &[("comp", "blocklist")]);
    reqwest::Client::new()
        .put(url)
        .body(list)
        .send()
        .await
        .unwrap()
}

/// Uploads `blob` in blocks of `block_size` and commits the block list; returns the
/// number of blocks.
pub async fn upload_blob(uri: &str, blob: &[u8], block_size: usize) -> usize {
    let mut ids = Vec::new();
    for (index, chunk) in blob.chunks(block_size).enumerate() {
        let id = BASE64.encode(format!("block-{index:04}"));
        let response = put_block(uri, &id, chunk.to_vec()).await;
        assert_eq!(response.status(), StatusCode::CREATED, "block {index}");
        ids.push(id);
    }
    let response = put_block_list(uri, &ids).await;
    assert_eq!(response.status(), StatusCode::CREATED, "block list");
    ids.len()
}

pub async fn commit(client: &Client, upload: &Upload, body: &Value) -> StatusCode {
    let path = format!("{}/commit", upload.file_path());
    client.call(Method::POST, &path, Some(body.clone())).await.0
}

pub async fn commit_version(
    client: &Client,
    upload: &Upload,
    version: &str,
) -> (StatusCode, Value) {
    let body = json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "committedContentVersion": version,
    });
    client
        .call(Method::PATCH, &upload.app_path(), Some(body))
        .await
}

pub async fn assign(client: &Client, sim: &GraphSim, app: &str) -> (StatusCode, Value) {
    let group = sim.snapshot().groups[0].id.clone();
    let body = json!({"mobileAppAssignments": [{
        "intent": "required",
        "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group},
    }]});
    client
        .call(Method::POST, &format!("{APPS}/{app}/assign"), Some(body))
        .await
}

pub fn snapshot_file(sim: &GraphSim, upload: &Upload) -> SnapshotContentFile {
    let snapshot = sim.snapshot();
    let app = snapshot.mobile_app(&upload.app).unwrap();
    app.content_versions
        .iter()
        .flat_map(|version| version.files.iter())
        .find(|file| file.id == upload.file)
        .unwrap()
        .clone()
}

/// Uploads `package`, commits `commit_body` and returns the file after the commit ended.
pub async fn upload_and_commit(
    client: &Client,
    upload: &Upload,
    package: &Package,
    commit_body: &Value,
) -> Value {
    let uri = storage_uri(client, upload).await;
    upload_blob(&uri, &package.blob, 2048).await;
    assert_eq!(
        commit(client, upload, commit_body).await,
        StatusCode::NO_CONTENT
    );
    let (_, file) = client.get(&upload.file_path()).await;
    assert_eq!(file["uploadState"], "commitFilePending");
    let (_, file) = client.get(&upload.file_path()).await;
    file
}

/// Uploads and commits a valid package for an existing app and points the app at it; the
/// app then publishes after the simulator's `app_publish_delay`.
pub async fn publish_content(client: &Client, app: &str) {
    let package = valid_package();
    let versions = format!("{APPS}/{app}/microsoft.graph.win32LobApp/contentVersions");
    let (status, version) = client.call(Method::POST, &versions, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{version}");

    let body = json!({
        "name": "app.intunewin",
        "size": package.size,
        "sizeEncrypted": package.blob.len(),
        "manifest": null,
        "isDependency": false,
    });
    let version = version["id"].as_str().unwrap().to_string();
    let (status, file) = client
        .call(
            Method::POST,
            &format!("{versions}/{version}/files"),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");

    let upload = Upload {
        app: app.to_string(),
        version: version.clone(),
        file: file["id"].as_str().unwrap().to_string(),
    };
    let commit_body = package.commit_body.clone();
    upload_and_commit(client, &upload, &package, &commit_body).await;
    poll_until(client, &upload, "commitFileSuccess").await;

    let (status, body) = commit_version(client, &upload, &version).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}
