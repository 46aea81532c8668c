//! An in-memory provider for engine and API tests: machines with per-version tags, sessions,
//! states, injected failures and call counters.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use vdi_contracts::{
    BrokerWrite, Capability, Container, ContainerRef, Description, ErrorKind, Health, HealthStatus,
    Limits, Machine, MachineOutcome, MachineResult, MachineState, Observation, Page, PlaceOutcome,
    PlaceRequest, Provider, ProviderError, ProviderResult, Publication, Session, SessionState,
    Target, TargetKind, UnplaceRequest,
};

/// Mutable state of the memory broker.
#[derive(Debug, Default)]
pub struct MemoryState {
    /// Machines by id.
    pub machines: BTreeMap<String, Machine>,
    /// Published `(target, container@version)` objects.
    pub published: BTreeSet<(String, String)>,
    /// Machine ids whose placement fails.
    pub failing: HashSet<String>,
    /// Calls per operation.
    pub calls: BTreeMap<&'static str, u64>,
    /// Objects created, for duplicate detection.
    pub creations: u64,
}

/// In-memory provider with one target, `dg-1` named "EHR Clinicians".
#[derive(Debug)]
pub struct MemoryProvider {
    /// State, inspectable by tests.
    pub state: Mutex<MemoryState>,
    page_size: usize,
}

impl MemoryProvider {
    /// Creates `count` ready machines; `active` of them with an active session.
    pub fn new(count: usize, active: usize) -> Self {
        let mut state = MemoryState::default();
        for index in 0..count {
            let id = format!("m{index:03}");
            let sessions = if index < active {
                vec![Session {
                    user: format!("HOSP\\user{index}"),
                    state: SessionState::Active,
                }]
            } else {
                Vec::new()
            };
            state.machines.insert(
                id.clone(),
                Machine {
                    id: id.clone(),
                    name: format!("HOSP\\VDA-{index:03}"),
                    dns_name: None,
                    target: "dg-1".into(),
                    state: MachineState::Ready,
                    sessions,
                    containers: Vec::new(),
                },
            );
        }
        Self {
            state: Mutex::new(state),
            page_size: 4,
        }
    }

    /// Runs `change` on the state.
    pub fn with<R>(&self, change: impl FnOnce(&mut MemoryState) -> R) -> R {
        let mut state = self.state.lock().expect("memory provider state");
        change(&mut state)
    }

    fn count(&self, operation: &'static str) {
        self.with(|s| *s.calls.entry(operation).or_default() += 1);
    }

    fn check_target(target: &str) -> ProviderResult<()> {
        if target == "dg-1" || target == "EHR Clinicians" {
            Ok(())
        } else {
            Err(ProviderError::not_found(format!(
                "delivery group {target:?} not found"
            )))
        }
    }
}

