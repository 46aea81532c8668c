//! Checks that every object the Graph simulator returns uses only documented field names
//! and enum values, unless the `unknown_values` knob injects unknown ones.
//!
//! The tables list the fields of the Microsoft Graph v1.0 and beta references of each
//! resource that the gateway reads.
// NOTE: fields marked "not cross-checked" are standard Graph names that were not compared
// with the reference page of their resource.

mod graph_support;

use std::collections::BTreeSet;

use broker_sim::graph::{GraphFleet, Knobs, UNKNOWN_CLOUD_PC_STATUS, UNKNOWN_FIELD};
use graph_support::{start, win32_app, Client};
use reqwest::Method;
use serde_json::{json, Value};

const CLOUD_PC_V1: &[&str] = &[
    "id",
    "displayName",
    "aadDeviceId",
    "userPrincipalName",
    "managedDeviceId",
    "managedDeviceName",
    "provisioningPolicyId",
    "provisioningPolicyName",
    "servicePlanId",
    "servicePlanName",
    "provisioningType",
    "imageDisplayName",
    "lastModifiedDateTime",
    "gracePeriodEndDateTime",
];
const CLOUD_PC_BETA_ONLY: &[&str] = &[
    "status",
    "productType",
    "servicePlanType",
    "statusDetail",
    "lastRemoteActionResult",
    "provisionedDateTime",
    "userExperienceType",
    "disasterRecoveryCapability",
];
const STATUS_DETAIL: &[&str] = &["code", "message", "additionalInformation"];
const CLOUD_PC_STATUS: &[&str] = &[
    "notProvisioned",
    "provisioning",
    "provisioned",
    "inGracePeriod",
    "deprovisioning",
    "failed",
    "provisionedWithWarnings",
    "resizing",
    "restoring",
    "pendingProvision",
    "unknownFutureValue",
    "movingRegion",
    "resizePendingLicense",
    "modifyingSingleSignOn",
    "refreshPolicyConfiguration",
    "preparing",
];
const PRODUCT_TYPE: &[&str] = &[
    "enterprise",
    "frontline",
    "devBox",
    "powerAutomate",
    "business",
    "unknownFutureValue",
];
const PROVISIONING_TYPE: &[&str] = &["dedicated", "shared", "unknownFutureValue"];

const MANAGED_DEVICE_V1: &[&str] = &[
    "id",
    "deviceName",
    "managedDeviceName",
    "userId",
    "userPrincipalName",
    "serialNumber",
    "operatingSystem",
    "osVersion",
    "complianceState",
    "lastSyncDateTime",
    "enrolledDateTime",
    "managementAgent",
    "deviceEnrollmentType",
    "azureADDeviceId",
    "azureADRegistered",
    "deviceCategoryDisplayName",
    "model",
];
const MANAGED_DEVICE_BETA_ONLY: &[&str] = &["managementState"];
const COMPLIANCE_STATE: &[&str] = &[
    "unknown",
    "compliant",
    "noncompliant",
    "conflict",
    "error",
    "inGracePeriod",
    "configManager",
];

const WIN32_LOB_APP: &[&str] = &[
    // mobileApp base properties (not cross-checked: createdDateTime, lastModifiedDateTime).
    "@odata.type",
    "id",
    "displayName",
    "description",
    "publisher",
    "createdDateTime",
    "lastModifiedDateTime",
    "publishingState",
    // mobileLobApp and win32LobApp properties; fileName is not cross-checked.
    "committedContentVersion",
    "fileName",
    "installCommandLine",
    "uninstallCommandLine",
    "setupFilePath",
    "rules",
    "installExperience",
    "returnCodes",
    "msiInformation",
];
const INSTALL_EXPERIENCE: &[&str] = &["runAsAccount", "deviceRestartBehavior"];
const RESTART_BEHAVIOR: &[&str] = &["basedOnReturnCode", "allow", "suppress", "force"];
const RETURN_CODE_TYPE: &[&str] = &["failed", "success", "softReboot", "hardReboot", "retry"];
const ASSIGNMENT: &[&str] = &["@odata.type", "id", "intent", "target", "settings"];
const GROUP_TARGET: &[&str] = &["@odata.type", "groupId"];
const INTENT: &[&str] = &[
    "available",
    "required",
    "uninstall",
    "availableWithoutEnrollment",
];

/// Group fields of the `POST /groups` body; not cross-checked.
const GROUP: &[&str] = &[
    "id",
    "displayName",
    "description",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
];
/// Directory objects in member lists; displayName is not cross-checked.
const USER: &[&str] = &["@odata.type", "id", "displayName", "userPrincipalName"];
const DEVICE: &[&str] = &["@odata.type", "id", "deviceId", "displayName"];
/// Provisioning policy fields except the assignment target; not cross-checked.
const POLICY: &[&str] = &[
    "id",
    "displayName",
    "description",
    "imageDisplayName",
    "assignments",
];
const POLICY_ASSIGNMENT: &[&str] = &["id", "target"];
const COLLECTION: &[&str] = &["@odata.context", "@odata.nextLink", "@odata.count", "value"];

fn check_fields(object: &Value, allowed: &[&[&str]], what: &str) {
    let allowed: BTreeSet<&str> = allowed
        .iter()
        .flat_map(|table| table.iter().copied())
        .collect();
    for key in object
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object"))
        .keys()
    {
        assert!(
            allowed.contains(key.as_str()),
            "{what} has undocumented field '{key}'"
        );
    }
}

