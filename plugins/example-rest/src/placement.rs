//! Placement: assigning a container version's app to machines, and withdrawing the container.

use std::collections::HashMap;

use vdi_plugin_sdk::contracts::{
    BrokerWrite, Container, MachineOutcome, MachineResult, PlaceOutcome, PlaceRequest,
    PlannedRequest, UnplaceRequest,
};
use vdi_plugin_sdk::{ProviderError, ProviderResult};

use crate::model::{app_name, parse_app_name, App, MachineBody};
use crate::provider::{to_machine, PortalProvider};

/// Ids of the apps of `container_id` among `apps`, with their versions.
fn container_apps<'a>(apps: &'a [App], container_id: &str) -> HashMap<&'a str, &'a str> {
    apps.iter()
        .filter_map(|app| {
            let (id, version) = parse_app_name(&app.name)?;
            (id == container_id).then_some((app.id.as_str(), version))
        })
        .collect()
}

/// Lists the group's machines, keyed by machine id.
async fn machines_by_id(
    provider: &PortalProvider,
    group: &str,
) -> ProviderResult<HashMap<String, MachineBody>> {
    let machines = provider.all_machines(group).await?;
    Ok(machines.into_iter().map(|m| (m.id.clone(), m)).collect())
}

/// Returns the machine when it may change, or the result that says why it may not.
fn changeable<'a>(
    machine: Option<&'a MachineBody>,
    group: &str,
    apps: &[App],
    id: &str,
) -> Result<&'a MachineBody, MachineResult> {
    let Some(machine) = machine else {
        let error = ProviderError::not_found(format!("machine {id} is not in group {group}"));
        return Err(MachineResult::Failed(error.to_body()));
    };
    let state = to_machine(machine.clone(), group, apps).state;
    match state.exclusion_reason() {
        Some(reason) => Err(MachineResult::Excluded(reason)),
        None => Ok(machine),
    }
}

/// Assigns the requested version's app to each machine and removes the container's other
/// versions from it. The version must be published on the target first.
pub(crate) async fn place(
    provider: &PortalProvider,
    request: &PlaceRequest,
) -> ProviderResult<PlaceOutcome> {
    let group = provider.resolve_group(&request.target).await?;
    let apps = provider.api.apps(&group.id).await?;
    let name = app_name(&request.container.id, &request.container.version);
    let wanted = apps.iter().find(|a| a.name == name).ok_or_else(|| {
        ProviderError::not_found(format!(
            "app {name} is not published to group {}; publish {}@{} on this target first",
            group.id, request.container.id, request.container.version
        ))
    })?;
    let versions = container_apps(&apps, &request.container.id);
    let machines = machines_by_id(provider, &group.id).await?;

    let mut outcome = PlaceOutcome::default();
    for id in &request.machines {
        let result = match changeable(machines.get(id), &group.id, &apps, id) {
            Ok(machine) => {
                place_one(
                    provider,
                    machine,
                    &wanted.id,
                    &versions,
                    &mut outcome.writes,
                )
                .await
            }
            Err(result) => result,
        };
        outcome.machines.push(MachineOutcome {
            machine: id.clone(),
            result,
        });
    }
    Ok(outcome)
}

/// Counts the writes `publish` and `place` would make for `container` on `machines`, reading
/// the Portal only. Machines that are missing or not changeable get no writes.
pub(crate) async fn plan(
    provider: &PortalProvider,
    target: &str,
    container: &Container,
    machine_ids: &[String],
) -> ProviderResult<Vec<PlannedRequest>> {
    let group = provider.resolve_group(target).await?;
    let apps = provider.api.apps(&group.id).await?;
    let name = app_name(&container.id, &container.version);
    let target_app = apps.iter().find(|a| a.name == name).map(|a| a.id.as_str());
    let versions = container_apps(&apps, &container.id);
    let machines = machines_by_id(provider, &group.id).await?;

    let mut assigns = 0u64;
    let mut unassigns = 0u64;
    for id in machine_ids {
        let Ok(machine) = changeable(machines.get(id), &group.id, &apps, id) else {
            continue;
        };
        let has_target_app = target_app.is_some_and(|w| machine.apps.iter().any(|a| a == w));
        if !has_target_app {
            assigns += 1;
        }
        let old = machine
            .apps
            .iter()
            .filter(|a| Some(a.as_str()) != target_app && versions.contains_key(a.as_str()))
            .count();
        unassigns += old as u64;
    }

    let mut planned = Vec::new();
    if target_app.is_none() {
        planned.push(request("create_app", "POST", "api/apps", 1));
    }
    planned.push(request(
        "assign_app",
        "PUT",
        "api/machines/{machine}/apps/{app}",
        assigns,
    ));
    planned.push(request(
        "unassign_app",
        "DELETE",
        "api/machines/{machine}/apps/{app}",
        unassigns,
    ));
    Ok(planned)
}

fn request(operation: &str, method: &str, path: &str, count: u64) -> PlannedRequest {
    PlannedRequest {
        operation: operation.into(),
        method: method.into(),
        path: path.into(),
        count,
        note: String::new(),
        batched: false,
    }
}

/// Assigns first and removes old versions second, so the machine always has one version.
async fn place_one(
    provider: &PortalProvider,
    machine: &MachineBody,
    wanted: &str,
    versions: &HashMap<&str, &str>,
    writes: &mut Vec<BrokerWrite>,
) -> MachineResult {
    if !machine.apps.iter().any(|a| a == wanted) {
        match provider.api.assign(&machine.id, wanted).await {
            Ok(write) => writes.push(write),
            Err(error) => return MachineResult::Failed(error.to_body()),
        }
    }
    for old in machine
        .apps
        .iter()
        .filter(|a| a.as_str() != wanted && versions.contains_key(a.as_str()))
    {
        match provider.api.unassign(&machine.id, old).await {
            Ok(write) => writes.extend(write),
            Err(error) => return MachineResult::Failed(error.to_body()),
        }
    }
    MachineResult::Applied
}

/// Removes every version of a container from each machine.
pub(crate) async fn unplace(
    provider: &PortalProvider,
    request: &UnplaceRequest,
) -> ProviderResult<PlaceOutcome> {
    let group = provider.resolve_group(&request.target).await?;
    let apps = provider.api.apps(&group.id).await?;
    let versions = container_apps(&apps, &request.container_id);
    let machines = machines_by_id(provider, &group.id).await?;

    let mut outcome = PlaceOutcome::default();
    for id in &request.machines {
        let result = match changeable(machines.get(id), &group.id, &apps, id) {
            Ok(machine) => unplace_one(provider, machine, &versions, &mut outcome.writes).await,
            Err(result) => result,
        };
        outcome.machines.push(MachineOutcome {
            machine: id.clone(),
            result,
        });
    }
    Ok(outcome)
}

async fn unplace_one(
    provider: &PortalProvider,
    machine: &MachineBody,
    versions: &HashMap<&str, &str>,
    writes: &mut Vec<BrokerWrite>,
) -> MachineResult {
    for app in machine
        .apps
        .iter()
        .filter(|a| versions.contains_key(a.as_str()))
    {
        match provider.api.unassign(&machine.id, app).await {
            Ok(write) => writes.extend(write),
            Err(error) => return MachineResult::Failed(error.to_body()),
        }
    }
    MachineResult::Applied
}
