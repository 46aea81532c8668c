//! Publishing a container version uploads the Win32 app's content the way Intune requires,
//! against wiremock: content version, file, storage URL, blocks, block list, commit, and the
//! app's committed content version, with the package checked by decrypting it.

use std::io::{Cursor, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use broker_http::BrokerRequest;
use hmac::{Hmac, Mac};
use http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vdi_contracts::{Container, ErrorKind, Launch};
use vdi_graph::delivery::package::SETUP_FILE;
use vdi_graph::{DeliverySettings, GraphClient, GraphConfig, IntuneDelivery};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.upload-token";
const APP: &str = "/v1.0/deviceAppManagement/mobileApps/app-1";
const VERSIONS: &str =
    "/v1.0/deviceAppManagement/mobileApps/app-1/microsoft.graph.win32LobApp/contentVersions";
const FILE: &str = "/v1.0/deviceAppManagement/mobileApps/app-1/microsoft.graph.win32LobApp/contentVersions/1/files/file-1";
const BLOB: &str = "/storage/app-1/file-1.bin";
const SIG_1: &str = "first-signature-Zq9";
const SIG_2: &str = "renewed-signature-Hx4";

/// Returns the given responses in order, repeating the last.
struct Sequence(Mutex<Vec<ResponseTemplate>>);

impl Sequence {
    fn of(responses: Vec<ResponseTemplate>) -> Self {
        Self(Mutex::new(responses))
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut responses = self.0.lock().expect("lock");
        if responses.len() > 1 {
            responses.remove(0)
        } else {
            responses[0].clone()
        }
    }
}

fn container() -> Container {
    Container {
        id: "epic".into(),
        version: "2026.11".into(),
        display_name: None,
        launch: Launch {
            executable: "C:\\Numecent\\Player.exe".into(),
            arguments: Some("--launch epic".into()),
            working_directory: None,
        },
    }
}

fn graph_client(server: &MockServer) -> GraphClient {
    let config: GraphConfig = serde_json::from_value(json!({
        "tenant_id": TENANT,
        "client_id": "gateway-app",
        "client_secret": "upload-test-secret",
        "token_url": format!("{}/{TENANT}/oauth2/v2.0/token", server.uri()),
        "graph_base_url": server.uri(),
        "requests_per_second": 1000.0,
        "allow_plain_http_loopback": true,
    }))
    .expect("config parses");
    GraphClient::new("upload-test", config.build().expect("builds"), Vec::new())
        .expect("client builds")
}

fn delivery(server: &MockServer) -> IntuneDelivery {
    let settings = DeliverySettings {
        upload_poll_attempts: 5,
        upload_poll_delay: Duration::from_millis(1),
        ..DeliverySettings::default()
    };
    IntuneDelivery::new(Arc::new(graph_client(server)), settings)
}

fn ok(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn file_state(state: &str, uri: Option<String>) -> ResponseTemplate {
    ok(
        200,
        json!({"id": "file-1", "uploadState": state, "azureStorageUri": uri, "isCommitted": state == "commitFileSuccess"}),
    )
}

fn app(state: &str, committed: Option<&str>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "id": "app-1",
        "displayName": "vdigw-epic-2026.11",
        "description": "Owned by the VDI broker gateway; container=epic; version=2026.11",
        "publishingState": state,
        "committedContentVersion": committed,
    })
}

fn sas(server: &MockServer, sig: &str) -> String {
    format!(
        "{}{BLOB}?sv=2019-02-02&sr=b&sp=rw&se=2099-01-01T00%3A00%3A00Z&sig={sig}",
        server.uri()
    )
}