fn check_enum(value: &Value, allowed: &[&str], what: &str) {
    if value.is_null() {
        return;
    }
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string"));
    assert!(
        allowed.contains(&text),
        "{what} has undocumented value '{text}'"
    );
}

async fn all(client: &Client, path: &str) -> Vec<Value> {
    let (status, first) = client.get(path).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{path}");
    check_fields(&first, &[COLLECTION], path);
    client.get_all(path).await.0
}

#[tokio::test]
async fn cloud_pcs_match_reference() {
    let sim = start(GraphFleet::Hospital).await;
    let client = Client::connect(&sim).await;
    for pc in all(
        &client,
        "v1.0/deviceManagement/virtualEndpoint/cloudPCs?$top=999",
    )
    .await
    {
        check_fields(&pc, &[CLOUD_PC_V1], "v1.0 cloudPC");
        check_enum(
            &pc["provisioningType"],
            PROVISIONING_TYPE,
            "provisioningType",
        );
    }
    let beta = "beta/deviceManagement/virtualEndpoint/cloudPCs?$top=999";
    for pc in all(&client, beta).await {
        check_fields(&pc, &[CLOUD_PC_V1, CLOUD_PC_BETA_ONLY], "beta cloudPC");
        check_enum(&pc["status"], CLOUD_PC_STATUS, "status");
        check_enum(&pc["productType"], PRODUCT_TYPE, "productType");
        check_enum(
            &pc["servicePlanType"],
            &["enterprise", "business", "unknownFutureValue"],
            "servicePlanType",
        );
        if !pc["statusDetail"].is_null() {
            check_fields(&pc["statusDetail"], &[STATUS_DETAIL], "statusDetail");
        }
    }
}

#[tokio::test]
async fn intune_objects_match_reference() {
    let sim = start(GraphFleet::Hospital).await;
    let client = Client::connect(&sim).await;
    for version in ["v1.0", "beta"] {
        let path = format!("{version}/deviceManagement/managedDevices?$top=999");
        for device in all(&client, &path).await {
            check_fields(
                &device,
                &[
                    MANAGED_DEVICE_V1,
                    if version == "beta" {
                        MANAGED_DEVICE_BETA_ONLY
                    } else {
                        &[]
                    },
                ],
                "managedDevice",
            );
            check_enum(
                &device["complianceState"],
                COMPLIANCE_STATE,
                "complianceState",
            );
        }
    }

    let (_, app) = client
        .call(
            Method::POST,
            "v1.0/deviceAppManagement/mobileApps",
            Some(win32_app("Spec app")),
        )
        .await;
    check_fields(&app, &[WIN32_LOB_APP], "win32LobApp");
    check_fields(
        &app["installExperience"],
        &[INSTALL_EXPERIENCE],
        "installExperience",
    );
    check_enum(
        &app["installExperience"]["deviceRestartBehavior"],
        RESTART_BEHAVIOR,
        "deviceRestartBehavior",
    );
    for code in app["returnCodes"].as_array().unwrap() {
        check_enum(&code["type"], RETURN_CODE_TYPE, "returnCode type");
    }

    let id = app["id"].as_str().unwrap();
    let group = sim.snapshot().groups[0].id.clone();
    let body = json!({"mobileAppAssignments": [{"intent": "required", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}}]});
    client
        .call(
            Method::POST,
            &format!("v1.0/deviceAppManagement/mobileApps/{id}/assign"),
            Some(body),
        )
        .await;
    for assignment in all(
        &client,
        &format!("v1.0/deviceAppManagement/mobileApps/{id}/assignments"),
    )
    .await
    {
        check_fields(&assignment, &[ASSIGNMENT], "mobileAppAssignment");
        check_fields(&assignment["target"], &[GROUP_TARGET], "assignment target");
        check_enum(&assignment["intent"], INTENT, "intent");
    }
}

#[tokio::test]
async fn directory_objects_match_reference() {
    let sim = start(GraphFleet::Small).await;
    let client = Client::connect(&sim).await;
    for group in all(&client, "v1.0/groups").await {
        check_fields(&group, &[GROUP], "group");
    }
    for user in all(&client, "v1.0/users").await {
        check_fields(&user, &[USER], "user");
    }
    for device in all(&client, "v1.0/devices").await {
        check_fields(&device, &[DEVICE], "device");
    }
    let policies = all(
        &client,
        "v1.0/deviceManagement/virtualEndpoint/provisioningPolicies",
    )
    .await;
    for policy in policies {
        check_fields(&policy, &[POLICY], "provisioning policy");
        for assignment in policy["assignments"].as_array().unwrap() {
            check_fields(assignment, &[POLICY_ASSIGNMENT], "policy assignment");
            check_fields(
                &assignment["target"],
                &[GROUP_TARGET],
                "policy assignment target",
            );
        }
    }
}

#[tokio::test]
async fn unknown_values_are_the_only_exception() {
    let sim = start(GraphFleet::Small).await;
    sim.set_knobs(Knobs {
        unknown_values: true,
        ..Knobs::default()
    });
    let client = Client::connect(&sim).await;
    for pc in all(&client, "beta/deviceManagement/virtualEndpoint/cloudPCs").await {
        check_fields(
            &pc,
            &[CLOUD_PC_V1, CLOUD_PC_BETA_ONLY, &[UNKNOWN_FIELD]],
            "beta cloudPC",
        );
        assert_eq!(pc["status"], UNKNOWN_CLOUD_PC_STATUS);
    }
}
