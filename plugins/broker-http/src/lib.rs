//! HTTP machinery shared by every broker provider.
//!
//! Providers build one [`BrokerClient`] each and only classify responses; retry with
//! decorrelated jitter, `Retry-After`, the retry budget, token caching, paging, rate and
//! concurrency limits, and the endpoint [`Guard`] live here, once.

#![forbid(unsafe_code)]

pub mod auth;
pub mod backoff;
pub mod classify;
pub mod client;
mod config;
pub mod endpoint;
pub mod guard;
pub mod limit;
pub mod pagination;
pub mod redact;
mod request;
pub mod retry_after;
mod stats;

pub use auth::{Authenticator, BearerAuthenticator, Token, TokenCache, TokenSource};
pub use backoff::{Backoff, RetryBudget, RetryConfig};
pub use classify::{DefaultClassifier, ErrorClassifier};
pub use client::{Body, BrokerClient, BrokerRequest, BrokerResponse, ClientConfig, ClientStats};
pub use guard::{BodyInspector, DenyRule, Guard, GuardViolation, InnerRequest};
pub use limit::{ConcurrencyLimit, RateLimiter};
pub use pagination::collect_pages;
pub use redact::redact_url;
