//! The [`PolicyStore`] contract.
//!
//! [`run`] needs a store that knows two workloads, both with default policies, and does not know
//! `unknown`.

use crate::Error;
use crate::policy::{ChangeCause, Lock, Policies, PolicyChange, PolicyStore, PolicyUpdate, TagFilter};
use crate::resource::ResourceId;
use crate::testkit::assert_err;

fn update(workload: &ResourceId, changes: Vec<PolicyChange>) -> PolicyUpdate {
    PolicyUpdate { workload: workload.clone(), changes }
}

/// Checks the whole contract.
pub async fn run(store: &dyn PolicyStore, known: [&ResourceId; 2], unknown: &ResourceId) {
    let [a, b] = known;
    let cause = ChangeCause { user: Some("conformance".into()), message: Some("checking the contract".into()) };

    let all = store.policies().await.expect("policies");
    assert_eq!(all.get(a), Some(&Policies::default()), "a known workload without policies has the defaults");
    assert_eq!(all.get(b), Some(&Policies::default()));
    assert!(!all.contains_key(unknown), "an unknown workload is not listed");
    assert!(all.keys().zip(all.keys().skip(1)).all(|(x, y)| x < y), "sorted by id");

    // Several changes to several workloads in one call.
    let filter = TagFilter::new("semver:~1.2").expect("valid filter");
    let lock = Lock { message: Some("incident 42".into()), user: Some("jane".into()) };
    let diffs = store
        .update(
            &[
                update(b, vec![PolicyChange::Lock(lock.clone())]),
                update(
                    a,
                    vec![
                        PolicyChange::Automate,
                        PolicyChange::SetTagFilter { container: "app".into(), filter: filter.clone() },
                    ],
                ),
            ],
            &cause,
        )
        .await
        .expect("update");
    assert_eq!(
        diffs.iter().map(|d| &d.workload).collect::<Vec<_>>(),
        [b, a],
        "one diff per changed workload, in order"
    );
    assert_eq!(diffs[1].before, Policies::default());
    assert!(diffs[1].after.automated);
    let all = store.policies().await.expect("policies");
    assert!(all[a].automated, "automated must read back");
    assert_eq!(all[a].tag_filters.get("app"), Some(&filter), "the tag filter must read back");
    assert_eq!(all[b].locked, Some(lock.clone()), "the lock, message and user must read back");

    // Idempotence: changes already in effect write nothing.
    let same = store
        .update(&[update(a, vec![PolicyChange::Automate]), update(b, vec![PolicyChange::Lock(lock)])], &cause)
        .await
        .expect("update");
    assert!(same.is_empty(), "changes already in effect must report nothing: {same:?}");
    let back_and_forth =
        store.update(&[update(a, vec![PolicyChange::Deautomate, PolicyChange::Automate])], &cause).await;
    assert!(back_and_forth.expect("update").is_empty(), "changes that cancel out must report nothing");

    // All or nothing.
    let err = assert_err(
        store
            .update(&[update(a, vec![PolicyChange::Deautomate]), update(unknown, vec![PolicyChange::Automate])], &cause)
            .await,
        Error::is_not_found,
        "an update naming an unknown workload",
    );
    assert!(err.to_string().contains(&unknown.to_string()), "the error must name the workload: {err}");
    assert!(store.policies().await.expect("policies")[a].automated, "a refused update must change nothing");

    // Undo.
    let undone = store
        .update(
            &[
                update(a, vec![PolicyChange::Deautomate, PolicyChange::ClearTagFilter { container: "app".into() }]),
                update(b, vec![PolicyChange::Unlock]),
            ],
            &cause,
        )
        .await
        .expect("update");
    assert_eq!(undone.len(), 2);
    let all = store.policies().await.expect("policies");
    assert_eq!(all[a], Policies::default(), "every change can be undone");
    assert_eq!(all[b], Policies::default());
}
