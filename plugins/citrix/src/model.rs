//! Wire types of the Citrix Orchestration API (field names from the model documents Citrix
//! generates from its spec, citrix-daas-rest-go v1.0.28).
//!
//! Every field is optional or defaulted and unknown fields are ignored, so a newer server never
//! fails a page. Enums keep values they do not know in `Unknown(raw)`.

use serde::{Deserialize, Deserializer, Serialize};

/// Defines an enum that keeps any value it does not know as `Unknown(raw)`, including the
/// server's own `"Unknown"`, so an enum value added by a later release never fails a page.
macro_rules! tolerant_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum $name {
            $($variant,)+
            /// A value this version of the gateway does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// Parses a wire value; matching ignores ASCII case.
            pub fn from_wire(raw: &str) -> Self {
                $(
                    if raw.eq_ignore_ascii_case(stringify!($variant)) {
                        return Self::$variant;
                    }
                )+
                Self::Unknown(raw.to_owned())
            }

            /// Returns the wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                    Self::Unknown(raw) => raw,
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = serde_json::Value::deserialize(deserializer)?;
                Ok(match value {
                    serde_json::Value::String(raw) => Self::from_wire(&raw),
                    other => Self::Unknown(other.to_string()),
                })
            }
        }
    };
}

tolerant_enum!(
    /// Whether a machine's VDA is registered with a Delivery Controller.
    RegistrationState { Unregistered, Initializing, Registered, AgentError }
);

tolerant_enum!(
    /// State of a user session.
    SessionState { Connected, Active, Disconnected }
);

tolerant_enum!(
    /// State of an asynchronous job.
    JobStatus { NotStarted, InProgress, Complete, CompleteWithWarning, Failed, Canceled, NonTerminatingError }
);

tolerant_enum!(
    /// Kind of resources a delivery group delivers.
    DeliveryKind { DesktopsOnly, DesktopsAndApps, AppsOnly }
);

impl JobStatus {
    /// Returns whether the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Complete
                | JobStatus::CompleteWithWarning
                | JobStatus::Failed
                | JobStatus::Canceled
        )
    }
}

/// Deserializes `null` as the type's default, because the API sends `null` for empty lists.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One page of a collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Collection<T> {
    /// Items of the page.
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub items: Vec<T>,
    /// Token of the next page; the response key is PascalCase while the request parameter is
    /// camelCase `continuationToken` (Citrix paging guide).
    #[serde(default)]
    pub continuation_token: Option<String>,
    /// Items in the whole collection, when the server counts them.
    #[serde(default)]
    pub total_items: Option<i64>,
}

impl<T> Collection<T> {
    /// Returns the items and the next cursor, treating an empty token as the last page.
    pub fn into_page(self) -> (Vec<T>, Option<String>) {
        let next = self.continuation_token.filter(|token| !token.is_empty());
        (self.items, next)
    }
}

/// Reference to another object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ref {
    /// Object id.
    pub id: Option<String>,
    /// Object name.
    pub name: Option<String>,
}

/// Name and value pair, used for metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NameValue {
    /// Name.
    pub name: Option<String>,
    /// Value.
    pub value: Option<String>,
}

impl NameValue {
    /// Creates a pair.
    pub fn new(name: &str, value: &str) -> Self {
        Self {
            name: Some(name.to_owned()),
            value: Some(value.to_owned()),
        }
    }
}

/// Finds a metadata value by name, ignoring ASCII case of the name.
pub fn metadata_value<'a>(metadata: &'a [NameValue], name: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|pair| {
            pair.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|pair| pair.value.as_deref())
}

/// `GET me`: the caller and the customers and sites it can reach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Me {
    /// Caller's id.
    pub user_id: Option<String>,
    /// Caller's display name.
    pub display_name: Option<String>,
    /// Customers.
    #[serde(deserialize_with = "null_as_default")]
    pub customers: Vec<Customer>,
}

/// A customer in [`Me`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Customer {
    /// Customer id.
    pub id: Option<String>,
    /// Customer name.
    pub name: Option<String>,
    /// Sites.
    #[serde(deserialize_with = "null_as_default")]
    pub sites: Vec<Site>,
}

/// A site in [`Customer`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Site {
    /// Site id, sent as `Citrix-InstanceId`.
    pub id: Option<String>,
    /// Site name.
    pub name: Option<String>,
}

/// A delivery group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeliveryGroup {
    /// Id.
    pub id: Option<String>,
    /// Name, unique only within its admin folder.
    pub name: Option<String>,
    /// Name with the admin folder path, unique in the site.
    pub full_name: Option<String>,
    /// Kind of resources the group delivers.
    pub delivery_type: Option<DeliveryKind>,
    /// Whether users are barred from connecting to the group's machines.
    pub in_maintenance_mode: Option<bool>,
    /// Whether the group is enabled.
    pub enabled: Option<bool>,
    /// Machines in the group.
    pub total_desktops: Option<u64>,
}

