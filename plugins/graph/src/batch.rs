//! JSON batching: up to 20 Graph requests in one `POST {version}/$batch`.
//!
//! Graph returns 200 whenever the batch itself parses, so every inner status is checked here.
//! Throttling applies per inner request: an inner 429 is sent again after its own
//! `Retry-After`, and an inner 424 (its dependency failed) is sent again together with that
//! dependency when the dependency is retried (Graph JSON batching docs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use broker_http::retry_after::parse_retry_after;
use broker_http::{Backoff, BrokerRequest, RetryConfig};
use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use vdi_contracts::{ProviderError, ProviderResult};

use crate::client::GraphClient;
use crate::error::{classify_status, GraphError};

/// Requests per `$batch` at most (Graph JSON batching limit).
pub const MAX_BATCH: usize = 20;

/// Rounds of resubmitting throttled inner requests before their 429 is returned.
const MAX_ROUNDS: usize = 5;

/// Maximum wait between rounds, whatever an inner `Retry-After` requests.
const MAX_ROUND_DELAY: Duration = Duration::from_secs(60);

/// One request of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Id, unique within the call.
    pub id: String,
    /// Method.
    pub method: Method,
    /// URL relative to the version, for example `/groups/{id}/members/$ref`.
    pub url: String,
    /// JSON body.
    pub body: Option<Value>,
    /// Id of a request this one runs after.
    pub depends_on: Option<String>,
}

impl BatchItem {
    /// Creates a request without body or dependency.
    pub fn new(id: impl Into<String>, method: Method, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            method,
            url: url.into(),
            body: None,
            depends_on: None,
        }
    }

    /// Sets the JSON body.
    #[must_use]
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Makes this request run after `id`.
    #[must_use]
    pub fn after(mut self, id: impl Into<String>) -> Self {
        self.depends_on = Some(id.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut request = json!({"id": self.id, "method": self.method.as_str(), "url": self.url});
        if let Some(body) = &self.body {
            request["body"] = body.clone();
            // Graph rejects an inner request with a body but no Content-Type.
            request["headers"] = json!({"Content-Type": "application/json"});
        }
        if let Some(dependency) = &self.depends_on {
            request["dependsOn"] = json!([dependency]);
        }
        request
    }
}

/// The response to one inner request.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchResponse {
    /// Id of the request.
    pub id: String,
    /// Inner HTTP status.
    pub status: u16,
    /// Inner headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Inner body; `Null` when there is none.
    #[serde(default)]
    pub body: Value,
}

impl BatchResponse {
    /// Returns whether the inner status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Returns an inner header, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the parsed Graph error of a failed inner request.
    pub fn graph_error(&self) -> GraphError {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        GraphError::parse(self.status, &body, self.header("request-id"))
    }

    /// Returns the failure as a provider error naming the inner request, and logs it with
    /// its `request-id`.
    pub fn to_error(&self, item: &BatchItem) -> ProviderError {
        let graph = self.graph_error();
        tracing::warn!(
            status = self.status,
            code = %graph.code,
            broker_request_id = graph.request_id.as_deref().unwrap_or("none"),
            method = %item.method,
            url = %item.url,
            "Graph request inside a $batch failed."
        );
        let (kind, retryable) = classify_status(self.status, &graph.code);
        let mut message = format!(
            "{} {} in $batch returned {}",
            item.method, item.url, self.status
        );
        if let Some(id) = &graph.request_id {
            message.push_str(&format!(" (request-id {id})"));
        }
        if !graph.message.is_empty() {
            message.push_str(&format!(": {} {}", graph.code, graph.message));
        }
        ProviderError::new(kind, message)
            .with_retryable(retryable)
            .with_source(graph)
    }

    /// Returns the delay the inner `Retry-After` requests.
    fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }
}

#[derive(Deserialize)]
struct BatchEnvelope {
    #[serde(default)]
    responses: Vec<BatchResponse>,
}

impl GraphClient {
    /// Sends `items` in `$batch` requests of at most 20, keeping each request with the one it
    /// depends on, and returns one response per item id.
    ///
    /// Inner 429s are sent again after their `Retry-After` (or a backoff delay without one)
    /// for up to 5 rounds. A 424 is sent again together with its retried dependency. Other
    /// inner failures are returned as they are, for the caller to judge.
    ///
    /// # Errors
    /// `invalid` for duplicate ids, a missing dependency or more than 20 chained requests;
    /// the classified error when a `$batch` request itself fails.
    pub async fn batch(
        &self,
        version: &str,
        items: Vec<BatchItem>,
    ) -> ProviderResult<BTreeMap<String, BatchResponse>> {
        let mut results = BTreeMap::new();
        for chunk in chunks(items)? {
            results.extend(self.batch_chunk(version, chunk).await?);
        }
        Ok(results)
    }

    async fn batch_chunk(
        &self,
        version: &str,
        mut pending: Vec<BatchItem>,
    ) -> ProviderResult<BTreeMap<String, BatchResponse>> {
        let mut results = BTreeMap::new();
        let mut backoff = Backoff::new(&RetryConfig::default());
        for round in 1..=MAX_ROUNDS {
            let mut responses = self.send_batch(version, &pending).await?;
            let throttled: BTreeSet<String> = responses
                .values()
                .filter(|r| r.status == 429)
                .map(|r| r.id.clone())
                .collect();
            let retry = retry_set(&pending, &responses, &throttled);
            if retry.is_empty() || round == MAX_ROUNDS {
                results.append(&mut responses);
                return Ok(results);
            }
            let delay = throttled
                .iter()
                .filter_map(|id| responses.get(id)?.retry_after())
                .max()
                .unwrap_or_else(|| backoff.next_delay())
                .min(MAX_ROUND_DELAY);
            responses.retain(|id, _| !retry.contains(id));
            results.append(&mut responses);
            pending.retain(|item| retry.contains(&item.id));
            for item in &mut pending {
                // A dependency that succeeded is not sent again, so the link is dropped.
                if item.depends_on.as_ref().is_some_and(|d| !retry.contains(d)) {
                    item.depends_on = None;
                }
            }
            tracing::info!(
                requests = pending.len(),
                delay_ms = delay.as_millis() as u64,
                round,
                "Graph throttled requests inside a $batch; sending them again."
            );
            tokio::time::sleep(delay).await;
        }
        Ok(results)
    }

