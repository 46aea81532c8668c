//! Placement by machine tags: a machine carries `{prefix}:{container}@{version}` for the version
//! it should launch, and the version's application group is restricted to that tag. Moving a
//! machine adds the new tag and removes the container's other tags, one POST or DELETE per tag
//! (never `PUT` with `DeleteTags`, which deletes a tag site-wide), grouped in `$batch` calls
//! when many.

use std::collections::HashMap;

use broker_http::BrokerRequest;
use futures::stream::{self, StreamExt};
use http::Method;
use vdi_contracts::{
    validate_identifier, validate_version, BrokerWrite, ErrorKind, MachineOutcome, MachineResult,
    Observation, PlaceOutcome, PlaceRequest, ProviderError, ProviderErrorBody, ProviderResult,
    UnplaceRequest,
};

use crate::client::write_record;
use crate::model;
use crate::naming::{segment, version_tag};
use crate::provider::{machine_state, CitrixProvider, ResolvedGroup};

/// One tag write on one machine.
#[derive(Debug, Clone)]
struct TagWrite {
    /// Index of the machine in the request.
    slot: usize,
    machine_id: String,
    method: Method,
    path: String,
}

impl TagWrite {
    fn operation(&self) -> &'static str {
        if self.method == Method::DELETE {
            "remove_machine_tag"
        } else {
            "add_machine_tag"
        }
    }
}

/// Result of one tag write.
struct WriteResult {
    write: BrokerWrite,
    result: ProviderResult<()>,
}

/// Decision for one requested machine.
enum Plan {
    Done(MachineResult),
    /// Same machine as an earlier slot; copies its result.
    SameAs(usize),
    Change {
        machine_id: String,
        path_name: String,
        add: bool,
        remove: Vec<String>,
    },
}

impl CitrixProvider {
    pub(crate) async fn observe_versions(
        &self,
        target: &str,
        container_id: &str,
    ) -> ProviderResult<Vec<Observation>> {
        let group = self.resolve_group(target).await?;
        let machines = self.api.group_machines(&group.id).await?;
        let names = self.tag_names(&machines).await?;
        let observations = machines
            .iter()
            .filter_map(|machine| {
                let id = machine.id.clone().or_else(|| machine.name.clone())?;
                let versions: Vec<String> = self
                    .gateway_tags(machine, &names)
                    .into_iter()
                    .filter(|(_, container)| container.id == container_id)
                    .map(|(_, container)| container.version)
                    .collect();
                if versions.len() > 1 {
                    tracing::warn!(machine = %id, versions = ?versions, "machine carries several versions of the container; reporting the first");
                }
                Some(Observation {
                    machine: id,
                    version: versions.into_iter().next(),
                    failure: None,
                })
            })
            .collect();
        Ok(observations)
    }

