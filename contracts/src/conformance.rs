//! Conformance suite: public async test functions that any provider, run against its simulator,
//! must pass. Each function panics with a message naming the broken expectation.
//!
//! A provider crate calls [`run_all`] from an integration test with a [`Fixture`] pointing at a
//! simulator it started.

use std::collections::HashSet;
use std::sync::Arc;

use crate::{
    Container, ContainerRef, ErrorKind, HealthStatus, Machine, MachineResult, PlaceRequest,
    Provider, UnplaceRequest,
};

/// What the suite needs to know about the provider and its simulator.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Provider under test, configured against its simulator.
    pub provider: Arc<dyn Provider>,
    /// Target id or name that has at least two machines in the ready state.
    pub target: String,
    /// Container to publish and place, at its first version.
    pub container: Container,
    /// A second version of the same container, for update and rollback.
    pub second_version: String,
}

impl Fixture {
    fn second(&self) -> Container {
        let mut container = self.container.clone();
        container.version = self.second_version.clone();
        container
    }
}

/// Runs every test of the suite in order.
pub async fn run_all(fixture: &Fixture) {
    describe_is_complete(fixture).await;
    check_reports_ok(fixture).await;
    targets_include_fixture(fixture).await;
    machines_page_to_the_end(fixture).await;
    unknown_target_is_not_found(fixture).await;
    publish_is_idempotent(fixture).await;
    place_then_observe(fixture).await;
    place_twice_writes_once(fixture).await;
    update_and_rollback(fixture).await;
    excluded_machines_are_reported(fixture).await;
    unplace_then_unpublish(fixture).await;
}

/// Lists every machine of the fixture's target by following cursors.
pub async fn all_machines(fixture: &Fixture) -> Vec<Machine> {
    let mut machines = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = fixture
            .provider
            .list_machines(&fixture.target, cursor.take())
            .await
            .unwrap_or_else(|e| panic!("list_machines({}) failed: {e}", fixture.target));
        machines.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return machines,
        }
    }
    panic!("list_machines did not reach the last page after 10000 pages");
}

async fn ready_machines(fixture: &Fixture, count: usize) -> Vec<String> {
    let ready: Vec<String> = all_machines(fixture)
        .await
        .into_iter()
        .filter(|m| m.state.exclusion_reason().is_none())
        .map(|m| m.id)
        .take(count)
        .collect();
    assert!(
        ready.len() == count,
        "fixture target {} needs {count} ready machines, found {}",
        fixture.target,
        ready.len()
    );
    ready
}

async fn observed_version(fixture: &Fixture, machine: &str) -> Option<String> {
    let observations = fixture
        .provider
        .observe(&fixture.target, &fixture.container.id)
        .await
        .unwrap_or_else(|e| panic!("observe failed: {e}"));
    observations
        .into_iter()
        .find(|o| o.machine == machine)
        .and_then(|o| o.version)
}

/// `describe` names a kind, a version, and positive limits.
pub async fn describe_is_complete(fixture: &Fixture) {
    let description = fixture.provider.describe();
    assert!(!description.kind.is_empty(), "describe().kind is empty");
    assert!(
        !description.version.is_empty(),
        "describe().version is empty"
    );
    assert!(
        description.limits.concurrency > 0,
        "limits.concurrency is 0"
    );
    assert!(description.limits.max_batch > 0, "limits.max_batch is 0");
    assert!(
        description.limits.requests_per_second > 0.0,
        "limits.requests_per_second is not positive"
    );
}

/// `check` authenticates against the simulator and reports `ok`.
pub async fn check_reports_ok(fixture: &Fixture) {
    let health = fixture
        .provider
        .check()
        .await
        .unwrap_or_else(|e| panic!("check failed: {e}"));
    assert_eq!(health.status, HealthStatus::Ok, "check: {}", health.detail);
}

/// `list_targets` contains the fixture's target by id or name.
pub async fn targets_include_fixture(fixture: &Fixture) {
    let targets = fixture
        .provider
        .list_targets()
        .await
        .unwrap_or_else(|e| panic!("list_targets failed: {e}"));
    assert!(
        targets
            .iter()
            .any(|t| t.id == fixture.target || t.name == fixture.target),
        "list_targets does not contain {}",
        fixture.target
    );
}

/// Paging reaches the last page, and every machine appears once.
pub async fn machines_page_to_the_end(fixture: &Fixture) {
    let machines = all_machines(fixture).await;
    assert!(
        !machines.is_empty(),
        "target {} has no machines",
        fixture.target
    );
    let ids: HashSet<&str> = machines.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        machines.len(),
        "a machine id appears on two pages"
    );
}

/// An unknown target is `not_found`, not an empty list.
pub async fn unknown_target_is_not_found(fixture: &Fixture) {
    let error = fixture
        .provider
        .list_machines("no-such-target-7f3a", None)
        .await
        .expect_err("list_machines on an unknown target succeeded");
    assert_eq!(error.kind, ErrorKind::NotFound, "unknown target: {error}");
}

/// Publishing twice creates the objects once: the second call makes no writes.
pub async fn publish_is_idempotent(fixture: &Fixture) {
    let provider = &fixture.provider;
    let first = provider
        .publish(&fixture.target, &fixture.container)
        .await
        .unwrap_or_else(|e| panic!("publish failed: {e}"));
    let second = provider
        .publish(&fixture.target, &fixture.container)
        .await
        .unwrap_or_else(|e| panic!("second publish failed: {e}"));
    assert!(
        second.writes.is_empty(),
        "second publish wrote {:?}",
        second.writes
    );
    assert_eq!(
        first.objects, second.objects,
        "publish returned other objects"
    );
}

