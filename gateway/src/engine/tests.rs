//! Engine tests against the in-memory provider, driving passes directly.

use std::sync::Arc;

use vdi_contracts::{Activation, Container, Launch, MachineState, RolloutPolicy, TargetRef};

use super::{Engine, EngineSettings, ProviderEntry, ProviderSource, Registry};
use crate::model::{AssignmentSpec, AssignmentState};
use crate::store::{testing, PutOutcome, Store};
use crate::testing::MemoryProvider;

fn spec(version: &str, activation: Activation, rollout: RolloutPolicy) -> AssignmentSpec {
    AssignmentSpec {
        container: Container {
            id: "epic".into(),
            version: version.into(),
            display_name: None,
            launch: Launch {
                executable: "player.exe".into(),
                arguments: Some(format!("epic {version}")),
                working_directory: None,
            },
        },
        targets: vec![TargetRef {
            provider: "mem".into(),
            target: "EHR Clinicians".into(),
        }],
        activation,
        rollout,
        window: None,
    }
}

fn engine(store: Store, provider: Arc<MemoryProvider>) -> Engine {
    let registry = Registry::new(vec![ProviderEntry::new(
        "mem",
        "memory",
        "test",
        ProviderSource::Builtin,
        provider,
    )])
    .expect("registry");
    let settings = EngineSettings {
        deferred_recheck: std::time::Duration::ZERO,
        ..EngineSettings::default()
    };
    Engine::new(store, Arc::new(registry), settings)
}

async fn passes(engine: &Engine, count: usize) {
    for _ in 0..count {
        engine.pass().await.expect("pass");
    }
}

async fn state(store: &Store, id: &str) -> AssignmentState {
    store.assignment(id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn deferred_machines_hold_wave() {
    for store in testing::all().await {
        let provider = Arc::new(MemoryProvider::new(10, 2));
        provider.with(|s| s.machines.get_mut("m009").unwrap().state = MachineState::Maintenance);
        let engine = engine(store.clone(), provider.clone());
        store
            .put_assignment(
                "a1",
                &spec("1.0", Activation::WhenIdle, RolloutPolicy::default()),
                "cp",
            )
            .await
            .unwrap();
        passes(&engine, 2).await;

        assert_eq!(
            state(&store, "a1").await,
            AssignmentState::RollingOut,
            "deferred machines hold the wave"
        );
        let (progress, _) = store.progress("a1").await.unwrap();
        assert_eq!(progress.applied, 7);
        assert_eq!(progress.deferred, 2);
        assert_eq!(progress.excluded, 1);
        assert!(
            store.audit_count().await.unwrap() >= 8,
            "publish and 7 tags audited"
        );

        provider.with(|s| s.machines.values_mut().for_each(|m| m.sessions.clear()));
        passes(&engine, 1).await;
        assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
    }
}

#[tokio::test]
async fn deferred_apply_after_logoff() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(4, 2));
    let engine = engine(store.clone(), provider.clone());
    store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::WhenIdle, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    passes(&engine, 1).await;
    provider.with(|s| s.machines.values_mut().for_each(|m| m.sessions.clear()));
    passes(&engine, 1).await;
    let (progress, _) = store.progress("a1").await.unwrap();
    assert_eq!(progress.applied, 4);
    assert_eq!(progress.deferred, 0);
}

#[tokio::test]
async fn waves_advance_one_per_pass() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(10, 0));
    let engine = engine(store.clone(), provider.clone());
    let rollout = RolloutPolicy {
        waves: vec![10.0, 50.0, 100.0],
        ..RolloutPolicy::default()
    };
    store
        .put_assignment("a1", &spec("1.0", Activation::Immediate, rollout), "cp")
        .await
        .unwrap();
    let mut applied = Vec::new();
    for _ in 0..3 {
        passes(&engine, 1).await;
        applied.push(store.progress("a1").await.unwrap().0.applied);
    }
    assert_eq!(applied, [1, 5, 10]);
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
}

