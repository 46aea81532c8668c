//! Store tests, run on SQLite always and on PostgreSQL when `DATABASE_URL` is set.

use chrono::Utc;
use vdi_contracts::{Activation, Container, Launch, RolloutPolicy, TargetRef};

use super::testing;
use super::{AuditQuery, AuditRecord, IntentStatus, PutOutcome, TargetStatus};
use crate::model::{AssignmentSpec, AssignmentState, Placement, PlacementState};

fn spec(version: &str) -> AssignmentSpec {
    AssignmentSpec {
        container: Container {
            id: "epic-hyperspace".into(),
            version: version.into(),
            display_name: Some("Epic Hyperspace".into()),
            launch: Launch {
                executable: "C:\\Program Files\\Player\\player.exe".into(),
                arguments: Some(format!("--container epic-hyperspace --version {version}")),
                working_directory: None,
            },
        },
        targets: vec![TargetRef {
            provider: "citrix-prod".into(),
            target: "EHR Clinicians".into(),
        }],
        activation: Activation::WhenIdle,
        rollout: RolloutPolicy::default(),
        window: None,
    }
}

fn placement(machine: &str, rank: i64, state: PlacementState) -> Placement {
    Placement {
        provider: "citrix-prod".into(),
        target: "EHR Clinicians".into(),
        machine: machine.into(),
        machine_name: format!("HOSP\\{machine}"),
        rank,
        desired_version: "1.0".into(),
        applied_version: String::new(),
        state,
        detail: String::new(),
        updated_at: Utc::now(),
    }
}

#[tokio::test]
async fn put_creates_then_is_unchanged() {
    for store in testing::all().await {
        let first = store
            .put_assignment("a1", &spec("1.0"), "cp")
            .await
            .unwrap();
        let PutOutcome::Changed(created) = first else {
            panic!("first put: {first:?}");
        };
        assert_eq!(created.revision, 1);
        assert_eq!(created.state, AssignmentState::Pending);
        let again = store
            .put_assignment("a1", &spec("1.0"), "cp")
            .await
            .unwrap();
        assert!(matches!(again, PutOutcome::Unchanged(_)), "{again:?}");
    }
}

#[tokio::test]
async fn version_change_keeps_previous() {
    for store in testing::all().await {
        store
            .put_assignment("a1", &spec("1.0"), "cp")
            .await
            .unwrap();
        let PutOutcome::Changed(updated) = store
            .put_assignment("a1", &spec("2.0"), "cp")
            .await
            .unwrap()
        else {
            panic!("update did not change");
        };
        assert_eq!(updated.revision, 2);
        let versions: Vec<&str> = updated
            .previous
            .iter()
            .map(|c| c.version.as_str())
            .collect();
        assert_eq!(versions, ["1.0"]);
    }
}

#[tokio::test]
async fn rollback_swaps_versions() {
    for store in testing::all().await {
        store
            .put_assignment("a1", &spec("1.0"), "cp")
            .await
            .unwrap();
        store
            .put_assignment("a1", &spec("2.0"), "cp")
            .await
            .unwrap();
        let current = store.assignment("a1").await.unwrap().unwrap();
        let target = current.previous[0].clone();
        let rolled = store
            .start_rollback(&current, &target, "cp", "operator")
            .await
            .unwrap();
        assert_eq!(rolled.state, AssignmentState::RollingBack);
        assert_eq!(rolled.spec.container.version, "1.0");
        assert_eq!(rolled.previous[0].version, "2.0");
        assert_eq!(rolled.revision, 3);
    }
}

#[tokio::test]
async fn state_change_is_an_event() {
    for store in testing::all().await {
        store
            .put_assignment("a1", &spec("1.0"), "cp")
            .await
            .unwrap();
        let changed = store
            .set_assignment_state("a1", 1, AssignmentState::RollingOut, "")
            .await
            .unwrap();
        assert!(changed);
        let stale = store
            .set_assignment_state("a1", 7, AssignmentState::Converged, "")
            .await
            .unwrap();
        assert!(!stale, "a stale revision must not change the state");
        let events = store.events_after(0, 100).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["assignment.revision", "assignment.state"]);
    }
}