/// A placed version is what `observe` reports afterwards.
pub async fn place_then_observe(fixture: &Fixture) {
    let machines = ready_machines(fixture, 2).await;
    let outcome = fixture
        .provider
        .place(&place_request(fixture, &fixture.container, &machines))
        .await
        .unwrap_or_else(|e| panic!("place failed: {e}"));
    assert_eq!(
        outcome.machines.len(),
        machines.len(),
        "one outcome per machine"
    );
    for machine_outcome in &outcome.machines {
        assert!(
            matches!(
                machine_outcome.result,
                MachineResult::Applied | MachineResult::Accepted
            ),
            "place {}: {:?}",
            machine_outcome.machine,
            machine_outcome.result
        );
    }
    if outcome
        .machines
        .iter()
        .all(|m| m.result == MachineResult::Applied)
    {
        for machine in &machines {
            assert_eq!(
                observed_version(fixture, machine).await.as_deref(),
                Some(fixture.container.version.as_str()),
                "observe after place on {machine}"
            );
        }
    }
}

/// Placing the same version again makes no broker writes.
pub async fn place_twice_writes_once(fixture: &Fixture) {
    let machines = ready_machines(fixture, 2).await;
    let request = place_request(fixture, &fixture.container, &machines);
    fixture
        .provider
        .place(&request)
        .await
        .unwrap_or_else(|e| panic!("place failed: {e}"));
    let again = fixture
        .provider
        .place(&request)
        .await
        .unwrap_or_else(|e| panic!("second place failed: {e}"));
    assert!(
        again.writes.is_empty(),
        "second place wrote {:?}",
        again.writes
    );
}

/// Moving to a second version and back leaves the first version placed.
pub async fn update_and_rollback(fixture: &Fixture) {
    let machines = ready_machines(fixture, 2).await;
    let second = fixture.second();
    fixture
        .provider
        .publish(&fixture.target, &second)
        .await
        .unwrap_or_else(|e| panic!("publish second version failed: {e}"));
    let forward = fixture
        .provider
        .place(&place_request(fixture, &second, &machines))
        .await
        .unwrap_or_else(|e| panic!("place second version failed: {e}"));
    let applied = forward
        .machines
        .iter()
        .all(|m| m.result == MachineResult::Applied);
    if applied {
        assert_eq!(
            observed_version(fixture, &machines[0]).await.as_deref(),
            Some(second.version.as_str()),
            "observe after update"
        );
    }
    fixture
        .provider
        .place(&place_request(fixture, &fixture.container, &machines))
        .await
        .unwrap_or_else(|e| panic!("rollback place failed: {e}"));
    if applied {
        assert_eq!(
            observed_version(fixture, &machines[0]).await.as_deref(),
            Some(fixture.container.version.as_str()),
            "observe after rollback"
        );
    }
}

/// Machines the provider reports as not ready come back `excluded`, never changed.
pub async fn excluded_machines_are_reported(fixture: &Fixture) {
    let excluded: Vec<String> = all_machines(fixture)
        .await
        .into_iter()
        .filter(|m| m.state.exclusion_reason().is_some())
        .map(|m| m.id)
        .collect();
    if excluded.is_empty() {
        return;
    }
    let outcome = fixture
        .provider
        .place(&place_request(fixture, &fixture.container, &excluded))
        .await
        .unwrap_or_else(|e| panic!("place on excluded machines failed: {e}"));
    for machine_outcome in &outcome.machines {
        assert!(
            matches!(machine_outcome.result, MachineResult::Excluded(_)),
            "machine {} is not ready but came back {:?}",
            machine_outcome.machine,
            machine_outcome.result
        );
    }
    assert!(
        outcome.writes.is_empty(),
        "excluded machines got writes {:?}",
        outcome.writes
    );
}

/// Unplacing withdraws the container, and unpublishing twice is not an error.
pub async fn unplace_then_unpublish(fixture: &Fixture) {
    let machines = ready_machines(fixture, 2).await;
    let outcome = fixture
        .provider
        .unplace(&UnplaceRequest {
            target: fixture.target.clone(),
            container_id: fixture.container.id.clone(),
            machines: machines.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("unplace failed: {e}"));
    if outcome
        .machines
        .iter()
        .all(|m| m.result == MachineResult::Applied)
    {
        for machine in &machines {
            assert_eq!(
                observed_version(fixture, machine).await,
                None,
                "observe after unplace"
            );
        }
    }
    for version in [&fixture.container.version, &fixture.second_version] {
        let reference = ContainerRef {
            id: fixture.container.id.clone(),
            version: version.clone(),
        };
        for attempt in 0..2 {
            fixture
                .provider
                .unpublish(&fixture.target, &reference)
                .await
                .unwrap_or_else(|e| panic!("unpublish {reference} (call {attempt}) failed: {e}"));
        }
    }
}

fn place_request(fixture: &Fixture, container: &Container, machines: &[String]) -> PlaceRequest {
    PlaceRequest {
        target: fixture.target.clone(),
        container: container.clone(),
        machines: machines.to_vec(),
        activation: crate::Activation::Immediate,
    }
}