/// Mounts the token endpoint, the group, the app lookup and creation, and the assignment.
async fn mount_objects(server: &MockServer, existing_app: Option<Value>) {
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(ok(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ok(200, json!({"value": []})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/groups"))
        .respond_with(ok(
            201,
            json!({"id": "group-1", "displayName": "vdigw-epic-2026.11",
                   "description": "Owned by the VDI broker gateway; container=epic; version=2026.11"}),
        ))
        .mount(server)
        .await;
    let listed: Vec<Value> = existing_app.into_iter().collect();
    Mock::given(method("GET"))
        .and(path("/v1.0/deviceAppManagement/mobileApps"))
        .respond_with(ok(200, json!({ "value": listed })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/deviceAppManagement/mobileApps"))
        .respond_with(ok(201, app("notPublished", None)))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{APP}/assignments")))
        .respond_with(ok(200, json!({"value": []})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{APP}/assign")))
        .respond_with(ResponseTemplate::new(204))
        .mount(server)
        .await;
}

/// Mounts the content version, file, storage, commit and app reads; `file_states` are the
/// successive reads of the file.
async fn mount_upload(server: &MockServer, file_states: Vec<ResponseTemplate>) {
    // No earlier publish left a content version behind.
    Mock::given(method("GET"))
        .and(path(VERSIONS))
        .respond_with(ok(200, json!({"value": []})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(VERSIONS))
        .respond_with(ok(
            201,
            json!({"@odata.type": "#microsoft.graph.mobileAppContent", "id": "1"}),
        ))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{VERSIONS}/1/files")))
        .respond_with(ok(
            201,
            json!({"id": "file-1", "uploadState": "azureStorageUriRequestPending", "azureStorageUri": null}),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(FILE))
        .respond_with(Sequence::of(file_states))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{FILE}/commit")))
        .respond_with(ResponseTemplate::new(204))
        .mount(server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(APP))
        .respond_with(ResponseTemplate::new(204))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(APP))
        .respond_with(Sequence::of(vec![
            ok(200, app("processing", Some("1"))),
            ok(200, app("published", Some("1"))),
        ]))
        .mount(server)
        .await;
}

async fn mount_storage(server: &MockServer, sig: &str, status: u16) {
    Mock::given(method("PUT"))
        .and(path(BLOB))
        .and(query_param("sig", sig))
        .respond_with(
            ResponseTemplate::new(status).insert_header("x-ms-request-id", "storage-req-1"),
        )
        .mount(server)
        .await;
}

async fn requests(server: &MockServer, http_method: &str, expected_path: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == http_method && r.url.path() == expected_path)
        .collect()
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn decode(info: &Value, name: &str) -> Vec<u8> {
    STANDARD
        .decode(info[name].as_str().expect("base64 text"))
        .expect("base64")
}

/// Checks the uploaded file against the commit's encryption info, as Intune does, and returns
/// the install script inside it.
fn open_package(uploaded: &[u8], commit: &Value) -> String {
    let info = &commit["fileEncryptionInfo"];
    let (mac, rest) = uploaded.split_at(32);
    let (iv, ciphertext) = rest.split_at(16);
    assert_eq!(mac, decode(info, "mac").as_slice(), "mac");
    assert_eq!(iv, decode(info, "initializationVector").as_slice(), "iv");
    let mut hmac = <Hmac<Sha256> as Mac>::new_from_slice(&decode(info, "macKey")).expect("key");
    hmac.update(iv);
    hmac.update(ciphertext);
    hmac.verify_slice(mac).expect("mac verifies");
    let key = decode(info, "encryptionKey");
    let zip = cbc::Decryptor::<aes::Aes256>::new(key.as_slice().into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .expect("decrypts");
    assert_eq!(
        Sha256::digest(&zip).as_slice(),
        decode(info, "fileDigest").as_slice()
    );
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
    let mut script = String::new();
    archive
        .by_name(SETUP_FILE)
        .expect("setup file")
        .read_to_string(&mut script)
        .expect("reads");
    script
}

#[tokio::test]
async fn publish_uploads_and_commits_content() {
    let server = MockServer::start().await;
    mount_objects(&server, None).await;
    mount_upload(
        &server,
        vec![
            file_state("azureStorageUriRequestPending", None),
            file_state("azureStorageUriRequestSuccess", Some(sas(&server, SIG_1))),
            file_state("commitFilePending", None),
            file_state("commitFileSuccess", None),
        ],
    )
    .await;
    mount_storage(&server, SIG_1, 201).await;

    let publication = delivery(&server)
        .publish(&container())
        .await
        .expect("publishes");

    let operations: Vec<&str> = publication
        .writes
        .iter()
        .map(|w| w.operation.as_str())
        .collect();
    assert_eq!(
        operations,
        [
            "create_group",
            "create_app",
            "create_content_version",
            "create_content_file",
            "upload_content",
            "commit_content_file",
            "commit_app_content",
            "assign_app",
        ]
    );
    let upload = &publication.writes[4];
    assert!(!upload.path.contains(SIG_1), "{}", upload.path);
    assert_eq!(upload.broker_request_id.as_deref(), Some("storage-req-1"));

    let stored = requests(&server, "PUT", BLOB).await;
    assert_eq!(stored.len(), 2, "one block and the block list");
    for request in &stored {
        assert!(
            !request.headers.contains_key("authorization"),
            "the bearer token went to storage"
        );
    }
    let block = &stored[0];
    assert_eq!(query(block, "comp").as_deref(), Some("block"));
    let block_id = query(block, "blockid").expect("block id");
    let list = String::from_utf8(stored[1].body.clone()).expect("utf-8");
    assert_eq!(query(&stored[1], "comp").as_deref(), Some("blocklist"));
    assert!(
        list.contains(&format!("<Latest>{block_id}</Latest>")),
        "{list}"
    );

    let created: Value = requests(&server, "POST", &format!("{VERSIONS}/1/files")).await[0]
        .body_json()
        .expect("json");
    assert_eq!(created["sizeEncrypted"], json!(block.body.len()));
    assert_eq!(created["name"], "vdigw-epic-2026.11.intunewin");

    let commit: Value = requests(&server, "POST", &format!("{FILE}/commit")).await[0]
        .body_json()
        .expect("json");
    let script = open_package(&block.body, &commit);
    assert!(
        script.contains("\"C:\\Numecent\\Player.exe\" --launch epic"),
        "{script}"
    );

    let patch: Value = requests(&server, "PATCH", APP).await[0]
        .body_json()
        .expect("json");
    assert_eq!(patch["committedContentVersion"], "1");
    assert_eq!(
        requests(&server, "POST", &format!("{APP}/assign"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn committed_app_is_not_uploaded_again() {
    let server = MockServer::start().await;
    mount_objects(&server, Some(app("processing", Some("1")))).await;
    mount_upload(&server, vec![file_state("commitFileSuccess", None)]).await;

    delivery(&server)
        .publish(&container())
        .await
        .expect("publishes");

    assert!(requests(&server, "POST", VERSIONS).await.is_empty());
    assert_eq!(
        requests(&server, "GET", APP).await.len(),
        2,
        "read until published"
    );
}

#[tokio::test]
async fn failed_commit_stops_before_the_app() {
    let server = MockServer::start().await;
    mount_objects(&server, None).await;
    mount_upload(
        &server,
        vec![
            file_state("azureStorageUriRequestSuccess", Some(sas(&server, SIG_1))),
            file_state("commitFileFailed", None),
        ],
    )
    .await;
    mount_storage(&server, SIG_1, 201).await;

    let error = delivery(&server)
        .publish(&container())
        .await
        .expect_err("commit failed");

    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(
        error.message.contains("commitFileFailed"),
        "{}",
        error.message
    );
    assert!(requests(&server, "PATCH", APP).await.is_empty());
    assert!(requests(&server, "POST", &format!("{APP}/assign"))
        .await
        .is_empty());
}

#[tokio::test]
async fn foreign_storage_host_is_rejected() {
    let server = MockServer::start().await;
    mount_objects(&server, None).await;
    let foreign = format!("https://uploads.example.com{BLOB}?sig={SIG_1}");
    mount_upload(
        &server,
        vec![file_state("azureStorageUriRequestSuccess", Some(foreign))],
    )
    .await;

    let error = delivery(&server)
        .publish(&container())
        .await
        .expect_err("refused");

    assert_eq!(error.kind, ErrorKind::Invalid);
    assert!(
        error.message.contains("uploads.example.com"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(SIG_1), "{}", error.message);
    assert!(requests(&server, "POST", &format!("{FILE}/commit"))
        .await
        .is_empty());
}

#[tokio::test]
async fn app_stuck_processing_is_unavailable() {
    let server = MockServer::start().await;
    mount_objects(&server, Some(app("processing", Some("1")))).await;
    Mock::given(method("GET"))
        .and(path(APP))
        .respond_with(ok(200, app("processing", Some("1"))))
        .mount(&server)
        .await;

    let error = delivery(&server)
        .publish(&container())
        .await
        .expect_err("still processing");

    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.message.contains("processing"), "{}", error.message);
    assert_eq!(requests(&server, "GET", APP).await.len(), 5);
}

/// Collects log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn expired_upload_url_is_renewed() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    mount_objects(&server, None).await;
    mount_upload(
        &server,
        vec![
            file_state("azureStorageUriRequestSuccess", Some(sas(&server, SIG_1))),
            file_state("azureStorageUriRenewalPending", None),
            file_state("azureStorageUriRenewalSuccess", Some(sas(&server, SIG_2))),
            file_state("commitFileSuccess", None),
        ],
    )
    .await;
    mount_storage(&server, SIG_1, 403).await;
    mount_storage(&server, SIG_2, 201).await;
    Mock::given(method("POST"))
        .and(path(format!("{FILE}/renewUpload")))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    delivery(&server)
        .publish(&container())
        .await
        .expect("publishes after renewal");

    assert_eq!(
        requests(&server, "POST", &format!("{FILE}/renewUpload"))
            .await
            .len(),
        1
    );
    let stored = requests(&server, "PUT", BLOB).await;
    let renewed: Vec<&Request> = stored
        .iter()
        .filter(|r| query(r, "sig").as_deref() == Some(SIG_2))
        .collect();
    assert_eq!(renewed.len(), 2, "block and block list on the renewed URL");
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(!logs.contains(SIG_1), "first signature in logs");
    assert!(!logs.contains(SIG_2), "renewed signature in logs");
    assert!(!logs.contains(TOKEN), "token in logs");
}

#[tokio::test]
async fn storage_client_sends_only_put_and_get() {
    let server = MockServer::start().await;
    let client = graph_client(&server);
    let url = client
        .storage_url(&sas(&server, SIG_1))
        .expect("graph origin");

    for http_method in [Method::DELETE, Method::POST, Method::PATCH] {
        let request = BrokerRequest::new(http_method.clone(), "").absolute(url.clone());
        let error = client
            .send_storage(request)
            .await
            .expect_err("guard blocks it");
        assert_eq!(error.kind, ErrorKind::GuardViolation, "{http_method}");
    }
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[test]
fn storage_url_accepts_blob_hosts_only() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(MockServer::start());
    let client = graph_client(&server);
    let accepted = [
        "https://acct.blob.core.windows.net/c/f.bin?sig=x",
        "https://acct.blob.core.usgovcloudapi.net/c/f.bin?sig=x",
    ];
    for uri in accepted {
        assert!(client.storage_url(uri).is_ok(), "{uri}");
    }
    let rejected = [
        "http://acct.blob.core.windows.net/c/f.bin?sig=x",
        "https://acct.blob.core.windows.net.example.com/f?sig=x",
        "https://graph.microsoft.com.example.com/f?sig=x",
        "not a url",
    ];
    for uri in rejected {
        assert!(client.storage_url(uri).is_err(), "{uri}");
    }
}

#[tokio::test]
async fn rejected_renewal_names_the_clock() {
    let server = MockServer::start().await;
    mount_objects(&server, None).await;
    mount_upload(
        &server,
        vec![
            file_state("azureStorageUriRequestSuccess", Some(sas(&server, SIG_1))),
            file_state("azureStorageUriRenewalSuccess", Some(sas(&server, SIG_2))),
        ],
    )
    .await;
    mount_storage(&server, SIG_1, 403).await;
    mount_storage(&server, SIG_2, 403).await;
    Mock::given(method("POST"))
        .and(path(format!("{FILE}/renewUpload")))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    let error = delivery(&server)
        .publish(&container())
        .await
        .expect_err("storage keeps rejecting");

    assert_eq!(error.kind, ErrorKind::Unavailable);
    assert!(error.message.contains("expired"), "{}", error.message);
    assert!(error.message.contains("clock"), "{}", error.message);
    assert!(!error.message.contains(SIG_2), "{}", error.message);
    assert!(requests(&server, "POST", &format!("{FILE}/commit"))
        .await
        .is_empty());
}

#[tokio::test]
async fn pending_commit_is_resumed() {
    let server = MockServer::start().await;
    mount_objects(&server, None).await;
    Mock::given(method("GET"))
        .and(path(VERSIONS))
        .respond_with(ok(200, json!({"value": [{"id": "1"}]})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{VERSIONS}/1/files")))
        .respond_with(ok(
            200,
            json!({"value": [{"id": "file-1", "uploadState": "commitFilePending"}]}),
        ))
        .mount(&server)
        .await;
    mount_upload(
        &server,
        vec![
            file_state("commitFilePending", None),
            file_state("commitFileSuccess", None),
        ],
    )
    .await;

    let publication = delivery(&server)
        .publish(&container())
        .await
        .expect("publishes");

    assert!(
        requests(&server, "POST", VERSIONS).await.is_empty(),
        "no new upload"
    );
    assert!(requests(&server, "PUT", BLOB).await.is_empty());
    let patch: Value = requests(&server, "PATCH", APP).await[0]
        .body_json()
        .expect("json");
    assert_eq!(patch["committedContentVersion"], "1");
    let operations: Vec<&str> = publication
        .writes
        .iter()
        .map(|w| w.operation.as_str())
        .collect();
    assert!(operations.contains(&"commit_app_content"), "{operations:?}");
}
