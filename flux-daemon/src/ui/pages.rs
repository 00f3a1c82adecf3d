//! The pages' HTML (maud templates: every `(value)` is escaped). No inline script or style:
//! the Content-Security-Policy allows neither.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use flux_core::WorkloadStatus;
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};

use super::session::Session;
use super::view::{self, JobEntry, UnitOverview, WorkloadDetail, WorkloadFilter, WorkloadList, WorkloadRow};
use crate::daemon::Daemon;
use crate::results::{JobResult, JobView, SyncRecord};

/// `text` percent-encoded for a URL's query (everything but unreserved characters).
pub(crate) fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What every signed-in page carries: the units (for the navigation), the unit shown, the
/// session's CSRF token for its forms.
pub(crate) struct Chrome {
    units: Vec<String>,
    unit: Option<String>,
    csrf: String,
}

impl Chrome {
    pub(crate) fn new(daemon: &Daemon, session: &Session, unit: Option<&str>) -> Self {
        Chrome {
            units: daemon.units().map(|u| u.name().to_owned()).collect(),
            unit: unit.map(str::to_owned),
            csrf: session.csrf.clone(),
        }
    }

    /// The hidden CSRF field of a form.
    fn csrf(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

fn url(path: &str, unit: &str) -> String {
    format!("{path}?unit={}", enc(unit))
}

fn workload_url(unit: &str, id: &flux_core::ResourceId) -> String {
    format!("/ui/workload?unit={}&id={}", enc(unit), enc(&id.to_string()))
}

fn job_url(unit: &str, id: &str) -> String {
    format!("/ui/job?unit={}&id={}", enc(unit), enc(id))
}

/// A page with the header, navigation and `content` in `<main id="content">` (what the live
/// script swaps in).
fn layout(title: &str, chrome: Option<&Chrome>, refresh_without_script: bool, content: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh_without_script {
                    noscript { meta http-equiv="refresh" content="3"; }
                }
                title { (title) " · flux-rs" }
                link rel="stylesheet" href="/ui/static/ui.css";
                @if chrome.is_some() {
                    script src="/ui/static/live.js" defer {}
                }
            }
            body {
                header {
                    a.brand href="/ui/" { "flux-rs" }
                    @if let Some(chrome) = chrome {
                        nav {
                            a href="/ui/" { "Overview" }
                            @for unit in &chrome.units {
                                @let current = chrome.unit.as_deref() == Some(unit.as_str());
                                span.unit.current[current] {
                                    @if chrome.units.len() > 1 { b { (unit) } " " }
                                    a href=(url("/ui/workloads", unit)) { "Workloads" }
                                    " "
                                    a href=(url("/ui/history", unit)) { "History" }
                                }
                            }
                        }
                        span #live title="live updates" { "" }
                        form.inline method="post" action="/ui/logout" {
                            (chrome.csrf())
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #content { (content) }
            }
        }
    };
    Html(page.into_string())
}

/// An error page with `status`.
pub(crate) fn refused(status: StatusCode, why: &str) -> Response {
    let content = html! {
        h1 { (status.canonical_reason().unwrap_or("Refused")) }
        p.error { (why) }
        p { a href="/ui/" { "Back to the overview" } }
    };
    (status, layout("Refused", None, false, content)).into_response()
}

/// The sign-in form (one password field, `token`).
pub(crate) fn login(has_token: bool, error: Option<&str>) -> Html<String> {
    let content = html! {
        section.login {
            h1 { "Sign in" }
            @if has_token {
                p { "Give this fluxd's API token (" code { "--api-token-file" } " or " code { "FLUX_API_TOKEN" } ")." }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/ui/login" {
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
            } @else {
                p.error { "This fluxd has no API token, so nobody can sign in to its status page. Start it with --api-token-file or FLUX_API_TOKEN." }
            }
        }
    };
    layout("Sign in", None, false, content)
}

/// A time as `2026-12-01 22:30:05 UTC (3 min ago)`.
fn when(at: Timestamp) -> Markup {
    let ago = Timestamp::now().duration_since(at);
    let secs = ago.as_secs();
    let relative = if secs < 0 {
        let ahead = -secs;
        match ahead {
            0..=59 => format!("in {ahead} s"),
            60..=3599 => format!("in {} min", ahead / 60),
            _ => format!("in {} h", ahead / 3600),
        }
    } else {
        match secs {
            0..=59 => format!("{secs} s ago"),
            60..=3599 => format!("{} min ago", secs / 60),
            3600..=86399 => format!("{} h ago", secs / 3600),
            _ => format!("{} days ago", secs / 86400),
        }
    };
    let absolute = at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(at.to_string()) title=(absolute) { (relative) } }
}

fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{:.2} s", d.as_secs_f64()),
        _ if secs.is_multiple_of(3600) => format!("{} h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        _ => format!("{} min {} s", secs / 60, secs % 60),
    }
}

