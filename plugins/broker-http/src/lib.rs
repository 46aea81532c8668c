//! HTTP machinery shared by every broker provider.
//!
//! Providers build one [`BrokerClient`] each and only classify responses; retry with
//! decorrelated jitter, `Retry-After`, the retry budget, token caching, paging, rate and
//! concurrency limits, and the endpoint [`Guard`] live here, once.

pub mod auth;
pub mod backoff;
pub mod classify;
pub mod client;
pub mod guard;
pub mod limit;
pub mod pagination;
pub mod redact;
pub mod retry_after;

pub use auth::{Authenticator, Token, TokenCache, TokenSource};
pub use backoff::RetryConfig;
pub use classify::{DefaultClassifier, ErrorClassifier};
pub use client::{Body, BrokerClient, BrokerRequest, BrokerResponse, ClientConfig, ClientStats};
pub use guard::{BodyInspector, DenyRule, Guard, GuardViolation};
pub use pagination::collect_pages;
