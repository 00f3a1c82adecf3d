//! `-o json`: each listed object carries Flux v1's fields (`ID`, `Containers`, `Status`,
//! `Automated`, ... as Flux v1's API v6 `ControllerStatus` and `ImageStatus` had them) next to
//! flux-rs's own lower-case fields, so scripts written for either read what they expect.

use serde::Serialize;
use serde_json::{Map, Value, json};

use flux_api::v1::{WorkloadImages, WorkloadInfo, WorkloadStatus};

/// `s` as a JSON object (empty when it is not one).
fn object<T: Serialize>(s: &T) -> Map<String, Value> {
    match serde_json::to_value(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Flux v1's status word of a workload: `ready`, `updating`, `error`, `unknown`; empty when it
/// does not run.
pub(crate) fn status_word(status: Option<&WorkloadStatus>) -> &'static str {
    match status {
        Some(WorkloadStatus::Ready) => "ready",
        Some(WorkloadStatus::RollingOut) => "updating",
        Some(WorkloadStatus::Failed { .. }) => "error",
        Some(WorkloadStatus::Unknown) => "unknown",
        None => "",
    }
}

/// One `list-workloads` entry: flux-rs's fields, then v1's `ControllerStatus` fields. v1's
/// `Rollout` counts are not known to fluxd's API: only its `Messages` are given.
pub(crate) fn workload(w: &WorkloadInfo) -> Value {
    let mut out = object(w);
    let containers: Vec<Value> =
        w.containers.iter().map(|c| json!({"Name": c.name, "Current": {"ID": c.image}})).collect();
    let messages: Vec<&str> = match &w.status {
        Some(WorkloadStatus::Failed { message }) => vec![message.as_str()],
        _ => Vec::new(),
    };
    let mut policies = Map::new();
    if w.policies.automated {
        policies.insert("automated".into(), "true".into());
    }
    if let Some(lock) = &w.policies.locked {
        policies.insert("locked".into(), "true".into());
        if let Some(m) = &lock.message {
            policies.insert("locked_msg".into(), m.clone().into());
        }
        if let Some(u) = &lock.user {
            policies.insert("locked_user".into(), u.clone().into());
        }
    }
    if w.policies.ignore.is_some() {
        policies.insert("ignore".into(), "true".into());
    }
    for (container, filter) in &w.policies.tag_filters {
        policies.insert(format!("tag.{container}"), filter.0.clone().into());
    }
    let v1 = json!({
        "ID": w.id.to_string(),
        "Containers": containers,
        "ReadOnly": if w.in_git { "" } else { "NotInRepo" },
        "Status": status_word(w.status.as_ref()),
        "Rollout": {"Messages": if messages.is_empty() { Value::Null } else { json!(messages) }},
        "SyncError": "",
        "Antecedent": "",
        "Labels": Value::Null,
        "Automated": w.policies.automated,
        "Locked": w.policies.locked.is_some(),
        "Ignore": w.policies.ignore.is_some(),
        "Policies": policies,
    });
    if let Value::Object(v1) = v1 {
        out.extend(v1);
    }
    Value::Object(out)
}

/// One `list-images` entry, its tags cut to `limit` (0: all) as Flux v1 cut them: flux-rs's
/// fields, then v1's `ImageStatus` (`ID`, `Containers` with `Name`, `Current`,
/// `LatestFiltered`, `Available`, `AvailableError`, `AvailableImagesCount`).
pub(crate) fn images(w: &WorkloadImages, limit: usize) -> Value {
    let mut w = w.clone();
    let counts: Vec<usize> = w.containers.iter().map(|c| c.available.len()).collect();
    if limit > 0 {
        w.containers.iter_mut().for_each(|c| c.available.truncate(limit));
    }
    let mut out = object(&w);
    let repository = |c: &flux_api::v1::ContainerImages| match c.current.domain() {
        Some(d) => format!("{d}/{}", c.current.path()),
        None => c.current.path().to_owned(),
    };
    let containers: Vec<Value> = w
        .containers
        .iter()
        .zip(counts)
        .map(|(c, count)| {
            let repo = repository(c);
            let info = |tag: &str, created: Option<&String>| {
                let mut i = json!({"ID": format!("{repo}:{tag}")});
                if let (Some(created), Value::Object(m)) = (created, &mut i) {
                    m.insert("CreatedAt".into(), created.clone().into());
                }
                i
            };
            let current_tag = c.current.tag().unwrap_or_default();
            let current_created = c.available.iter().find(|t| t.tag == current_tag).and_then(|t| t.created.as_ref());
            let mut v = json!({
                "Name": c.container,
                "Current": info(current_tag, current_created),
                "Available": c.available.iter().map(|t| info(&t.tag, t.created.as_ref())).collect::<Vec<_>>(),
                "AvailableImagesCount": count,
            });
            if let Value::Object(m) = &mut v {
                if let Some(latest) = &c.latest {
                    let created = c.available.iter().find(|t| &t.tag == latest).and_then(|t| t.created.as_ref());
                    m.insert("LatestFiltered".into(), info(latest, created));
                }
                if let Some(e) = &c.error {
                    m.insert("AvailableError".into(), e.clone().into());
                }
            }
            v
        })
        .collect();
    out.insert("ID".into(), w.workload.to_string().into());
    out.insert("Containers".into(), containers.into());
    Value::Object(out)
}