    pub(crate) async fn place_version(
        &self,
        request: &PlaceRequest,
    ) -> ProviderResult<PlaceOutcome> {
        let container = &request.container;
        validate_identifier("container.id", &container.id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        validate_version(&container.version).map_err(|e| ProviderError::invalid(e.to_string()))?;
        let wanted = version_tag(&self.settings.tag_prefix, &container.id, &container.version);
        let group = self.resolve_group(&request.target).await?;
        let machines = self.api.group_machines(&group.id).await?;
        let names = self.tag_names(&machines).await?;
        let plans = self.plan(
            &group,
            &machines,
            &names,
            &request.machines,
            &container.id,
            Some(&container.version),
        );

        let mut writes = Vec::new();
        let needs_tag = plans
            .iter()
            .any(|p| matches!(p, Plan::Change { add: true, .. }));
        let tag_ref = if needs_tag {
            match self.ensure_tag(&wanted, &mut writes).await {
                Ok(tag) => Some(tag),
                Err(error) => {
                    tracing::warn!(error = %error, tag = %wanted, "cannot create the version tag; no machine changed");
                    let body = error.to_body();
                    let failed = |_| MachineResult::Failed(body.clone());
                    return Ok(fold_outcomes(&plans, &request.machines, failed, writes));
                }
            }
        } else {
            None
        };
        let outcome = self
            .apply(plans, &request.machines, tag_ref.as_deref(), writes)
            .await;
        log_outcome("placed container version", &outcome);
        Ok(outcome)
    }

    pub(crate) async fn unplace_container(
        &self,
        request: &UnplaceRequest,
    ) -> ProviderResult<PlaceOutcome> {
        validate_identifier("container.id", &request.container_id)
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        let group = self.resolve_group(&request.target).await?;
        let machines = self.api.group_machines(&group.id).await?;
        let names = self.tag_names(&machines).await?;
        let plans = self.plan(
            &group,
            &machines,
            &names,
            &request.machines,
            &request.container_id,
            None,
        );
        let outcome = self.apply(plans, &request.machines, None, Vec::new()).await;
        log_outcome("withdrew container", &outcome);
        Ok(outcome)
    }

    /// Returns, per machine that would change, whether it gets the version's tag and how many
    /// other tags of the container it loses; for plans.
    pub(crate) fn tag_changes(
        &self,
        group: &ResolvedGroup,
        machines: &[model::Machine],
        names: &HashMap<String, String>,
        requested: &[String],
        container_id: &str,
        version: &str,
    ) -> Vec<(bool, usize)> {
        self.plan(
            group,
            machines,
            names,
            requested,
            container_id,
            Some(version),
        )
        .into_iter()
        .filter_map(|plan| match plan {
            Plan::Change { add, remove, .. } => Some((add, remove.len())),
            _ => None,
        })
        .collect()
    }

    /// Decides per requested machine: not found, excluded, already right, or which tags to add
    /// and remove. `version` is `None` to remove every version.
    fn plan(
        &self,
        group: &ResolvedGroup,
        machines: &[model::Machine],
        names: &HashMap<String, String>,
        requested: &[String],
        container_id: &str,
        version: Option<&str>,
    ) -> Vec<Plan> {
        let mut first_slot: HashMap<String, usize> = HashMap::new();
        let mut plans = Vec::with_capacity(requested.len());
        for (slot, wanted_machine) in requested.iter().enumerate() {
            let found = machines.iter().find(|m| {
                m.id.as_deref() == Some(wanted_machine.as_str())
                    || m.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(wanted_machine))
            });
            let Some(machine) = found else {
                let error = ProviderError::not_found(format!(
                    "machine {wanted_machine:?} is not in Citrix delivery group {}",
                    group.group.display()
                ));
                plans.push(Plan::Done(MachineResult::Failed(error.to_body())));
                continue;
            };
            let machine_id = machine.id.clone().unwrap_or_else(|| wanted_machine.clone());
            if let Some(first) = first_slot.get(&machine_id) {
                plans.push(Plan::SameAs(*first));
                continue;
            }
            first_slot.insert(machine_id.clone(), slot);
            if let Some(reason) = machine_state(machine, &group.group).exclusion_reason() {
                plans.push(Plan::Done(MachineResult::Excluded(reason)));
                continue;
            }
            let tags: Vec<(String, String)> = self
                .gateway_tags(machine, names)
                .into_iter()
                .filter(|(_, container)| container.id == container_id)
                .map(|(raw, container)| (raw, container.version))
                .collect();
            let add = version.is_some_and(|v| !tags.iter().any(|(_, have)| have == v));
            let remove: Vec<String> = tags
                .into_iter()
                .filter(|(_, have)| Some(have.as_str()) != version)
                .map(|(raw, _)| raw)
                .collect();
            if !add && remove.is_empty() {
                plans.push(Plan::Done(MachineResult::Applied));
                continue;
            }
            // The API takes `DOMAIN|NAME` or the id; the name keeps audit paths readable.
            let path_name = machine.name.clone().unwrap_or_else(|| machine_id.clone());
            plans.push(Plan::Change {
                machine_id,
                path_name,
                add,
                remove,
            });
        }
        plans
    }

