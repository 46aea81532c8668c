//! Knobs and counters of Win32 app content upload: content versions, content files, the
//! blob storage on the same listener, and commits.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::server::{lock, Shared};
use crate::common::Counters;

/// Settings of content upload that tests turn at run time.
///
/// [`GraphSimConfig::content_upload`](super::GraphSimConfig::content_upload) sets the
/// initial values; [`GraphSim::set_upload_knobs`](super::GraphSim::set_upload_knobs) and
/// `PUT /_sim/upload/knobs` replace them. In JSON the SAS lifetime is `sas_lifetime_secs`,
/// and a missing field keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContentUploadKnobs {
    /// GETs of a content file that still show `azureStorageUriRequestPending` or
    /// `azureStorageUriRenewalPending` before the storage URI is granted; default 1.
    pub storage_uri_polls: u32,
    /// GETs of a content file that still show `commitFilePending` before the outcome of a
    /// commit shows; default 1.
    pub commit_polls: u32,
    /// Number of coming commits that end `commitFileFailed` even when the content is valid.
    /// Each commit request lowers it by one.
    pub fail_next_commits: u32,
    /// Time from granting a storage URI to its `se` expiry; default 15 minutes.
    // NOTE: Microsoft documents no lifetime for these SAS URIs. 15 minutes is a guess above
    // the 450 s after which the IntuneWin32App PowerShell module (MSEndpointMgr) renews them.
    #[serde(rename = "sas_lifetime_secs", with = "duration_secs")]
    pub sas_lifetime: Duration,
}

impl Default for ContentUploadKnobs {
    fn default() -> Self {
        Self {
            storage_uri_polls: 1,
            commit_polls: 1,
            fail_next_commits: 0,
            sas_lifetime: Duration::from_secs(15 * 60),
        }
    }
}

/// Counts of content upload work since start or the last counter reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContentUploadCounters {
    /// Content versions created (`POST …/contentVersions` returned 201).
    pub content_versions_created: u64,
    /// Content files created (`POST …/files` returned 201).
    pub files_created: u64,
    /// Accepted Put Block requests (`comp=block`).
    pub block_puts: u64,
    /// Accepted Put Block List requests (`comp=blocklist`).
    pub block_list_puts: u64,
    /// Bytes of every accepted Put Block body.
    pub bytes_stored: u64,
    /// Commits whose verification passed.
    pub commits_succeeded: u64,
    /// Commits that ended `commitFileFailed`, including injected failures.
    pub commits_failed: u64,
    /// Storage requests rejected for a missing, wrong, revoked or expired SAS.
    pub storage_rejected_sas: u64,
    /// Storage requests rejected because they carried an `Authorization` header, such as
    /// the Graph bearer token.
    pub storage_rejected_authorization: u64,
}

/// What `GET /_sim/counters` of the Graph simulator returns: the common request counters
/// with the content upload counters under `content_upload`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphCounters {
    /// Request counters that every simulator keeps.
    #[serde(flatten)]
    pub requests: Counters,
    /// Content upload counters.
    pub content_upload: ContentUploadCounters,
}

// Written by hand because a flattened `Counters` fails to read its `by_status` map: serde
// buffers flattened fields with string keys, which do not parse as `u16`.
impl<'de> Deserialize<'de> for GraphCounters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let content_upload = match object.remove("content_upload") {
            Some(value) => serde_json::from_value(value).map_err(D::Error::custom)?,
            None => ContentUploadCounters::default(),
        };
        let requests = serde_json::from_value(Value::Object(object)).map_err(D::Error::custom)?;
        Ok(Self {
            requests,
            content_upload,
        })
    }
}

impl Shared {
    pub(crate) fn upload_knobs(&self) -> ContentUploadKnobs {
        lock(&self.upload_knobs).clone()
    }

    pub(crate) fn set_upload_knobs(&self, knobs: ContentUploadKnobs) {
        *lock(&self.upload_knobs) = knobs;
    }

    /// Lowers `fail_next_commits` by one and returns whether it was above zero.
    pub(crate) fn take_injected_commit_failure(&self) -> bool {
        let mut knobs = lock(&self.upload_knobs);
        let injected = knobs.fail_next_commits > 0;
        knobs.fail_next_commits = knobs.fail_next_commits.saturating_sub(1);
        injected
    }

    pub(crate) fn count_upload(&self, change: impl FnOnce(&mut ContentUploadCounters)) {
        change(&mut lock(&self.upload_counters));
    }

    /// Returns the request counters with the content upload counters.
    pub(crate) fn graph_counters(&self) -> GraphCounters {
        GraphCounters {
            requests: self.counters.snapshot(),
            content_upload: lock(&self.upload_counters).clone(),
        }
    }

    /// Sets the request and content upload counters back to zero.
    pub(crate) fn reset_graph_counters(&self) {
        self.counters.reset();
        *lock(&self.upload_counters) = ContentUploadCounters::default();
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_partial_json_keeps_defaults() {
        let knobs: ContentUploadKnobs =
            serde_json::from_str(r#"{"fail_next_commits": 2, "sas_lifetime_secs": 0}"#).unwrap();
        assert_eq!(knobs.fail_next_commits, 2);
        assert_eq!(knobs.sas_lifetime, Duration::ZERO);
        assert_eq!(knobs.storage_uri_polls, 1);
        assert_eq!(knobs.commit_polls, 1);
    }

    #[test]
    fn graph_counters_flatten_request_counters() {
        let counters = GraphCounters {
            requests: Counters {
                total: 3,
                by_status: [(404, 1)].into(),
                ..Counters::default()
            },
            content_upload: ContentUploadCounters {
                block_puts: 2,
                ..ContentUploadCounters::default()
            },
        };
        let value = serde_json::to_value(&counters).unwrap();
        assert_eq!(value["total"], 3);
        assert_eq!(value["by_status"]["404"], 1);
        assert_eq!(value["content_upload"]["block_puts"], 2);
        let common: Counters = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(
            common.total, 3,
            "readers of the common shape still parse it"
        );
        let back: GraphCounters = serde_json::from_value(value).unwrap();
        assert_eq!(back, counters);
    }
}