#[tokio::test]
async fn failures_over_budget_roll_back() {
    for store in testing::all().await {
        let provider = Arc::new(MemoryProvider::new(10, 0));
        let engine = engine(store.clone(), provider.clone());
        let rollout = RolloutPolicy {
            waves: vec![50.0, 100.0],
            max_failure_percent: 10.0,
            auto_rollback: true,
            ..RolloutPolicy::default()
        };
        store
            .put_assignment(
                "a1",
                &spec("1.0", Activation::Immediate, rollout.clone()),
                "cp",
            )
            .await
            .unwrap();
        passes(&engine, 3).await;
        assert_eq!(state(&store, "a1").await, AssignmentState::Converged);

        provider.with(|s| {
            s.failing = s.machines.keys().cloned().collect();
        });
        store
            .put_assignment("a1", &spec("2.0", Activation::Immediate, rollout), "cp")
            .await
            .unwrap();
        passes(&engine, 1).await;
        let rolled = store.assignment("a1").await.unwrap().unwrap();
        assert_eq!(rolled.state, AssignmentState::RollingBack);
        assert_eq!(rolled.spec.container.version, "1.0");
        assert_eq!(rolled.actor, "engine");

        provider.with(|s| s.failing.clear());
        passes(&engine, 2).await;
        assert_eq!(state(&store, "a1").await, AssignmentState::RolledBack);
        let versions: Vec<String> = provider.with(|s| {
            s.machines
                .values()
                .flat_map(|m| m.containers.iter().map(|c| c.version.clone()))
                .collect()
        });
        assert!(versions.iter().all(|v| v == "1.0"), "{versions:?}");
    }
}

#[tokio::test]
async fn auto_rollback_never_returns_to_left_version() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(4, 0));
    let engine = engine(store.clone(), provider.clone());
    let rollout = RolloutPolicy {
        max_failure_percent: 10.0,
        auto_rollback: true,
        ..RolloutPolicy::default()
    };
    let put = |version: &'static str| {
        let store = store.clone();
        let rollout = rollout.clone();
        async move {
            store
                .put_assignment("a1", &spec(version, Activation::Immediate, rollout), "cp")
                .await
                .unwrap();
        }
    };
    put("1.0").await;
    passes(&engine, 2).await;
    provider.with(|s| s.failing = s.machines.keys().cloned().collect());
    put("2.0").await;
    passes(&engine, 1).await;
    provider.with(|s| s.failing.clear());
    passes(&engine, 2).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::RolledBack);

    // A same-version PUT keeps the rollback in force; when its placements fail, the engine
    // must not roll back to 2.0, the version the rollback left.
    provider.with(|s| {
        for machine in s.machines.values_mut() {
            machine.containers.clear();
        }
        s.failing = s.machines.keys().cloned().collect();
    });
    let wider = RolloutPolicy {
        waves: vec![50.0, 100.0],
        ..rollout.clone()
    };
    store
        .put_assignment("a1", &spec("1.0", Activation::Immediate, wider), "cp")
        .await
        .unwrap();
    passes(&engine, 1).await;
    let paused = store.assignment("a1").await.unwrap().unwrap();
    assert_eq!(paused.state, AssignmentState::Paused, "{}", paused.detail);
    assert_eq!(paused.spec.container.version, "1.0");
    assert!(
        paused.detail.contains("not rolled back"),
        "{}",
        paused.detail
    );
}

#[tokio::test]
async fn failures_without_auto_rollback_pause() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(4, 0));
    provider.with(|s| {
        s.failing.insert("m000".into());
    });
    let engine = engine(store.clone(), provider.clone());
    store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::Immediate, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    passes(&engine, 1).await;
    let paused = store.assignment("a1").await.unwrap().unwrap();
    assert_eq!(paused.state, AssignmentState::Paused);
    assert!(paused.detail.contains("1 of 4"), "{}", paused.detail);
}

#[tokio::test]
async fn update_retires_versions_beyond_rollback() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(3, 0));
    let engine = engine(store.clone(), provider.clone());
    for version in ["1.0", "2.0", "3.0"] {
        store
            .put_assignment(
                "a1",
                &spec(version, Activation::Immediate, RolloutPolicy::default()),
                "cp",
            )
            .await
            .unwrap();
        passes(&engine, 2).await;
    }
    let published: Vec<String> =
        provider.with(|s| s.published.iter().map(|p| p.1.clone()).collect());
    assert_eq!(published, ["epic@2.0", "epic@3.0"]);
}