fn revision(rev: Option<&str>) -> Markup {
    match rev {
        Some(rev) => html! { code.rev title=(rev) { (view::short(rev)) } },
        None => html! { span.muted { "none yet" } },
    }
}

fn job_state(state: &str) -> Markup {
    html! { span class=(format!("badge {state}")) { (state) } }
}

/// The overview: every unit, what needs attention first.
pub(crate) fn overview(chrome: &Chrome, units: &[UnitOverview]) -> Html<String> {
    let content = html! {
        @for unit in units {
            section.unit {
                h1 { "Unit " (unit.name) }
                p.muted {
                    @if let Some(branch) = &unit.branch { "branch " code { (branch) } ", " }
                    "paths "
                    @for (i, p) in unit.paths.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { @if p.is_empty() { "(root)" } @else { (p) } }
                    }
                }
                section.attention {
                    h2 { "Needs attention" }
                    @if unit.attention.is_empty() {
                        p.ok { "Nothing: every object synced, every workload reads." }
                    } @else {
                        ul {
                            @for a in &unit.attention {
                                li {
                                    strong { (a.title) }
                                    @if let Some(since) = a.since { " " span.muted { "since " (when(since)) } }
                                    @if !a.detail.is_empty() { pre.detail { (a.detail) } }
                                }
                            }
                            @if unit.hidden_attention > 0 {
                                li.more { "… and " (unit.hidden_attention) " more (the history lists every sync error)" }
                            }
                        }
                    }
                }
                section.state {
                    h2 { "Sync" }
                    dl {
                        dt { "Head" } dd { (revision(unit.head.as_deref())) }
                        dt { "Last synced" }
                        dd {
                            @match &unit.last_sync {
                                Some(last) => {
                                    (revision(Some(&last.summary.revision))) " "
                                    @if last.summary.success { span.badge.succeeded { "succeeded" } } @else { span.badge.failed { "failed" } }
                                    " " (when(last.finished_at)) ", took " (duration(last.duration))
                                }
                                None => span.muted { "no sync yet" },
                            }
                        }
                        @if let Some(last) = &unit.last_sync {
                            dt { "Objects" }
                            dd { (sync_counts(last)) }
                        }
                        dt { "Next sync" }
                        dd {
                            @match unit.next_sync { Some(at) => { (when(at)) " at the latest" }, None => "after the first" }
                            " (every " (duration(unit.sync_interval)) ", and on every new revision)"
                        }
                        dt { "Automation" }
                        dd {
                            @match unit.automation_interval {
                                Some(every) => {
                                    @match unit.next_automation { Some(at) => { "next pass " (when(at)) " at the latest" }, None => "the first pass after one interval" }
                                    " (every " (duration(every)) ", and on every registry notification)"
                                }
                                None => "off (registry scanning disabled)",
                            }
                        }
                        dt { "Workloads" }
                        dd {
                            @match unit.workloads { Some(n) => { a href=(url("/ui/workloads", &unit.name)) { (n) " workloads" } }, None => "cannot be listed" }
                        }
                    }
                    form.inline method="post" action="/ui/sync" {
                        (chrome.csrf())
                        input type="hidden" name="unit" value=(unit.name);
                        button type="submit" { "Sync now" }
                    }
                }
                section.jobs {
                    h2 { "Jobs" }
                    @if unit.pending.is_empty() { p.muted { "The queue is empty." } }
                    @else {
                        ul { @for (id, v) in &unit.pending { li { a href=(job_url(&unit.name, id.as_str())) { code { (id) } } " " (job_state(view::job_entry(id, v).state)) } } }
                    }
                    @if !unit.recent.is_empty() {
                        h3 { "Recently" }
                        (job_table(&unit.name, &unit.recent))
                        p { a href=(url("/ui/history", &unit.name)) { "All history" } }
                    }
                }
            }
        }
    };
    layout("Overview", Some(chrome), false, content)
}

