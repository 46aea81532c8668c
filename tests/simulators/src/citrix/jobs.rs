//! Asynchronous jobs: `async=true` writes return 202 with a `Location` of `/Jobs/{id}`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model::timestamp;
use super::state::NameValue;
use crate::common::JobOutcome;

/// A job created by an asynchronous write.
///
/// The first poll of `GET /Jobs/{id}` reports `InProgress`; later polls report the outcome.
/// The change itself is applied when the job is created, unless the outcome is `Failed`.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    pub job_type: String,
    pub outcome: JobOutcome,
    pub parameters: Vec<NameValue>,
    pub created: DateTime<Utc>,
    pub polls: u32,
    /// Body served by `GET /Jobs/{id}/Results`, for batch jobs.
    pub results: Option<Value>,
}

/// Error string of a failed job, shaped like Citrix `ErrorParameters` details.
const FAILURE_DETAILS: &str = "ErrorMessage : The simulated job failed as the job_outcome knob \
requested.\nErrorMessage : No changes were applied.";

impl Job {
    /// Returns whether the job has reached its final status.
    pub fn is_finished(&self) -> bool {
        self.polls > 0
    }

    /// Renders the job as a `JobResponseModel`.
    pub fn render(&self, api_base: &str) -> Value {
        let created = timestamp(self.created);
        let mut value = json!({
            "Id": self.id,
            "Type": self.job_type,
            "Parameters": self.parameters,
            "SubJobs": [],
            "IsCancellable": false,
            "CreationTime": created,
            "FormattedCreationTime": created,
            "StartTime": created,
            "FormattedStartTime": created,
        });
        if !self.is_finished() {
            value["Status"] = json!("InProgress");
            value["OverallProgressPercent"] = json!(50);
            return value;
        }
        let ended = timestamp(self.created + chrono::Duration::milliseconds(500));
        value["Status"] = json!(self.outcome.as_str());
        value["OverallProgressPercent"] = json!(100);
        value["EndTime"] = json!(ended);
        value["FormattedEndTime"] = json!(ended);
        match self.outcome {
            JobOutcome::Failed => {
                value["ErrorString"] = json!("The simulated job failed.");
                value["ErrorParameters"] =
                    json!([{"Name": "ErrorDetails", "Value": FAILURE_DETAILS}]);
            }
            JobOutcome::CompleteWithWarning => {
                value["ErrorString"] = json!("The simulated job completed with warnings.");
                value["ErrorParameters"] = json!([{
                    "Name": "ErrorDetails",
                    "Value": "ErrorMessage : The simulated job completed with a warning.",
                }]);
            }
            JobOutcome::Complete => {}
        }
        if self.results.is_some() {
            value["ResultLocation"] = json!(format!("{api_base}Jobs/{}/Results", self.id));
        }
        value
    }
}
