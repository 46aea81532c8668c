//! Credentials stay out of `Debug` output and error messages.

mod common;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const FORM_SECRET: &str = "form-secret-8d1f";
const QUERY_SECRET: &str = "query-secret-c3e0";

#[test]
fn form_request_debug_hides_secret() {
    let request =
        common::post("token").form(vec![("client_secret".to_owned(), FORM_SECRET.to_owned())]);
    let text = format!("{request:?}");
    assert!(!text.contains(FORM_SECRET), "{text}");
}

#[tokio::test]
async fn error_for_secret_query_hides_value() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    let client = common::client(common::config(&server));

    let request = common::get(&format!("Machines?client_secret={QUERY_SECRET}"));
    let error = client
        .send(request.query("sig", QUERY_SECRET))
        .await
        .unwrap_err();

    let text = format!("{:?} {}", error, error.to_body().message);
    assert!(!text.contains(QUERY_SECRET), "{text}");
}
