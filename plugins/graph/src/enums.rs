//! Tolerant enums for Graph values.
//!
//! Graph enums grow without notice: `unknownFutureValue` is the sentinel, and members added
//! after it come back only with `Prefer: include-unknown-enum-members` (Graph beta
//! `cloudPC.status`, for example `movingRegion`). Every Graph enum here therefore keeps a value
//! it does not know as `Unknown(raw)` instead of failing the page. `unknownFutureValue` itself
//! is one of those unknown values.

/// Defines an enum of Graph wire values with an `Unknown(String)` fallback, serialized and
/// deserialized as the wire string.
#[macro_export]
macro_rules! graph_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )*
            /// A value this gateway does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// Returns the value for a wire string, `Unknown` for strings not listed.
            pub fn from_wire(raw: &str) -> Self {
                match raw {
                    $( $wire => Self::$variant, )*
                    other => Self::Unknown(other.to_owned()),
                }
            }

            /// Returns the wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(raw) => raw,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> Result<S::Ok, S::Error>
            where
                S: $crate::__private::serde::Serializer,
            {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
            where
                D: $crate::__private::serde::Deserializer<'de>,
            {
                let raw = <String as $crate::__private::serde::Deserialize>::deserialize(
                    deserializer,
                )?;
                Ok(Self::from_wire(&raw))
            }
        }
    };
}

graph_enum! {
    /// `cloudPcStatus` (Graph beta `cloudPC.status`).
    pub enum CloudPcStatus {
        /// Not provisioned.
        NotProvisioned = "notProvisioned",
        /// Being provisioned.
        Provisioning = "provisioning",
        /// Provisioned and usable.
        Provisioned = "provisioned",
        /// Licence or policy removed; deprovisioned when the grace period ends.
        InGracePeriod = "inGracePeriod",
        /// Being deprovisioned.
        Deprovisioning = "deprovisioning",
        /// Provisioning or another action failed.
        Failed = "failed",
        /// Provisioned, with warnings.
        ProvisionedWithWarnings = "provisionedWithWarnings",
        /// Being resized.
        Resizing = "resizing",
        /// Being restored from a snapshot.
        Restoring = "restoring",
        /// Waiting for provisioning.
        PendingProvision = "pendingProvision",
    }
}

graph_enum! {
    /// `cloudPcProductType` (Graph beta `cloudPC.productType`).
    pub enum CloudPcProductType {
        /// Windows 365 Enterprise.
        Enterprise = "enterprise",
        /// Windows 365 Frontline.
        Frontline = "frontline",
        /// Microsoft Dev Box.
        DevBox = "devBox",
        /// Windows 365 for Power Automate.
        PowerAutomate = "powerAutomate",
        /// Windows 365 Business.
        Business = "business",
    }
}

graph_enum! {
    /// `cloudPcProvisioningType` (Graph v1.0 `cloudPC.provisioningType`).
    pub enum ProvisioningType {
        /// One user per Cloud PC.
        Dedicated = "dedicated",
        /// Shared by several users.
        Shared = "shared",
    }
}

graph_enum! {
    /// `complianceState` (Graph v1.0 `managedDevice.complianceState`).
    pub enum ComplianceState {
        /// Not evaluated yet.
        NotEvaluated = "unknown",
        /// Compliant.
        Compliant = "compliant",
        /// Not compliant.
        Noncompliant = "noncompliant",
        /// Conflicting policies.
        Conflict = "conflict",
        /// Evaluation failed.
        Error = "error",
        /// Not compliant, inside its grace period.
        InGracePeriod = "inGracePeriod",
        /// Managed by Configuration Manager.
        ConfigManager = "configManager",
    }
}

graph_enum! {
    /// `managementState` (Graph beta `managedDevice.managementState`).
    pub enum ManagementState {
        /// Managed.
        Managed = "managed",
        /// A retire is pending.
        RetirePending = "retirePending",
        /// A wipe is pending.
        WipePending = "wipePending",
        /// Discovered, not managed.
        Discovered = "discovered",
    }
}

graph_enum! {
    /// `mobileAppPublishingState` (Graph v1.0 `mobileApp.publishingState`).
    pub enum PublishingState {
        /// Content not uploaded yet.
        NotPublished = "notPublished",
        /// Content being processed.
        Processing = "processing",
        /// Assignable.
        Published = "published",
    }
}

graph_enum! {
    /// `mobileAppContentFileUploadState` (Graph v1.0 `mobileAppContentFile.uploadState`).
    pub enum UploadState {
        /// No request in progress.
        Success = "success",
        /// A transient error; Intune may still move on.
        TransientError = "transientError",
        /// Failed.
        Error = "error",
        /// Intune itself reports the state as `unknown`.
        ReportedUnknown = "unknown",
        /// The storage URI is ready.
        AzureStorageUriRequestSuccess = "azureStorageUriRequestSuccess",
        /// The storage URI is being created.
        AzureStorageUriRequestPending = "azureStorageUriRequestPending",
        /// Creating the storage URI failed.
        AzureStorageUriRequestFailed = "azureStorageUriRequestFailed",
        /// Creating the storage URI timed out.
        AzureStorageUriRequestTimedOut = "azureStorageUriRequestTimedOut",
        /// A renewed storage URI is ready.
        AzureStorageUriRenewalSuccess = "azureStorageUriRenewalSuccess",
        /// The storage URI is being renewed.
        AzureStorageUriRenewalPending = "azureStorageUriRenewalPending",
        /// Renewing the storage URI failed.
        AzureStorageUriRenewalFailed = "azureStorageUriRenewalFailed",
        /// Renewing the storage URI timed out.
        AzureStorageUriRenewalTimedOut = "azureStorageUriRenewalTimedOut",
        /// The file is committed.
        CommitFileSuccess = "commitFileSuccess",
        /// The commit is being processed.
        CommitFilePending = "commitFilePending",
        /// The commit failed: the upload or the encryption info was rejected.
        CommitFileFailed = "commitFileFailed",
        /// The commit timed out.
        CommitFileTimedOut = "commitFileTimedOut",
    }
}

graph_enum! {
    /// `installIntent` (Graph v1.0 `mobileAppAssignment.intent`).
    pub enum InstallIntent {
        /// Offered in the company portal.
        Available = "available",
        /// Installed without user action.
        Required = "required",
        /// Removed.
        Uninstall = "uninstall",
        /// Offered without enrollment.
        AvailableWithoutEnrollment = "availableWithoutEnrollment",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip() {
        let status: CloudPcStatus = serde_json::from_str("\"provisioned\"").expect("parses");
        assert_eq!(status, CloudPcStatus::Provisioned);
        assert_eq!(
            serde_json::to_string(&status).expect("serializes"),
            "\"provisioned\""
        );
    }

    #[test]
    fn sentinel_and_later_members_are_unknown() {
        for raw in [
            "unknownFutureValue",
            "movingRegion",
            "modifyingSingleSignOn",
        ] {
            let status: CloudPcStatus =
                serde_json::from_value(serde_json::json!(raw)).expect("parses");
            assert_eq!(status, CloudPcStatus::Unknown(raw.to_owned()));
            assert_eq!(status.as_str(), raw);
        }
    }

    #[test]
    fn compliance_unknown_wire_value_is_a_member() {
        assert_eq!(
            ComplianceState::from_wire("unknown"),
            ComplianceState::NotEvaluated
        );
        assert_eq!(
            ComplianceState::from_wire("quarantined"),
            ComplianceState::Unknown("quarantined".into())
        );
    }
}