#[tokio::test]
async fn removal_cleans_broker() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(5, 0));
    let engine = engine(store.clone(), provider.clone());
    store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::Immediate, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    passes(&engine, 2).await;
    let assignment = store.assignment("a1").await.unwrap().unwrap();
    store
        .set_assignment_state("a1", assignment.revision, AssignmentState::Removing, "")
        .await
        .unwrap();
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::Removed);
    assert!(provider.with(|s| s.published.is_empty()));
    assert!(provider.with(|s| s.machines.values().all(|m| m.containers.is_empty())));
    let after = store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::Immediate, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    assert!(
        matches!(after, PutOutcome::Changed(_)),
        "a removed assignment can be recreated"
    );
}

#[tokio::test]
async fn interrupted_intent_is_superseded() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(3, 0));
    let engine = engine(store.clone(), provider.clone());
    store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::Immediate, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    // A publish that reached the broker, then the gateway died before recording the outcome.
    store
        .begin_intent(
            "a1",
            1,
            "mem",
            "EHR Clinicians",
            "publish",
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    let container = spec("1.0", Activation::Immediate, RolloutPolicy::default()).container;
    vdi_contracts::Provider::publish(provider.as_ref(), "dg-1", &container)
        .await
        .unwrap();

    assert_eq!(engine.recover().await.unwrap(), 1);
    passes(&engine, 2).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
    assert_eq!(
        provider.with(|s| s.creations),
        1,
        "no duplicate broker object"
    );
    assert!(store.pending_intents().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_target_is_reported() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(3, 0));
    let engine = engine(store.clone(), provider.clone());
    let mut body = spec("1.0", Activation::Immediate, RolloutPolicy::default());
    body.targets[0].target = "No Such Group".into();
    store.put_assignment("a1", &body, "cp").await.unwrap();
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::RollingOut);
    assert_eq!(provider.with(|s| s.creations), 0);
}

fn engine_with(
    store: Store,
    provider: Arc<MemoryProvider>,
    clock: Arc<super::ManualClock>,
    freezes: Vec<crate::config::FreezeConfig>,
) -> Engine {
    let registry = Registry::new(vec![ProviderEntry::new(
        "mem",
        "memory",
        "prod",
        ProviderSource::Builtin,
        provider,
    )])
    .expect("registry");
    let settings = EngineSettings {
        deferred_recheck: std::time::Duration::ZERO,
        clock,
        freezes,
        ..EngineSettings::default()
    };
    Engine::new(store, Arc::new(registry), settings)
}

fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn window_opens_during_rollout() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(4, 0));
    // Friday 2026-12-04 12:00 in Chicago; the window is Saturday 01:00 to 05:00 local.
    let clock = Arc::new(super::ManualClock::new(utc("2026-12-04T18:00:00Z")));
    let engine = engine_with(store.clone(), provider.clone(), clock.clone(), Vec::new());
    let mut body = spec("1.0", Activation::Immediate, RolloutPolicy::default());
    body.window = Some(vdi_contracts::Window {
        timezone: "America/Chicago".into(),
        allow: vec![vdi_contracts::WindowRule {
            days: vec![vdi_contracts::Weekday::Sat],
            start: "01:00".into(),
            end: "05:00".into(),
        }],
    });
    store.put_assignment("a1", &body, "cp").await.unwrap();
    passes(&engine, 2).await;
    let waiting = store.assignment("a1").await.unwrap().unwrap();
    assert_eq!(waiting.state, AssignmentState::WaitingForWindow);
    assert!(
        waiting.detail.contains("2026-12-05T07:00:00"),
        "{}",
        waiting.detail
    );
    assert_eq!(
        provider.with(|s| s.creations),
        0,
        "nothing is written outside the window"
    );

    // Saturday 02:00 CST.
    clock.set(utc("2026-12-05T08:00:00Z"));
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
    assert_eq!(store.progress("a1").await.unwrap().0.applied, 4);
}

