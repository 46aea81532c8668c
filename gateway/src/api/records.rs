//! `/v1/events` (Server-Sent Events) and `/v1/audit` (JSON or CSV).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::store::AuditQuery;

/// How often the event stream polls the store for new events.
const EVENT_POLL: Duration = Duration::from_millis(250);

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    since: Option<i64>,
    assignment: Option<String>,
}

/// `GET /v1/events`: every event after `since` (or `Last-Event-ID`), then new ones as they
/// are stored.
pub async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let last_event_id = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid(format!("Last-Event-ID {text:?} is not an event id"))
        })?),
        Some(Err(_)) => return Err(ApiError::invalid("Last-Event-ID is not valid text")),
    };
    let mut after = last_event_id.or(query.since).unwrap_or(0);
    let filter = query.assignment;
    let store = state.store.clone();
    let stream = async_stream(move |sender| async move {
        loop {
            match store.events_after(after, 500).await {
                Ok(events) => {
                    let idle = events.is_empty();
                    for event in events {
                        after = event.id;
                        if filter.as_ref().is_some_and(|f| *f != event.assignment) {
                            continue;
                        }
                        let data = json!({
                            "id": event.id, "time": event.time, "assignment": event.assignment,
                            "kind": event.kind, "detail": event.detail,
                        });
                        let sse = SseEvent::default()
                            .id(event.id.to_string())
                            .event(event.kind.clone())
                            .data(data.to_string());
                        if sender.send(Ok(sse)).await.is_err() {
                            return;
                        }
                    }
                    if idle {
                        tokio::time::sleep(EVENT_POLL).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "Reading events for a stream failed.");
                    tokio::time::sleep(EVENT_POLL * 4).await;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Turns a producer writing into a channel into a stream; the producer stops when the client
/// goes away and the channel closes.
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(sender));
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    since: Option<String>,
    until: Option<String>,
    assignment: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/audit`: JSON by default, CSV with `Accept: text/csv`.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Result<Response, ApiError> {
    for (name, value) in [("since", &params.since), ("until", &params.until)] {
        if let Some(text) = value {
            chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                ApiError::invalid(format!(
                    "{name} {text:?} is not an RFC 3339 time ({e}); for example 2026-12-04T08:00:00Z"
                ))
            })?;
        }
    }
    let normalise = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| crate::store::format_time(t.with_timezone(&chrono::Utc)))
    };
    let limit = params.limit.unwrap_or(10_000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit} is out of range; use 1 to 100000"
        )));
    }
    let records = state
        .store
        .audit(&AuditQuery {
            since: normalise(&params.since),
            until: normalise(&params.until),
            assignment: params.assignment.clone(),
            limit,
        })
        .await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if !wants_csv {
        let records: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "time": r.time, "actor": r.actor, "assignment": r.assignment,
                    "provider": r.provider, "target": r.target, "machine": r.machine,
                    "operation": r.operation,
                    "request": {"method": r.method, "path": r.path},
                    "result": r.result, "broker_request_id": r.broker_request_id,
                })
            })
            .collect();
        return Ok(Json(json!({"records": records})).into_response());
    }
    let mut csv = String::from(
        "time,actor,assignment,provider,target,machine,operation,method,path,result,broker_request_id\n",
    );
    for r in &records {
        let fields = [
            &r.time,
            &r.actor,
            &r.assignment,
            &r.provider,
            &r.target,
            &r.machine,
            &r.operation,
            &r.method,
            &r.path,
            &r.result,
            &r.broker_request_id,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180), and defuses
/// values a spreadsheet would run as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quotes_commas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }

    #[test]
    fn csv_doubles_quotes() {
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn csv_defuses_formulas() {
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