impl DeliveryGroup {
    /// Returns the group's name for messages: the full name, else the name, else the id.
    pub fn display(&self) -> &str {
        self.full_name
            .as_deref()
            .or(self.name.as_deref())
            .or(self.id.as_deref())
            .unwrap_or("(unnamed)")
    }

    /// Returns whether applications can be published to the group; only `DesktopsOnly` cannot,
    /// and an unknown kind is given the benefit of the doubt.
    pub fn delivers_apps(&self) -> bool {
        !matches!(self.delivery_type, Some(DeliveryKind::DesktopsOnly))
    }
}

/// A machine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Machine {
    /// Id.
    pub id: Option<String>,
    /// Name, `DOMAIN\NAME`.
    pub name: Option<String>,
    /// DNS name.
    pub dns_name: Option<String>,
    /// Delivery group.
    pub delivery_group: Option<Ref>,
    /// Whether the machine accepts no new sessions.
    pub in_maintenance_mode: Option<bool>,
    /// Whether the machine shuts down once its sessions end.
    pub draining_until_shutdown: Option<bool>,
    /// Whether the machine shuts down after its current use.
    pub will_shutdown_after_use: Option<bool>,
    /// Registration of its VDA.
    pub registration_state: Option<RegistrationState>,
    /// Tag names (or ids on some servers).
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// A user as the API reports it; which name fields are set varies with the identity provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IdentityUser {
    /// `DOMAIN\user`.
    pub sam_name: Option<String>,
    /// User principal name.
    pub principal_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// A session.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Session {
    /// Id.
    pub id: Option<String>,
    /// State.
    pub state: Option<SessionState>,
    /// Machine the session runs on.
    pub machine: Option<Ref>,
    /// User.
    pub user: Option<IdentityUser>,
    /// `DOMAIN\user` as the client sent it.
    pub untrusted_user_name: Option<String>,
}

impl Session {
    /// Returns the best user name available.
    pub fn user_name(&self) -> String {
        let user = self.user.as_ref();
        user.and_then(|u| u.sam_name.clone())
            .or_else(|| user.and_then(|u| u.principal_name.clone()))
            .or_else(|| self.untrusted_user_name.clone())
            .or_else(|| user.and_then(|u| u.name.clone()))
            .or_else(|| user.and_then(|u| u.display_name.clone()))
            .unwrap_or_default()
    }
}

/// A site tag.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Tag {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Machines carrying the tag.
    pub num_machines: Option<i64>,
    /// Application groups restricted to the tag.
    pub num_application_groups: Option<i64>,
}

/// A delivery group an application group is in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GroupDeliveryGroupRef {
    /// The delivery group.
    pub item: Option<Ref>,
    /// Priority.
    pub priority: Option<i64>,
    /// Id, on servers that flatten the reference.
    pub id: Option<String>,
    /// Name, on servers that flatten the reference.
    pub name: Option<String>,
}

impl GroupDeliveryGroupRef {
    /// Returns the delivery group's id, else its name.
    pub fn key(&self) -> Option<&str> {
        let item = self.item.as_ref();
        item.and_then(|r| r.id.as_deref())
            .or(self.id.as_deref())
            .or_else(|| item.and_then(|r| r.name.as_deref()))
            .or(self.name.as_deref())
    }
}

/// An application group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApplicationGroup {
    /// Id.
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Whether the group is enabled.
    pub enabled: Option<bool>,
    /// Metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: Vec<NameValue>,
    /// Tag machines must carry to launch the group's applications.
    pub restrict_to_tag: Option<Ref>,
    /// Delivery groups.
    #[serde(deserialize_with = "null_as_default")]
    pub delivery_groups: Vec<GroupDeliveryGroupRef>,
    /// Applications in the group.
    pub num_applications: Option<i64>,
}

/// Command line of an installed application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstalledApp {
    /// Executable.
    pub command_line_executable: Option<String>,
    /// Arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_line_arguments: Option<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

/// An application.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Application {
    /// Id.
    pub id: Option<String>,
    /// Administrative name.
    pub name: Option<String>,
    /// Name users see.
    pub published_name: Option<String>,
    /// Whether users can launch it.
    pub enabled: Option<bool>,
    /// Command line.
    pub installed_app_properties: Option<InstalledApp>,
    /// Metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: Vec<NameValue>,
    /// Ids of the application groups it is in.
    #[serde(deserialize_with = "null_as_default")]
    pub associated_application_group_uuids: Vec<String>,
}