fn sync_counts(record: &SyncRecord) -> Markup {
    let s = &record.summary;
    html! {
        (s.applied.len() - record.failed.min(s.applied.len())) " applied, "
        (s.unchanged) " unchanged, "
        (s.pruned.len()) @if s.garbage_collection == flux_core::sync::GarbageCollection::DryRun { " would be pruned" } @else { " pruned" } ", "
        span.failed[record.failed > 0] { (record.failed) " failed" }
        @if !s.errors.is_empty() { ", " (s.errors.len()) " errors" }
    }
}

fn job_table(unit: &str, jobs: &[JobEntry]) -> Markup {
    html! {
        table.jobs {
            thead { tr { th { "Job" } th { "Kind" } th { "State" } th { "Commit" } th { "What" } } }
            tbody {
                @for j in jobs {
                    tr {
                        td { a href=(job_url(unit, j.id.as_str())) { code { (j.id) } } }
                        td { (j.kind) }
                        td { (job_state(j.state)) }
                        td { @if let Some(rev) = &j.revision { (revision(Some(rev))) } }
                        td {
                            @if let Some(e) = &j.error { span.error { (e) } }
                            @for line in &j.changes { div { (line) } }
                        }
                    }
                }
            }
        }
    }
}

fn status_text(status: &Option<WorkloadStatus>) -> Markup {
    match status {
        None => html! { span.muted { "not running" } },
        Some(WorkloadStatus::Ready) => html! { span.badge.succeeded { "ready" } },
        Some(WorkloadStatus::RollingOut) => html! { span.badge.running { "rolling out" } },
        Some(WorkloadStatus::Failed { message }) => {
            html! { span.badge.failed title=(message) { "failed" } " " (message) }
        }
        Some(WorkloadStatus::Unknown) => html! { span.muted { "unknown" } },
    }
}

fn policy_text(row: &WorkloadRow) -> Markup {
    let p = &row.policies;
    html! {
        @if p.automated { div { span.badge.automated { "automated" } } }
        @if p.locked.is_some() { div { span.badge.locked { "locked" } " " span.lock { (view::lock_detail(p)) } } }
        @for (c, f) in &p.tag_filters { div.filter { (c) ": " code { (f.to_string()) } } }
        @if p.ignore.is_some() { div { span.badge { "ignored" } } }
    }
}

fn containers_cell(row: &WorkloadRow) -> Markup {
    html! {
        @for c in &row.containers {
            div.container {
                span.cname { (c.name) } " "
                @match (&c.in_git, &c.running) {
                    (Some(g), Some(r)) if g == r => { code { (g) } }
                    (Some(g), Some(r)) => { "git " code { (g) } " · running " code { (r) } }
                    (Some(g), None) => { code { (g) } }
                    (None, Some(r)) => { "running " code { (r) } }
                    (None, None) => {}
                }
                @if let Some(e) = &c.error { div.error { (e) } }
            }
        }
    }
}

fn workloads_url(unit: &str, filter: &WorkloadFilter, page: usize) -> String {
    format!("/ui/workloads?unit={}&q={}&namespace={}&page={page}", enc(unit), enc(&filter.text), enc(&filter.namespace))
}

/// The workloads table, filtered and paginated.
pub(crate) fn workloads(chrome: &Chrome, list: &WorkloadList) -> Html<String> {
    let f = &list.filter;
    let content = html! {
        h1 { "Workloads of " (list.unit) }
        @if let Some(e) = &list.error { p.error { (e) } }
        @if let Some(problem) = &list.head_problem {
            p.error { "The head cannot be used; listing " (revision(list.revision.as_deref())) ": " (problem.error) }
        }
        form.filter method="get" action="/ui/workloads" {
            input type="hidden" name="unit" value=(list.unit);
            label { "Filter " input type="search" name="q" value=(f.text) placeholder="name or image"; }
            label {
                "Namespace "
                select name="namespace" {
                    option value="" selected[f.namespace.is_empty()] { "all" }
                    @for ns in &list.namespaces { option value=(ns) selected[&f.namespace == ns] { (ns) } }
                }
            }
            button type="submit" { "Show" }
        }
        p.muted { (list.matching) " of " (list.total) " workloads" @if list.pages > 1 { ", page " (f.page) " of " (list.pages) } }
        table.workloads {
            thead { tr { th { "Workload" } th { "Containers" } th { "Policy" } th { "Rollout" } } }
            tbody {
                @for row in &list.rows {
                    tr data-id=(row.id.to_string()) {
                        td {
                            a href=(workload_url(&list.unit, &row.id)) { (row.id) }
                            @if !row.in_git { div.muted { "not in git" } }
                            @if let Some(e) = &row.error { div.error { (e) } }
                        }
                        td { (containers_cell(row)) }
                        td.policy { (policy_text(row)) }
                        td { (status_text(&row.status)) }
                    }
                }
            }
        }
        @if list.pages > 1 {
            nav.pages {
                @if f.page > 1 { a rel="prev" href=(workloads_url(&list.unit, f, f.page - 1)) { "← Previous" } " " }
                @if f.page < list.pages { a rel="next" href=(workloads_url(&list.unit, f, f.page + 1)) { "Next →" } }
            }
        }
    };
    layout("Workloads", Some(chrome), false, content)
}

