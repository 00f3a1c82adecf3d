//! Tables aligned like Flux v1's (Go's tabwriter with two spaces of padding), and the rows of
//! each listing.

use flux_core::WorkloadStatus;
use flux_core::automation::{ReleaseResult, WorkloadImages, WorkloadOutcome};

use crate::api_types::WorkloadInfo;

/// Columns padded to the widest cell plus two spaces; the last column is not padded.
pub(crate) fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn status_word(status: Option<&WorkloadStatus>) -> String {
    match status {
        Some(WorkloadStatus::Ready) => "ready".into(),
        Some(WorkloadStatus::RollingOut) => "updating".into(),
        Some(WorkloadStatus::Failed { message }) => format!("failed: {message}"),
        Some(WorkloadStatus::Unknown) => "unknown".into(),
        None => "not running".into(),
    }
}

fn policy_words(w: &WorkloadInfo) -> String {
    let mut words = Vec::new();
    if w.policies.automated {
        words.push("automated".to_owned());
    }
    if w.policies.locked.is_some() {
        words.push("locked".to_owned());
    }
    for (container, filter) in &w.policies.tag_filters {
        words.push(format!("tag.{container}={filter}"));
    }
    words.join(",")
}

/// `list-workloads`: WORKLOAD CONTAINER IMAGE RELEASE POLICY.
pub(crate) fn workloads(list: &[WorkloadInfo]) -> String {
    let mut rows = vec![["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY"].map(String::from).to_vec()];
    for w in list {
        let status = status_word(w.status.as_ref());
        let policy = policy_words(w);
        if w.containers.is_empty() {
            rows.push(vec![w.id.to_string(), String::new(), String::new(), status.clone(), policy.clone()]);
        }
        for (i, c) in w.containers.iter().enumerate() {
            let first = i == 0;
            let pick = |s: &String| if first { s.clone() } else { String::new() };
            rows.push(vec![pick(&w.id.to_string()), c.name.clone(), c.image.clone(), pick(&status), pick(&policy)]);
        }
    }
    render(&rows)
}

/// `list-images`: per container, the repository then its tags newest first, `'->` at the one
/// running (in git).
pub(crate) fn images(list: &[WorkloadImages], limit: usize) -> String {
    let mut rows = vec![["WORKLOAD", "CONTAINER", "IMAGE", "CREATED"].map(String::from).to_vec()];
    for w in list {
        for (i, c) in w.containers.iter().enumerate() {
            let workload = if i == 0 { w.workload.to_string() } else { String::new() };
            let repo = match c.current.domain() {
                Some(d) => format!("{d}/{}", c.current.path()),
                None => c.current.path().to_owned(),
            };
            rows.push(vec![workload, c.container.clone(), repo, String::new()]);
            if let Some(e) = &c.error {
                rows.push(vec![String::new(), String::new(), format!("(registry error: {e})"), String::new()]);
            }
            let current = c.current.tag().unwrap_or_default();
            let shown = c.available.iter().take(if limit == 0 { usize::MAX } else { limit });
            for t in shown {
                let marker = if t.tag == current { "'->" } else { "|  " };
                let created = t.created.map(|c| c.to_string()).unwrap_or_default();
                rows.push(vec![String::new(), String::new(), format!("{marker} {}", t.tag), created]);
            }
            let listed = limit == 0 || c.available.iter().take(limit).any(|t| t.tag == current);
            if !listed && !current.is_empty() {
                rows.push(vec![String::new(), String::new(), format!("'-> {current} (current)"), String::new()]);
            }
        }
    }
    render(&rows)
}

/// A release's result: WORKLOAD STATUS UPDATES.
pub(crate) fn release(result: &ReleaseResult) -> String {
    let mut rows = vec![["WORKLOAD", "STATUS", "UPDATES"].map(String::from).to_vec()];
    for w in &result.workloads {
        let status = match &w.outcome {
            WorkloadOutcome::Updated => "success".to_owned(),
            WorkloadOutcome::UpToDate => "skipped (up to date)".to_owned(),
            WorkloadOutcome::Skipped { reason } => format!("skipped ({reason})"),
            WorkloadOutcome::Failed { error } => format!("failed ({error})"),
        };
        let updates: Vec<String> = w
            .containers
            .iter()
            .filter_map(|c| match &c.outcome {
                flux_core::automation::ContainerOutcome::Updated { to } => {
                    Some(format!("{}: {} -> {}", c.container, c.current, to.tag().unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        rows.push(vec![w.workload.to_string(), status, updates.join(", ")]);
    }
    render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = vec![
            vec!["WORKLOAD".to_owned(), "IMAGE".to_owned()],
            vec!["default:deployment/podinfo".to_owned(), "podinfo:1".to_owned()],
        ];
        assert_eq!(render(&rows), "WORKLOAD                    IMAGE\ndefault:deployment/podinfo  podinfo:1\n");
    }
}