/// An asynchronous job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    /// Id.
    pub id: Option<String>,
    /// Type, for example `AddApplications`.
    #[serde(rename = "Type")]
    pub job_type: Option<serde_json::Value>,
    /// Status.
    pub status: Option<JobStatus>,
    /// Error text.
    pub error_string: Option<String>,
    /// Error code, an enum of about 194 values.
    pub error_code: Option<serde_json::Value>,
    /// Error details, with `ErrorDetails` the most useful.
    #[serde(deserialize_with = "null_as_default")]
    pub error_parameters: Vec<NameValue>,
}

impl Job {
    /// Returns the job's error text: the `ErrorDetails` parameter, else `ErrorString`, else
    /// the error code (Terraform's Citrix provider reads them in this order).
    pub fn error_text(&self) -> String {
        if let Some(details) = metadata_value(&self.error_parameters, "ErrorDetails") {
            return details.trim().to_owned();
        }
        if let Some(text) = self.error_string.as_deref().filter(|s| !s.is_empty()) {
            return text.to_owned();
        }
        match &self.error_code {
            Some(serde_json::Value::String(code)) => code.clone(),
            Some(other) => other.to_string(),
            None => "no error details".to_owned(),
        }
    }

    /// Returns the job type for messages.
    pub fn type_name(&self) -> String {
        match &self.job_type {
            Some(serde_json::Value::String(name)) => name.clone(),
            Some(other) => other.to_string(),
            None => "job".to_owned(),
        }
    }
}

/// One request of a `$batch` call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchItem {
    /// Caller's key, echoed in the result.
    pub reference: String,
    /// HTTP method.
    pub method: String,
    /// URL starting with the version, `v1/{customerId}/{siteId}/...`.
    pub relative_url: String,
    /// Headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NameValue>,
    /// Body, as a JSON string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Result of one request of a `$batch` call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchResultItem {
    /// The request's reference.
    pub reference: Option<String>,
    /// HTTP status of the request.
    pub code: Option<u16>,
    /// Response headers.
    #[serde(deserialize_with = "null_as_default")]
    pub headers: Vec<NameValue>,
    /// Response body.
    pub body: Option<String>,
}

/// Results of a `$batch` call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchResults {
    /// One entry per request.
    #[serde(deserialize_with = "null_as_default")]
    pub items: Vec<BatchResultItem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_registration_state_is_kept() {
        let machine: Machine =
            serde_json::from_str(r#"{"Id":"m1","RegistrationState":"HibernatedFuture"}"#)
                .expect("parses");
        assert_eq!(
            machine.registration_state,
            Some(RegistrationState::Unknown("HibernatedFuture".into()))
        );
    }

    #[test]
    fn server_unknown_maps_to_unknown() {
        assert_eq!(
            SessionState::from_wire("Unknown"),
            SessionState::Unknown("Unknown".into())
        );
    }

    #[test]
    fn numeric_enum_value_is_kept() {
        let session: Session = serde_json::from_str(r#"{"State":3}"#).expect("parses");
        assert_eq!(session.state, Some(SessionState::Unknown("3".into())));
    }

    #[test]
    fn unknown_fields_and_nulls_are_tolerated() {
        let page: Collection<Machine> = serde_json::from_str(
            r#"{"Items":[{"Id":"m1","Tags":null,"FutureField":{"a":1}}],
                "ContinuationToken":null,"TotalItems":1,"Extra":true}"#,
        )
        .expect("parses");
        let (items, next) = page.into_page();
        assert_eq!(items.len(), 1);
        assert!(items[0].tags.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn empty_continuation_token_ends_paging() {
        let page: Collection<Machine> =
            serde_json::from_str(r#"{"Items":[],"ContinuationToken":""}"#).expect("parses");
        assert_eq!(page.into_page().1, None);
    }

    #[test]
    fn job_error_prefers_error_details() {
        let job: Job = serde_json::from_str(
            r#"{"Id":"j","Status":"Failed","ErrorString":"generic",
                "ErrorParameters":[{"Name":"ErrorDetails","Value":"ErrorMessage : name in use\n"}]}"#,
        )
        .expect("parses");
        assert_eq!(job.error_text(), "ErrorMessage : name in use");
    }

    #[test]
    fn job_error_falls_back_to_string() {
        let job: Job =
            serde_json::from_str(r#"{"Status":"Failed","ErrorString":"generic"}"#).expect("parses");
        assert_eq!(job.error_text(), "generic");
    }

    #[test]
    fn desktops_only_group_delivers_no_apps() {
        let group: DeliveryGroup =
            serde_json::from_str(r#"{"DeliveryType":"DesktopsOnly"}"#).expect("parses");
        assert!(!group.delivers_apps());
    }

    #[test]
    fn group_ref_reads_nested_item() {
        let reference: GroupDeliveryGroupRef =
            serde_json::from_str(r#"{"Item":{"Id":"dg1","Name":"EHR"},"Priority":0}"#)
                .expect("parses");
        assert_eq!(reference.key(), Some("dg1"));
    }
}