    async fn send_batch(
        &self,
        version: &str,
        items: &[BatchItem],
    ) -> ProviderResult<BTreeMap<String, BatchResponse>> {
        let requests: Vec<Value> = items.iter().map(BatchItem::to_json).collect();
        let idempotent = items
            .iter()
            .all(|i| matches!(i.method, Method::GET | Method::PUT | Method::DELETE));
        let request = BrokerRequest::post(format!("{version}/$batch"))
            .operation("batch")
            .idempotent(idempotent)
            .json(json!({ "requests": requests }));
        let envelope: BatchEnvelope = self.send(request).await?.json()?;
        let responses: BTreeMap<String, BatchResponse> = envelope
            .responses
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        if let Some(missing) = items.iter().find(|i| !responses.contains_key(&i.id)) {
            return Err(ProviderError::unavailable(format!(
                "Graph $batch returned no response for request {} ({} {})",
                missing.id, missing.method, missing.url
            )));
        }
        Ok(responses)
    }
}

/// Returns the ids to send again: the throttled ones, and 424s whose dependency is sent again.
fn retry_set(
    pending: &[BatchItem],
    responses: &BTreeMap<String, BatchResponse>,
    throttled: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut retry = throttled.clone();
    // Chains are at most 20 long, so this reaches its fixed point within 20 passes.
    for _ in 0..MAX_BATCH {
        let before = retry.len();
        for item in pending {
            let failed_dependency = responses.get(&item.id).is_some_and(|r| r.status == 424);
            let dependency_retried = item.depends_on.as_ref().is_some_and(|d| retry.contains(d));
            if failed_dependency && dependency_retried {
                retry.insert(item.id.clone());
            }
        }
        if retry.len() == before {
            break;
        }
    }
    retry
}

/// Splits items into batches of at most 20, keeping every dependency chain in one batch.
fn chunks(items: Vec<BatchItem>) -> ProviderResult<Vec<Vec<BatchItem>>> {
    let mut seen = BTreeSet::new();
    for item in &items {
        if !seen.insert(item.id.clone()) {
            return Err(ProviderError::invalid(format!(
                "batch request id {:?} is used twice; Graph rejects the whole batch",
                item.id
            )));
        }
    }
    let parents: BTreeMap<String, Option<String>> = items
        .iter()
        .map(|i| (i.id.clone(), i.depends_on.clone()))
        .collect();
    let count = items.len();
    let root_of = |id: &str| -> ProviderResult<String> {
        let mut current = id;
        for _ in 0..=count {
            match parents.get(current) {
                Some(Some(parent)) => current = parent,
                Some(None) => return Ok(current.to_owned()),
                None => {
                    return Err(ProviderError::invalid(format!(
                        "batch request depends on {current:?}, which is not in the batch"
                    )))
                }
            }
        }
        Err(ProviderError::invalid(format!(
            "batch request {id:?} depends on itself"
        )))
    };
    let mut groups: Vec<(String, Vec<BatchItem>)> = Vec::new();
    for item in items {
        let root = root_of(&item.id)?;
        match groups.iter_mut().find(|(r, _)| *r == root) {
            Some((_, group)) => group.push(item),
            None => groups.push((root, vec![item])),
        }
    }
    let mut batches: Vec<Vec<BatchItem>> = Vec::new();
    for (root, group) in groups {
        if group.len() > MAX_BATCH {
            return Err(ProviderError::invalid(format!(
                "{} batch requests depend on {root:?}; Graph allows at most {MAX_BATCH} per batch",
                group.len()
            )));
        }
        match batches.last_mut() {
            Some(last) if last.len() + group.len() <= MAX_BATCH => last.extend(group),
            _ => batches.push(group),
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(id: &str) -> BatchItem {
        BatchItem::new(id, Method::GET, format!("/groups/{id}"))
    }

    #[test]
    fn chunks_hold_at_most_twenty() {
        let items: Vec<BatchItem> = (0..45).map(|i| get(&i.to_string())).collect();
        let sizes: Vec<usize> = chunks(items)
            .expect("chunks")
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![20, 20, 5]);
    }

    #[test]
    fn chains_stay_together() {
        let mut items: Vec<BatchItem> = (0..19).map(|i| get(&i.to_string())).collect();
        items.push(get("a"));
        items.push(get("b").after("a"));
        let batches = chunks(items).expect("chunks");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].len(), 2);
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        assert!(chunks(vec![get("1"), get("1")]).is_err());
    }

    #[test]
    fn dependent_424_follows_retried_dependency() {
        let pending = vec![get("1"), get("2").after("1"), get("3")];
        let response = |id: &str, status| BatchResponse {
            id: id.into(),
            status,
            headers: BTreeMap::new(),
            body: Value::Null,
        };
        let responses = BTreeMap::from([
            ("1".to_owned(), response("1", 429)),
            ("2".to_owned(), response("2", 424)),
            ("3".to_owned(), response("3", 200)),
        ]);
        let throttled = BTreeSet::from(["1".to_owned()]);
        let retry = retry_set(&pending, &responses, &throttled);
        assert_eq!(retry, BTreeSet::from(["1".to_owned(), "2".to_owned()]));
    }
}