#[tokio::test]
async fn placements_count_and_page() {
    for store in testing::all().await {
        let rows = vec![
            placement("m1", 0, PlacementState::Applied),
            placement("m2", 1, PlacementState::Deferred),
            placement("m3", 2, PlacementState::Excluded),
        ];
        store.save_placements("a1", &rows).await.unwrap();
        let mut changed = rows[1].clone();
        changed.state = PlacementState::Applied;
        store.save_placements("a1", &[changed]).await.unwrap();

        let (total, per_target) = store.progress("a1").await.unwrap();
        assert_eq!(total.total, 3);
        assert_eq!(total.applied, 2);
        assert_eq!(total.excluded, 1);
        assert_eq!(per_target.len(), 1);

        let first = store
            .assignment_placements("a1", None, None, 2)
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let last = &first[1];
        let rest = store
            .assignment_placements(
                "a1",
                None,
                Some((&last.provider, &last.target, &last.machine)),
                2,
            )
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].machine, "m3");
        let applied = store
            .assignment_placements("a1", Some(PlacementState::Applied), None, 10)
            .await
            .unwrap();
        assert_eq!(applied.len(), 2);
    }
}

#[tokio::test]
async fn pending_intents_survive() {
    for store in testing::all().await {
        let payload = serde_json::json!({"machines": ["m1"]});
        let done = store
            .begin_intent("a1", 1, "citrix-prod", "EHR", "place", &payload)
            .await
            .unwrap();
        let open = store
            .begin_intent("a1", 1, "citrix-prod", "EHR", "place", &payload)
            .await
            .unwrap();
        store
            .finish_intent(done, IntentStatus::Done, &serde_json::json!({}))
            .await
            .unwrap();
        let pending = store.pending_intents().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, open);
    }
}