fn write(operation: &str, path: String, machine: Option<String>) -> BrokerWrite {
    BrokerWrite {
        operation: operation.into(),
        method: "POST".into(),
        path,
        machine,
        status: Some(204),
        broker_request_id: Some("memory".into()),
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn describe(&self) -> Description {
        Description {
            kind: "memory".into(),
            version: "1".into(),
            capabilities: vec![Capability::PublishApp, Capability::TagMachines],
            limits: Limits {
                concurrency: 2,
                requests_per_second: 100.0,
                max_batch: 3,
            },
        }
    }

    async fn check(&self) -> ProviderResult<Health> {
        Ok(Health {
            status: HealthStatus::Ok,
            detail: "memory".into(),
            checked_at: chrono::Utc::now(),
        })
    }

    async fn list_targets(&self) -> ProviderResult<Vec<Target>> {
        let count = self.with(|s| s.machines.len()) as u64;
        Ok(vec![Target {
            id: "dg-1".into(),
            name: "EHR Clinicians".into(),
            kind: TargetKind::DeliveryGroup,
            machine_count: Some(count),
        }])
    }

    async fn list_machines(
        &self,
        target: &str,
        cursor: Option<String>,
    ) -> ProviderResult<Page<Machine>> {
        Self::check_target(target)?;
        self.count("list_machines");
        let start: usize = cursor.as_deref().unwrap_or("0").parse().unwrap_or(0);
        let machines: Vec<Machine> = self.with(|s| s.machines.values().cloned().collect());
        let end = (start + self.page_size).min(machines.len());
        Ok(Page {
            items: machines[start..end].to_vec(),
            next_cursor: (end < machines.len()).then(|| end.to_string()),
        })
    }

    async fn observe(&self, target: &str, container_id: &str) -> ProviderResult<Vec<Observation>> {
        Self::check_target(target)?;
        self.count("observe");
        Ok(self.with(|s| {
            s.machines
                .values()
                .map(|m| Observation {
                    machine: m.id.clone(),
                    version: m
                        .containers
                        .iter()
                        .find(|c| c.id == container_id)
                        .map(|c| c.version.clone()),
                    failure: None,
                })
                .collect()
        }))
    }

    async fn publish(&self, target: &str, container: &Container) -> ProviderResult<Publication> {
        Self::check_target(target)?;
        self.count("publish");
        let key = ("dg-1".to_owned(), container.reference().to_string());
        let created = self.with(|s| {
            let created = s.published.insert(key.clone());
            if created {
                s.creations += 1;
            }
            created
        });
        Ok(Publication {
            objects: vec![key.1.clone()],
            writes: if created {
                vec![write(
                    "create_application",
                    format!("Applications/{}", key.1),
                    None,
                )]
            } else {
                Vec::new()
            },
        })
    }

    async fn unpublish(
        &self,
        target: &str,
        container: &ContainerRef,
    ) -> ProviderResult<Publication> {
        Self::check_target(target)?;
        self.count("unpublish");
        let key = ("dg-1".to_owned(), container.to_string());
        let removed = self.with(|s| s.published.remove(&key));
        Ok(Publication {
            objects: Vec::new(),
            writes: if removed {
                vec![write(
                    "delete_application",
                    format!("Applications/{}", key.1),
                    None,
                )]
            } else {
                Vec::new()
            },
        })
    }

    async fn place(&self, request: &PlaceRequest) -> ProviderResult<PlaceOutcome> {
        Self::check_target(&request.target)?;
        self.count("place");
        let reference = request.container.reference();
        Ok(self.with(|s| {
            let mut outcome = PlaceOutcome::default();
            for id in &request.machines {
                let failing = s.failing.contains(id);
                let Some(machine) = s.machines.get_mut(id) else {
                    outcome.machines.push(MachineOutcome {
                        machine: id.clone(),
                        result: MachineResult::Failed(
                            ProviderError::not_found(format!("machine {id} not found")).to_body(),
                        ),
                    });
                    continue;
                };
                if let Some(reason) = machine.state.exclusion_reason() {
                    outcome.machines.push(MachineOutcome {
                        machine: id.clone(),
                        result: MachineResult::Excluded(reason),
                    });
                    continue;
                }
                if failing {
                    outcome.machines.push(MachineOutcome {
                        machine: id.clone(),
                        result: MachineResult::Failed(
                            ProviderError::new(ErrorKind::Conflict, "tag refused")
                                .with_retryable(false)
                                .to_body(),
                        ),
                    });
                    continue;
                }
                if !machine.containers.contains(&reference) {
                    machine.containers.retain(|c| c.id != reference.id);
                    machine.containers.push(reference.clone());
                    outcome.writes.push(write(
                        "add_machine_tag",
                        format!("Machines/{id}/Tags/{reference}"),
                        Some(id.clone()),
                    ));
                }
                outcome.machines.push(MachineOutcome {
                    machine: id.clone(),
                    result: MachineResult::Applied,
                });
            }
            outcome
        }))
    }

    async fn unplace(&self, request: &UnplaceRequest) -> ProviderResult<PlaceOutcome> {
        Self::check_target(&request.target)?;
        self.count("unplace");
        Ok(self.with(|s| {
            let mut outcome = PlaceOutcome::default();
            for id in &request.machines {
                if let Some(machine) = s.machines.get_mut(id) {
                    let before = machine.containers.len();
                    machine.containers.retain(|c| c.id != request.container_id);
                    if machine.containers.len() != before {
                        outcome.writes.push(write(
                            "remove_machine_tag",
                            format!("Machines/{id}/Tags"),
                            Some(id.clone()),
                        ));
                    }
                }
                outcome.machines.push(MachineOutcome {
                    machine: id.clone(),
                    result: MachineResult::Applied,
                });
            }
            outcome
        }))
    }
}
