//! Choosing the version a rollback installs. The API's rollbacks and the engine's automatic
//! rollback share these rules, so no rollback returns to the version a rollback just left.

use vdi_contracts::Container;

use crate::model::Assignment;
use crate::store::{Store, StoreError};

/// Rollback facts read from the revisions that led to the current one.
#[derive(Debug, Default)]
pub struct RollbackHistory {
    /// Version that the latest rollback left, when the current version is the one that rollback
    /// restored (by an operator, an environment rollback or the engine).
    pub left: Option<String>,
    /// Versions installed before the version that rollback restored, newest first. Empty when
    /// `left` is `None`.
    pub earlier: Vec<String>,
}

/// Reads the rollback history of an assignment from its stored revisions.
///
/// # Errors
/// Fails on store errors.
pub async fn rollback_history(
    store: &Store,
    assignment: &Assignment,
) -> Result<RollbackHistory, StoreError> {
    let revisions = store.revision_versions(&assignment.id).await?;
    let Some(mut rollback) = revisions
        .iter()
        .position(|r| r.revision == assignment.revision)
    else {
        return Ok(RollbackHistory::default());
    };
    // A PUT that keeps the version (new targets or waves) does not end the rollback: the
    // version it rolled back from is still the failed one.
    while rollback > 0
        && !revisions[rollback].rollback
        && revisions[rollback - 1].version == revisions[rollback].version
    {
        rollback -= 1;
    }
    if rollback == 0 || !revisions[rollback].rollback {
        return Ok(RollbackHistory::default());
    }
    let restored = &revisions[rollback].version;
    // The restored version's last install by a PUT marks where "before it" starts.
    let installed = revisions[..rollback]
        .iter()
        .rposition(|r| !r.rollback && &r.version == restored)
        .unwrap_or(rollback);
    Ok(RollbackHistory {
        left: Some(revisions[rollback - 1].version.clone()),
        earlier: revisions[..installed]
            .iter()
            .rev()
            .map(|r| r.version.clone())
            .collect(),
    })
}

/// Rejection of a rollback request for which no version qualifies as the target.
#[derive(Debug)]
pub struct NoRollbackTarget {
    /// Sentence naming the assignment, the versions involved and the next step.
    pub message: String,
    /// Whether `to_version` named a version the assignment never kept (422 rather than 409).
    pub unknown_version: bool,
    /// Version the latest rollback left, when that is why no target qualifies.
    pub rolled_back_from: Option<String>,
}

/// Chooses the container a rollback installs: `to_version` when given, otherwise the newest
/// previous version.
///
/// A rollback never returns to the version that the latest rollback left, because that version
/// is the one that failed and a rollback skips waves, windows and freezes. When the current
/// version was restored by a rollback, the default is the newest previous version that was
/// installed before the restored one.
///
/// # Errors
/// Fails when `to_version` is not a previous version or is the version the latest rollback
/// left, or when no version qualifies as the default.
pub fn rollback_target<'a>(
    assignment: &'a Assignment,
    history: &RollbackHistory,
    to_version: Option<&str>,
) -> Result<&'a Container, NoRollbackTarget> {
    let id = &assignment.id;
    let left = history.left.as_deref();
    let previous_named = |version: &str| assignment.previous.iter().find(|c| c.version == version);
    let reject_left = |left: &str, reason: String| NoRollbackTarget {
        message: format!(
            "{reason}; to install {left} again, PUT the assignment with version {left}, which \
             rolls out in waves inside maintenance windows"
        ),
        unknown_version: false,
        rolled_back_from: Some(left.to_owned()),
    };
    if let Some(version) = to_version {
        if Some(version) == left {
            return Err(reject_left(
                version,
                format!(
                    "assignment {id:?} was rolled back from version {version:?}, so a rollback \
                     cannot return to it"
                ),
            ));
        }
        return previous_named(version).ok_or_else(|| NoRollbackTarget {
            message: format!(
                "version {version:?} is not among the previous versions {:?} of assignment \
                 {id:?}",
                assignment
                    .previous
                    .iter()
                    .map(|c| c.version.as_str())
                    .collect::<Vec<_>>()
            ),
            unknown_version: true,
            rolled_back_from: None,
        });
    }
    let Some(left) = left else {
        return assignment.previous.first().ok_or_else(|| NoRollbackTarget {
            message: format!("assignment {id:?} has no previous version to roll back to"),
            unknown_version: false,
            rolled_back_from: None,
        });
    };
    let restored = assignment.spec.container.version.as_str();
    history
        .earlier
        .iter()
        .filter(|v| v.as_str() != left && v.as_str() != restored)
        .find_map(|v| previous_named(v))
        .ok_or_else(|| {
            reject_left(
                left,
                format!(
                    "assignment {id:?} was rolled back from version {left:?} to {restored:?}, \
                     and no version installed before {restored:?} is kept for rollback"
                ),
            )
        })
}
