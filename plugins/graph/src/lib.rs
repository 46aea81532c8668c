//! Microsoft Graph client layer shared by the Windows 365 and physical endpoint providers.
//!
//! Everything here sits on broker-http: one [`broker_http::BrokerClient`] per provider does
//! the retries, `Retry-After`, token caching and the endpoint guard. This crate adds what is
//! specific to Graph: the client-credentials token source, the Graph error shape, paging by
//! `@odata.nextLink`, JSON batching, tolerant enums, the Graph deny-list and the Intune
//! delivery of a container version through an Entra group and a Win32 app.
//!
//! Layout: `config` (settings), `auth` (identity platform tokens), `error` (classification),
//! `enums` (tolerant enums), `client` (requests and paging), `batch` (`$batch`), `guard`
//! (the deny-list), `model` (wire types), `delivery` (groups, apps and memberships), and
//! `cache` and `pages` (inventory reads shared by a reconcile pass, and listing pages cut
//! from them).

#![forbid(unsafe_code)]

pub mod auth;
pub mod batch;
pub mod cache;
pub mod client;
pub mod config;
pub mod delivery;
pub mod enums;
pub mod error;
pub mod guard;
pub mod model;
pub mod pages;
pub mod policies;

pub use batch::{BatchItem, BatchResponse};
pub use cache::ReadCache;
pub use client::GraphClient;
pub use config::{ConfigError, DeliveryConfig, GraphConfig, GraphSettings};
pub use delivery::{DeliverySettings, DeviceRef, IntuneDelivery};
pub use error::{GraphClassifier, GraphError};
pub use pages::page;

#[doc(hidden)]
pub mod __private {
    pub use serde;
}