#[tokio::test]
async fn freeze_blocks_until_override() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(3, 0));
    let clock = Arc::new(super::ManualClock::new(utc("2026-12-08T12:00:00Z")));
    let freeze = crate::config::FreezeConfig {
        name: "ehr-go-live".into(),
        start: utc("2026-12-07T00:00:00Z"),
        end: utc("2026-12-14T00:00:00Z"),
        providers: Vec::new(),
        environments: vec!["prod".into()],
        reason: "clinical go-live week".into(),
    };
    let engine = engine_with(store.clone(), provider.clone(), clock.clone(), vec![freeze]);
    store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::Immediate, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    passes(&engine, 1).await;
    let frozen = store.assignment("a1").await.unwrap().unwrap();
    assert_eq!(frozen.state, AssignmentState::WaitingForWindow);
    assert!(frozen.detail.contains("ehr-go-live"), "{}", frozen.detail);
    assert_eq!(provider.with(|s| s.creations), 0);

    store
        .add_freeze_override(
            "a1",
            frozen.revision,
            "ehr-go-live",
            "admin",
            "EHR security fix",
        )
        .await
        .unwrap();
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
    let audit = store
        .audit(&crate::store::AuditQuery {
            assignment: Some("a1".into()),
            limit: 100,
            ..crate::store::AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(audit
        .iter()
        .any(|r| r.operation == "freeze_override" && r.actor == "admin"));
}

#[tokio::test]
async fn freeze_ends_by_itself() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(2, 0));
    let clock = Arc::new(super::ManualClock::new(utc("2026-12-13T23:00:00Z")));
    let freeze = crate::config::FreezeConfig {
        name: "go-live".into(),
        start: utc("2026-12-07T00:00:00Z"),
        end: utc("2026-12-14T00:00:00Z"),
        providers: vec!["*".into()],
        environments: Vec::new(),
        reason: String::new(),
    };
    let engine = engine_with(store.clone(), provider.clone(), clock.clone(), vec![freeze]);
    store
        .put_assignment(
            "a1",
            &spec("1.0", Activation::Immediate, RolloutPolicy::default()),
            "cp",
        )
        .await
        .unwrap();
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::WaitingForWindow);
    clock.advance(chrono::Duration::hours(2));
    passes(&engine, 1).await;
    assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
}

#[tokio::test]
async fn pause_between_waves_uses_clock() {
    let store = testing::sqlite().await;
    let provider = Arc::new(MemoryProvider::new(10, 0));
    let clock = Arc::new(super::ManualClock::new(utc("2026-12-04T18:00:00Z")));
    let engine = engine_with(store.clone(), provider.clone(), clock.clone(), Vec::new());
    let rollout = RolloutPolicy {
        waves: vec![20.0, 100.0],
        pause_seconds: 600,
        ..RolloutPolicy::default()
    };
    store
        .put_assignment("a1", &spec("1.0", Activation::Immediate, rollout), "cp")
        .await
        .unwrap();
    passes(&engine, 3).await;
    assert_eq!(
        store.progress("a1").await.unwrap().0.applied,
        2,
        "second wave waits"
    );
    clock.advance(chrono::Duration::seconds(601));
    passes(&engine, 2).await;
    assert_eq!(store.progress("a1").await.unwrap().0.applied, 10);
}

#[tokio::test]
async fn dropped_target_is_withdrawn() {
    let store = testing::sqlite().await;
    let first = Arc::new(MemoryProvider::new(3, 0));
    let second = Arc::new(MemoryProvider::new(2, 0));
    let registry = Registry::new(vec![
        ProviderEntry::new(
            "mem",
            "memory",
            "test",
            ProviderSource::Builtin,
            first.clone(),
        ),
        ProviderEntry::new(
            "mem2",
            "memory",
            "test",
            ProviderSource::Builtin,
            second.clone(),
        ),
    ])
    .unwrap();
    let engine = Engine::new(store.clone(), Arc::new(registry), EngineSettings::default());
    let mut both = spec("1.0", Activation::Immediate, RolloutPolicy::default());
    both.targets.push(TargetRef {
        provider: "mem2".into(),
        target: "EHR Clinicians".into(),
    });
    store.put_assignment("a1", &both, "cp").await.unwrap();
    passes(&engine, 2).await;
    assert_eq!(store.progress("a1").await.unwrap().0.applied, 5);

    let one = spec("1.0", Activation::Immediate, RolloutPolicy::default());
    store.put_assignment("a1", &one, "cp").await.unwrap();
    passes(&engine, 2).await;
    assert!(
        second.with(|s| s.machines.values().all(|m| m.containers.is_empty())),
        "machines of the dropped target keep the container"
    );
    assert!(
        second.with(|s| s.published.is_empty()),
        "the dropped target keeps its objects"
    );
    let (progress, per_target) = store.progress("a1").await.unwrap();
    assert_eq!(progress.total, 3, "progress counts only the named targets");
    assert_eq!(per_target.len(), 1);
    assert_eq!(state(&store, "a1").await, AssignmentState::Converged);
}
