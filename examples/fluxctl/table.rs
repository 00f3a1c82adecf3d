//! Tables aligned like Flux v1's (Go's tabwriter with two spaces of padding), and the rows of
//! each listing, as Flux v1's fluxctl printed them.

use flux_api::v1::{ContainerImages, WorkloadImages, WorkloadInfo, WorkloadStatus};

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

/// The RELEASE column: Flux v1's status words, `not running` for a workload only in git.
fn status_word(status: Option<&WorkloadStatus>) -> &'static str {
    match status {
        None => "not running",
        Some(s) => crate::v1json::status_word(Some(s)),
    }
}

/// The POLICY column, as Flux v1 wrote it: `automated`, `ignore`, `locked`, sorted, joined by
/// commas (tag filters are not shown).
fn policy_words(w: &WorkloadInfo) -> String {
    let mut words = Vec::new();
    if w.policies.automated {
        words.push("automated");
    }
    if w.policies.ignore.is_some() {
        words.push("ignore");
    }
    if w.policies.locked.is_some() {
        words.push("locked");
    }
    words.join(",")
}

/// One line per workload error, after a table: `error: file:line: workload: message`.
fn error_lines<'a>(errors: impl Iterator<Item = &'a String>) -> String {
    let lines: String = errors.map(|e| format!("error: {e}\n")).collect();
    if lines.is_empty() { lines } else { format!("\n{lines}") }
}

fn header(headers: bool, names: &[&str]) -> Vec<Vec<String>> {
    if headers { vec![names.iter().map(|s| (*s).to_owned()).collect()] } else { Vec::new() }
}

/// `list-workloads`: WORKLOAD CONTAINER IMAGE RELEASE POLICY, then the errors of workloads whose
/// manifests cannot be read (their unreadable images shown as written).
pub(crate) fn workloads(list: &[WorkloadInfo], headers: bool) -> String {
    let mut rows = header(headers, &["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY"]);
    for w in list {
        let status = status_word(w.status.as_ref()).to_owned();
        let policy = policy_words(w);
        match w.containers.split_first() {
            None => rows.push(vec![w.id.to_string(), String::new(), String::new(), status, policy]),
            Some((first, others)) => {
                rows.push(vec![w.id.to_string(), first.name.clone(), first.image.clone(), status, policy]);
                for c in others {
                    rows.push(vec![String::new(), c.name.clone(), c.image.clone(), String::new(), String::new()]);
                }
            }
        }
    }
    render(&rows) + &error_lines(list.iter().filter_map(|w| w.error.as_ref()))
}

/// A tag's creation time as Flux v1 printed it (Go's RFC 822: `02 Jan 06 15:04 UTC`).
fn created(rfc3339: Option<&String>) -> String {
    let Some(text) = rfc3339 else { return String::new() };
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%d %b %y %H:%M UTC").to_string(),
        Err(_) => text.clone(),
    }
}

/// The rows of one container: its repository, then its tags newest first, `'->` at the one in
/// git (`|  ` above it), at most `limit` (0: all) but always the current one, after a
/// `: (N image(s) omitted)` line when tags were left out before it.
fn container_rows(workload: String, c: &ContainerImages, limit: usize) -> Vec<Vec<String>> {
    let repo = match c.current.domain() {
        Some(d) => format!("{d}/{}", c.current.path()),
        None => c.current.path().to_owned(),
    };
    let mut rows = Vec::new();
    let note = match (&c.error, c.available.is_empty()) {
        (Some(e), _) => e.clone(),
        (None, true) => "no image data".to_owned(),
        (None, false) => String::new(),
    };
    rows.push(vec![workload, c.container.clone(), repo, note]);
    let current = c.current.tag().unwrap_or_default();
    let mut found = false;
    for (i, t) in c.available.iter().enumerate() {
        let line = i + 1;
        let is_current = t.tag == current;
        let marker = if is_current {
            found = true;
            "'->"
        } else if found {
            "   "
        } else {
            "|  "
        };
        let shown = limit == 0 || line <= limit || is_current;
        if limit > 0 && line > limit + 1 && is_current {
            rows.push(vec![
                String::new(),
                String::new(),
                format!(": ({} image(s) omitted)", line - limit - 1),
                String::new(),
            ]);
        }
        if shown {
            rows.push(vec![String::new(), String::new(), format!("{marker} {}", t.tag), created(t.created.as_ref())]);
        }
    }
    if !found {
        let tag = if current.is_empty() { "(untagged)" } else { current };
        rows.push(vec![String::new(), String::new(), format!("'-> {tag}"), "?".into()]);
    }
    rows
}

/// `list-images`: WORKLOAD CONTAINER IMAGE CREATED as Flux v1 printed it, then the errors of
/// workloads whose manifests cannot be read.
pub(crate) fn images(list: &[WorkloadImages], limit: usize, headers: bool) -> String {
    let mut rows = header(headers, &["WORKLOAD", "CONTAINER", "IMAGE", "CREATED"]);
    for w in list {
        if w.containers.is_empty() {
            rows.push(vec![w.workload.to_string(), String::new(), String::new(), String::new()]);
        }
        for (i, c) in w.containers.iter().enumerate() {
            let workload = if i == 0 { w.workload.to_string() } else { String::new() };
            rows.extend(container_rows(workload, c, limit));
        }
    }
    render(&rows) + &error_lines(list.iter().filter_map(|w| w.error.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_api::v1::{AvailableTag, TagFilter};

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = vec![
            vec!["WORKLOAD".to_owned(), "IMAGE".to_owned()],
            vec!["default:deployment/podinfo".to_owned(), "podinfo:1".to_owned()],
        ];
        assert_eq!(render(&rows), "WORKLOAD                    IMAGE\ndefault:deployment/podinfo  podinfo:1\n");
    }

    fn container(current: &str, tags: &[&str]) -> ContainerImages {
        ContainerImages {
            container: "app".into(),
            current: current.parse().expect("an image"),
            filter: TagFilter("*".into()),
            latest: tags.first().map(|t| (*t).to_owned()),
            available: tags
                .iter()
                .map(|t| AvailableTag { tag: (*t).into(), created: Some("2016-07-20T13:19:00Z".into()) })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn images_are_listed_as_flux_v1_listed_them() {
        let c = container("quay.io/w/hello:b", &["d", "c", "b", "a"]);
        let rows = render(&container_rows("default:deployment/hello".into(), &c, 0));
        assert_eq!(
            rows,
            "default:deployment/hello  app  quay.io/w/hello\n\
             \x20                              |   d            20 Jul 16 13:19 UTC\n\
             \x20                              |   c            20 Jul 16 13:19 UTC\n\
             \x20                              '-> b            20 Jul 16 13:19 UTC\n\
             \x20                                  a            20 Jul 16 13:19 UTC\n"
        );
        // Limited to one: the current one still shows, after an ellipsis.
        let c = container("hello:a", &["d", "c", "b", "a"]);
        let cells: Vec<String> = container_rows(String::new(), &c, 1).into_iter().map(|r| r[2].clone()).collect();
        assert_eq!(cells, ["hello", "|   d", ": (2 image(s) omitted)", "'-> a"]);
        // A tag the registry does not list, and no image data.
        let c = container("hello:z", &[]);
        let rows = container_rows(String::new(), &c, 10);
        assert_eq!(rows[0][3], "no image data");
        assert_eq!(rows[1][2..], ["'-> z".to_owned(), "?".to_owned()]);
    }
}