/// One workload: containers and their tags, policies with their actions, history.
pub(crate) fn workload(chrome: &Chrome, detail: &WorkloadDetail) -> Html<String> {
    let unit = &detail.unit;
    let id = detail.id.to_string();
    let policy_form = |action: &str, label: &str| {
        html! {
            form.inline method="post" action="/ui/policy" {
                (chrome.csrf())
                input type="hidden" name="unit" value=(unit);
                input type="hidden" name="id" value=(id);
                input type="hidden" name="action" value=(action);
                button type="submit" name="do" value=(action) { (label) }
            }
        }
    };
    let content = html! {
        h1 { (detail.id) }
        @if let Some(e) = &detail.error { p.error { (e) } }
        @match &detail.row {
            None => p.error { "Unit " (unit) " has no workload " (detail.id) "." },
            Some(row) => {
                dl {
                    @if let Some(loc) = &row.location { dt { "Manifest" } dd { code { (loc) } } }
                    dt { "Rollout" } dd { (status_text(&row.status)) }
                    dt { "Policy" } dd.policy { (policy_text(row)) }
                }
                @if let Some(e) = &row.error { pre.detail.error { (e) } }
                @if row.in_git {
                    section.actions {
                        h2 { "Actions" }
                        @if row.policies.automated { (policy_form("deautomate", "Deautomate")) } @else { (policy_form("automate", "Automate")) }
                        @if row.policies.locked.is_some() {
                            (policy_form("unlock", "Unlock"))
                        } @else {
                            form.inline method="post" action="/ui/policy" {
                                (chrome.csrf())
                                input type="hidden" name="unit" value=(unit);
                                input type="hidden" name="id" value=(id);
                                input type="hidden" name="action" value="lock";
                                input type="text" name="message" placeholder="why (optional)" aria-label="lock message";
                                button type="submit" name="do" value="lock" { "Lock" }
                            }
                        }
                    }
                }
                h2 { "Containers" }
                (containers_cell(row))
            }
        }
        @match &detail.images {
            Err(e) => p.muted { "Images: " (e) },
            Ok(containers) => {
                @for c in containers {
                    section.images {
                        h3 { "Tags of " (c.container) }
                        p.muted { "filter " code { (c.filter.to_string()) }
                            @match &c.latest { Some(t) => { ", its choice " code { (t) } }, None => ", no tag passes it" } }
                        @if let Some(e) = &c.error { p.error { (e) } }
                        @if !c.available.is_empty() {
                            form method="post" action="/ui/release" {
                                (chrome.csrf())
                                input type="hidden" name="unit" value=(unit);
                                input type="hidden" name="id" value=(id);
                                input type="hidden" name="dry_run" value="true";
                                table.tags {
                                    thead { tr { th {} th { "Tag (newest first)" } th { "Built" } th {} } }
                                    tbody {
                                        @for t in c.available.iter().take(50) {
                                            @let image = c.current.with_tag(&t.tag).to_string();
                                            @let current = c.current.tag() == Some(t.tag.as_str());
                                            @let chosen = c.latest.as_deref() == Some(t.tag.as_str());
                                            tr.current[current].chosen[chosen] {
                                                td { input type="radio" name="image" value=(image) aria-label=(image) checked[current]; }
                                                td { code { (t.tag) } }
                                                td { @if let Some(at) = t.created { (when(at)) } }
                                                td { @if current { span.badge { "in git" } } " " @if chosen { span.badge.automated { "filter's choice" } } }
                                            }
                                        }
                                    }
                                }
                                button type="submit" { "Release… (dry run first)" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        @if detail.history.is_empty() { p.muted { "No commit by this fluxd changed it (that it remembers)." } }
        @else { (job_table(unit, &detail.history)) }
    };
    layout(&id, Some(chrome), false, content)
}

/// The last syncs and jobs, with what each commit changed.
pub(crate) fn history(chrome: &Chrome, history: &view::History) -> Html<String> {
    let content = html! {
        h1 { "History of " (history.unit) }
        h2 { "Syncs" }
        @if history.syncs.is_empty() { p.muted { "No sync yet." } }
        @else {
            table.syncs {
                thead { tr { th { "When" } th { "Revision" } th { "Outcome" } th { "Took" } th { "Objects" } } }
                tbody {
                    @for s in &history.syncs {
                        tr {
                            td { (when(s.finished_at)) }
                            td { (revision(Some(&s.summary.revision))) }
                            td { @if s.summary.success { span.badge.succeeded { "succeeded" } } @else { span.badge.failed { "failed" } } }
                            td { (duration(s.duration)) }
                            td {
                                (sync_counts(s))
                                @for e in s.summary.errors.iter().take(10) { div.error { (e.message()) } }
                                @if s.summary.errors.len() > 10 { div.muted { "… and " (s.summary.errors.len() - 10) " more errors" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Jobs and commits" }
        @if history.jobs.is_empty() { p.muted { "No job yet." } } @else { (job_table(&history.unit, &history.jobs)) }
    };
    layout("History", Some(chrome), false, content)
}

/// A job's page: its state while it runs (followed live), then what it did; a release's dry
/// run offers the real release.
pub(crate) fn job(chrome: &Chrome, id: &str, job: &JobView) -> Html<String> {
    let unit = chrome.unit.clone().unwrap_or_default();
    let entry = view::job_entry(&crate::jobs::JobId::new(id), job);
    let pending = matches!(job, JobView::Queued | JobView::Running);
    let dry_run = match job {
        JobView::Succeeded { result } => match result.as_ref() {
            JobResult::Release(r) if r.dry_run => Some(r),
            _ => None,
        },
        _ => None,
    };
    let content = html! {
        h1 { "Job " code { (id) } }
        p { (job_state(entry.state)) " " (entry.kind) }
        @if pending { p.muted { "This page follows the job: it changes when the job does." } }
        @if let Some(e) = &entry.error { pre.detail.error { (e) } }
        @if let Some(rev) = &entry.revision { p { "Commit " (revision(Some(rev))) } }
        @if !entry.changes.is_empty() { ul.changes { @for line in &entry.changes { li { (line) } } } }
        @if let Some(result) = dry_run {
            @let updates: Vec<(String, String)> = result.workloads.iter().flat_map(|w| w.containers.iter().filter_map(move |c| match &c.outcome {
                flux_core::automation::ContainerOutcome::Updated { to } => Some((w.workload.to_string(), to.to_string())),
                _ => None,
            })).collect();
            @if updates.is_empty() {
                p { "Nothing would change." }
            } @else {
                p { "That was a dry run: nothing was committed." }
                @for (workload, image) in &updates {
                    form method="post" action="/ui/release" {
                        (chrome.csrf())
                        input type="hidden" name="unit" value=(unit);
                        input type="hidden" name="id" value=(workload);
                        input type="hidden" name="image" value=(image);
                        input type="hidden" name="dry_run" value="false";
                        button type="submit" { "Release " (image) " to " (workload) }
                    }
                }
            }
        }
        @for w in &entry.workloads { p { a href=(workload_url(&unit, w)) { "Back to " (w) } } }
    };
    layout(&format!("Job {id}"), Some(chrome), pending, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_git_is_escaped() {
        let hostile = "<script>alert(\"x\")</script>&'";
        let page = refused(StatusCode::BAD_REQUEST, hostile);
        let (_, body) = (page.status(), page.into_body());
        let bytes = futures::executor::block_on(axum::body::to_bytes(body, 1 << 20)).expect("body");
        let html = String::from_utf8(bytes.to_vec()).expect("utf-8");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;'"), "{html}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc("demo:deployment/app"), "demo%3Adeployment%2Fapp");
        assert_eq!(enc("a b&c=\"<"), "a%20b%26c%3D%22%3C");
        assert_eq!(enc("ok-1.2_~"), "ok-1.2_~");
    }
}