#[tokio::test]
async fn lease_excludes_other_owner() {
    for store in testing::all().await {
        assert!(store
            .acquire_lease("a1", "p", "t", "replica-a", 30)
            .await
            .unwrap());
        assert!(store
            .acquire_lease("a1", "p", "t", "replica-a", 30)
            .await
            .unwrap());
        assert!(!store
            .acquire_lease("a1", "p", "t", "replica-b", 30)
            .await
            .unwrap());
        store
            .release_lease("a1", "p", "t", "replica-a")
            .await
            .unwrap();
        assert!(store
            .acquire_lease("a1", "p", "t", "replica-b", 30)
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn audit_filters_by_assignment() {
    for store in testing::all().await {
        let record = |assignment: &str| AuditRecord {
            time: String::new(),
            actor: "cp".into(),
            assignment: assignment.into(),
            provider: "citrix-prod".into(),
            target: "EHR".into(),
            machine: "m1".into(),
            operation: "add_machine_tag".into(),
            method: "POST".into(),
            path: "Machines/m1/Tags/t".into(),
            result: "ok".into(),
            broker_request_id: "tx-1".into(),
        };
        store
            .append_audit(&[record("a1"), record("a2")])
            .await
            .unwrap();
        let only = store
            .audit(&AuditQuery {
                assignment: Some("a2".into()),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].assignment, "a2");
    }
}

#[tokio::test]
async fn target_status_round_trips() {
    for store in testing::all().await {
        let status = TargetStatus {
            provider: "citrix-prod".into(),
            target: "EHR".into(),
            target_id: "dg-1".into(),
            published: vec!["1.0".into()],
            state: "ok".into(),
            detail: String::new(),
        };
        store.save_target_status("a1", &status).await.unwrap();
        assert_eq!(store.target_statuses("a1").await.unwrap(), vec![status]);
    }
}

#[tokio::test]
async fn file_database_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let store = super::Store::connect(&url, 2).await.unwrap();
    store
        .put_assignment("a1", &spec("1.0"), "cp")
        .await
        .unwrap();
    store.close().await;
    let reopened = super::Store::connect(&url, 2).await.unwrap();
    assert!(reopened.assignment("a1").await.unwrap().is_some());
}

#[tokio::test]
async fn postgres_runs_when_configured() {
    let configured = std::env::var("DATABASE_URL").is_ok_and(|url| url.starts_with("postgres"));
    let stores = testing::all().await;
    assert_eq!(stores.len(), if configured { 2 } else { 1 });
    if configured {
        assert_eq!(stores[1].backend(), super::Backend::Postgres);
    }
}

#[tokio::test]
async fn audit_is_append_only() {
    for store in testing::all().await {
        let record = AuditRecord {
            time: String::new(),
            actor: "cp".into(),
            assignment: "a1".into(),
            provider: "citrix-prod".into(),
            target: "EHR".into(),
            machine: "m1".into(),
            operation: "add_machine_tag".into(),
            method: "POST".into(),
            path: "Machines/m1/Tags/t".into(),
            result: "ok".into(),
            broker_request_id: "tx-1".into(),
        };
        store.append_audit(&[record]).await.unwrap();
        let update = sqlx::query("UPDATE audit SET result = 'rewritten'")
            .execute(&store.pool)
            .await;
        assert!(
            update.is_err(),
            "an audit record was updated on {:?}",
            store.backend()
        );
        let delete = sqlx::query("DELETE FROM audit").execute(&store.pool).await;
        assert!(
            delete.is_err(),
            "an audit record was deleted on {:?}",
            store.backend()
        );
        assert_eq!(store.audit_count().await.unwrap(), 1);
        store
            .append_event("a1", "test", &serde_json::json!({}))
            .await
            .unwrap();
        let events = sqlx::query("DELETE FROM events").execute(&store.pool).await;
        assert!(
            events.is_err(),
            "an event was deleted on {:?}",
            store.backend()
        );
    }
}

#[tokio::test]
async fn agent_sessions_round_trip() {
    use vdi_contracts::{Session, SessionState};

    for store in testing::all().await {
        let backend = store.backend();
        store.register_agent_machine("p1", "LT-1").await.unwrap();
        let registered = store.agent_machines("p1").await.unwrap();
        assert_eq!(registered[0].sessions, None, "{backend:?}: first poll");

        let sessions = vec![
            Session {
                user: "HOSP\\nurse1".into(),
                state: SessionState::Active,
            },
            Session {
                user: "HOSP\\nurse2".into(),
                state: SessionState::Disconnected,
            },
        ];
        let labels = serde_json::json!({"site": "north"});
        let before = Utc::now() - chrono::Duration::seconds(1);
        store
            .touch_agent_machine("p1", "LT-1", &labels, Some(&sessions))
            .await
            .unwrap();
        let machines = store.agent_machines("p1").await.unwrap();
        let reported = machines[0].sessions.clone().expect("sessions stored");
        assert_eq!(reported.sessions, sessions, "{backend:?}");
        assert!(reported.reported_at >= before, "{backend:?}: reported_at");
        assert_eq!(machines[0].labels["site"], "north", "{backend:?}");

        store
            .touch_agent_machine("p1", "LT-1", &labels, Some(&[]))
            .await
            .unwrap();
        let machines = store.agent_machines("p1").await.unwrap();
        let reported = machines[0].sessions.clone().expect("zero sessions stored");
        assert!(reported.sessions.is_empty(), "{backend:?}: zero sessions");

        store
            .touch_agent_machine("p1", "LT-1", &labels, None)
            .await
            .unwrap();
        let machines = store.agent_machines("p1").await.unwrap();
        assert_eq!(machines[0].sessions, None, "{backend:?}: not reported");

        store.register_agent_machine("p1", "LT-1").await.unwrap();
        let machines = store.agent_machines("p1").await.unwrap();
        assert_eq!(
            machines[0].labels["site"], "north",
            "{backend:?}: poll kept labels"
        );
        assert!(store.agent_machines("p2").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn poll_keeps_reported_sessions() {
    use vdi_contracts::{Session, SessionState};

    for store in testing::all().await {
        let sessions = vec![Session {
            user: "HOSP\\dr1".into(),
            state: SessionState::Active,
        }];
        store
            .touch_agent_machine("p1", "LT-2", &serde_json::json!({}), Some(&sessions))
            .await
            .unwrap();
        store.register_agent_machine("p1", "LT-2").await.unwrap();
        let machines = store.agent_machines("p1").await.unwrap();
        let after_poll = machines[0].sessions.clone().map(|s| s.sessions);
        assert_eq!(after_poll, Some(sessions), "{:?}", store.backend());
    }
}

#[tokio::test]
async fn agent_machines_by_id_reads_only_those() {
    for store in testing::all().await {
        let labels = serde_json::json!({});
        let machines: Vec<String> = (0..1203).map(|i| format!("LT-{i:04}")).collect();
        for machine in &machines {
            store
                .touch_agent_machine("p1", machine, &labels, Some(&[]))
                .await
                .unwrap();
        }
        store
            .touch_agent_machine("p2", "LT-0001", &labels, None)
            .await
            .unwrap();
        let mut requested: Vec<String> = machines.iter().step_by(2).cloned().collect();
        requested.push("LT-9999".into());
        requested.push("LT-0000".into());
        let found = store.agent_machines_by_id("p1", &requested).await.unwrap();
        let backend = store.backend();
        assert_eq!(found.len(), 602, "{backend:?}");
        assert_eq!(found[0].machine, "LT-0000", "{backend:?}");
        assert!(found.iter().all(|m| m.sessions.is_some()), "{backend:?}");
        let none = store.agent_machines_by_id("p1", &[]).await.unwrap();
        assert!(none.is_empty(), "{backend:?}");
    }
}