    /// Ensures the site tag exists and returns the reference to use in paths (its id when the
    /// server returns one).
    pub(crate) async fn ensure_tag(
        &self,
        name: &str,
        writes: &mut Vec<BrokerWrite>,
    ) -> ProviderResult<String> {
        if let Some(tag) = self.api.tag(name).await? {
            return Ok(tag.id.unwrap_or_else(|| name.to_owned()));
        }
        let body = serde_json::json!({
            "Name": name,
            "Description": "Container version placed by the VDI broker gateway",
        });
        let request = BrokerRequest::post("Tags")
            .operation("create_tag")
            .json(body);
        let response = match self.api.send(request).await {
            Ok(response) => response,
            // Tags are site-wide and shared by every delivery group that publishes the
            // version, so a concurrent publish may create it first. The API then returns 409
            // ObjectAlreadyExists, and the tag is read back instead.
            Err(error) if error.kind == ErrorKind::Conflict => {
                if let Some(tag) = self.api.tag(name).await? {
                    tracing::debug!(tag = %name, "Citrix tag was created concurrently; using it");
                    return Ok(tag.id.unwrap_or_else(|| name.to_owned()));
                }
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        writes.push(write_record("create_tag", &response, None));
        tracing::info!(tag = %name, "created Citrix tag");
        let created: Option<model::Tag> = response.json().ok();
        if let Some(id) = created.and_then(|t| t.id) {
            return Ok(id);
        }
        let tag = self.api.tag(name).await?.ok_or_else(|| {
            ProviderError::unavailable(format!(
                "Citrix tag {name} was created but cannot be read back"
            ))
        })?;
        Ok(tag.id.unwrap_or_else(|| name.to_owned()))
    }

    /// Sends the planned tag writes and folds their results into one outcome per machine.
    async fn apply(
        &self,
        plans: Vec<Plan>,
        requested: &[String],
        add_tag: Option<&str>,
        mut writes: Vec<BrokerWrite>,
    ) -> PlaceOutcome {
        let mut tag_writes = Vec::new();
        for (slot, plan) in plans.iter().enumerate() {
            let Plan::Change {
                machine_id,
                path_name,
                add,
                remove,
            } = plan
            else {
                continue;
            };
            let machine_path = format!("Machines/{}/Tags", segment(path_name));
            // Add before remove, so the machine is never without a launchable version.
            if let (true, Some(tag)) = (*add, add_tag) {
                tag_writes.push(TagWrite {
                    slot,
                    machine_id: machine_id.clone(),
                    method: Method::POST,
                    path: format!("{machine_path}/{}", segment(tag)),
                });
            }
            for tag in remove {
                tag_writes.push(TagWrite {
                    slot,
                    machine_id: machine_id.clone(),
                    method: Method::DELETE,
                    path: format!("{machine_path}/{}", segment(tag)),
                });
            }
        }

        // Adds go first and removals only to machines whose add succeeded, so a machine whose
        // new tag was refused keeps its old version launchable.
        let batched = tag_writes.len() > self.settings.batch_threshold as usize;
        let (adds, removes): (Vec<TagWrite>, Vec<TagWrite>) = tag_writes
            .into_iter()
            .partition(|w| w.method != Method::DELETE);
        let mut failures: HashMap<usize, ProviderErrorBody> = HashMap::new();
        for phase in [adds, removes] {
            let phase: Vec<TagWrite> = phase
                .into_iter()
                .filter(|w| !failures.contains_key(&w.slot))
                .collect();
            if phase.is_empty() {
                continue;
            }
            let results = if batched {
                self.send_batched(&phase).await
            } else {
                self.send_each(&phase).await
            };
            for (tag_write, result) in phase.iter().zip(results) {
                writes.push(result.write);
                if let Err(error) = result.result {
                    tracing::warn!(machine = %tag_write.machine_id, error = %error, "Citrix tag write failed");
                    failures
                        .entry(tag_write.slot)
                        .or_insert_with(|| error.to_body());
                }
            }
        }
        fold_outcomes(
            &plans,
            requested,
            |slot| match failures.remove(&slot) {
                Some(body) => MachineResult::Failed(body),
                None => MachineResult::Applied,
            },
            writes,
        )
    }

    /// Sends each write on its own; machines run concurrently, a machine's writes in order.
    async fn send_each(&self, tag_writes: &[TagWrite]) -> Vec<WriteResult> {
        let concurrency = self.settings.concurrency.max(1) as usize;
        let mut indexed: Vec<(usize, WriteResult)> = stream::iter(group_by_slot(tag_writes))
            .map(|indices| async move {
                let mut done = Vec::with_capacity(indices.len());
                for index in indices {
                    done.push((index, self.send_one(&tag_writes[index]).await));
                }
                done
            })
            .buffer_unordered(concurrency)
            .flat_map(stream::iter)
            .collect()
            .await;
        indexed.sort_by_key(|(index, _)| *index);
        indexed.into_iter().map(|(_, result)| result).collect()
    }

    async fn send_one(&self, tag_write: &TagWrite) -> WriteResult {
        let request = BrokerRequest::new(tag_write.method.clone(), tag_write.path.clone())
            .operation(tag_write.operation())
            // Adding or removing one tag is a set operation, so repeating it is harmless.
            .idempotent(true);
        let machine = Some(tag_write.machine_id.as_str());
        match self.api.send(request).await {
            Ok(response) => WriteResult {
                write: write_record(tag_write.operation(), &response, machine),
                result: Ok(()),
            },
            Err(error) => WriteResult {
                write: unanswered_write(tag_write),
                result: tolerate_missing(tag_write, error),
            },
        }
    }

    async fn send_batched(&self, tag_writes: &[TagWrite]) -> Vec<WriteResult> {
        let mut results = Vec::with_capacity(tag_writes.len());
        for chunk in tag_writes.chunks(self.settings.batch_size.max(1) as usize) {
            let requests: Vec<(Method, String)> = chunk
                .iter()
                .map(|w| (w.method.clone(), w.path.clone()))
                .collect();
            match self.api.batch(&requests).await {
                Ok((_, outcomes)) => {
                    for (tag_write, outcome) in chunk.iter().zip(outcomes) {
                        let mut write = unanswered_write(tag_write);
                        write.status = outcome.status;
                        write.broker_request_id = outcome.request_id;
                        results.push(WriteResult {
                            write,
                            result: outcome
                                .result
                                .or_else(|error| tolerate_missing(tag_write, error)),
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, writes = chunk.len(), "Citrix batch call failed");
                    for tag_write in chunk {
                        results.push(WriteResult {
                            write: unanswered_write(tag_write),
                            result: Err(ProviderError::from(error.to_body())),
                        });
                    }
                }
            }
        }
        results
    }
}

/// Treats removing a tag the machine no longer has as done.
fn tolerate_missing(tag_write: &TagWrite, error: ProviderError) -> ProviderResult<()> {
    if tag_write.method == Method::DELETE && error.kind == ErrorKind::NotFound {
        return Ok(());
    }
    Err(error)
}

fn unanswered_write(tag_write: &TagWrite) -> BrokerWrite {
    BrokerWrite {
        operation: tag_write.operation().to_owned(),
        method: tag_write.method.to_string(),
        path: tag_write.path.clone(),
        machine: Some(tag_write.machine_id.clone()),
        status: None,
        broker_request_id: None,
    }
}

/// Groups write indices by machine slot, keeping each machine's order.
fn group_by_slot(tag_writes: &[TagWrite]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, tag_write) in tag_writes.iter().enumerate() {
        match groups.iter_mut().find(|(slot, _)| *slot == tag_write.slot) {
            Some((_, indices)) => indices.push(index),
            None => groups.push((tag_write.slot, vec![index])),
        }
    }
    groups.into_iter().map(|(_, indices)| indices).collect()
}

/// Builds one outcome per requested machine; `changed` gives the result of a planned change.
fn fold_outcomes(
    plans: &[Plan],
    requested: &[String],
    mut changed: impl FnMut(usize) -> MachineResult,
    writes: Vec<BrokerWrite>,
) -> PlaceOutcome {
    let mut results: Vec<MachineResult> = Vec::with_capacity(plans.len());
    for (slot, plan) in plans.iter().enumerate() {
        let result = match plan {
            Plan::Done(result) => result.clone(),
            Plan::SameAs(first) => results[*first].clone(),
            Plan::Change { .. } => changed(slot),
        };
        results.push(result);
    }
    PlaceOutcome {
        machines: requested
            .iter()
            .zip(results)
            .map(|(machine, result)| MachineOutcome {
                machine: machine.clone(),
                result,
            })
            .collect(),
        writes,
    }
}

fn log_outcome(message: &str, outcome: &PlaceOutcome) {
    let count = |wanted: fn(&MachineResult) -> bool| {
        outcome
            .machines
            .iter()
            .filter(|m| wanted(&m.result))
            .count()
    };
    tracing::info!(
        applied = count(|r| matches!(r, MachineResult::Applied)),
        excluded = count(|r| matches!(r, MachineResult::Excluded(_))),
        failed = count(|r| matches!(r, MachineResult::Failed(_))),
        writes = outcome.writes.len(),
        "{message}"
    );
}
