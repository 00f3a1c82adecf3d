//! The status page (`/ui/`) in a real headless Chromium (Debian's, over chromedriver), against
//! fluxd on the real git daemon, registry and kube-apiserver: sign in, the workloads, a lock
//! through the page whose commit lands in git while another window updates by itself (server-
//! sent events, no reload), a broken manifest under Needs attention with its file and line, a
//! script in an annotation shown as text and never run, and requests without the session or
//! with a wrong CSRF token refused. Screenshots of each page go to the test's output directory
//! (`target/tmp/ui-screenshots`); with `FLUX_UPDATE_DOCS=1` the overview and the workload page
//! are also copied to `docs/` for the README.

use std::path::{Path, PathBuf};

use flux_testenv::{Browser, Chromedriver, wait_until};

use crate::harness::{Fluxd, PATIENCE, Servers, TOKEN};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";
const T3: &str = "2024-03-01T00:00:00Z";

/// A script and an event handler in a lock message: the page must show them as text.
const HOSTILE: &str =
    r#"<script>window.__pwned=1;document.title='pwned'</script><img src=x onerror="window.__pwned=2">"#;

fn deployment(name: &str, image: &str, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: demo\n{annotations}spec:\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    \
         spec:\n      containers:\n      - name: {name}\n        image: {image}\n"
    )
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// Takes a screenshot named `name`.png; with `FLUX_UPDATE_DOCS=1` and `docs` given, also
/// copies it to `docs/<docs>`.
fn shoot(browser: &Browser, name: &str, docs: Option<&str>) {
    let path = screenshots().join(format!("{name}.png"));
    browser.screenshot(&path).expect("screenshot");
    eprintln!("screenshot: {}", path.display());
    if let Some(docs) = docs
        && std::env::var("FLUX_UPDATE_DOCS").is_ok_and(|v| v == "1")
    {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs").join(docs);
        std::fs::create_dir_all(target.parent().expect("docs/")).expect("create docs/");
        std::fs::copy(&path, &target).expect("copy the screenshot to docs/");
    }
}

/// Signs `browser` in with `token` through the form.
fn sign_in(browser: &Browser, url: &str, token: &str) {
    browser.goto(&format!("{url}/ui/")).expect("open the page");
    assert!(browser.url().expect("url").ends_with("/ui/login"), "not signed in: sent to the sign-in form");
    let Some(field) = browser.find("input[name=token]").expect("find") else {
        let source = browser.execute("return document.documentElement.outerHTML;", vec![]).unwrap_or_default();
        panic!("no token field at {:?}: {source}", browser.url());
    };
    field.send_keys(token).expect("type the token");
    browser.find("form button[type=submit]").expect("find").expect("the button").click().expect("submit");
}

/// Waits until `check` holds, polling; panics with `what` and the page's text otherwise.
fn wait_for(browser: &Browser, what: &str, mut check: impl FnMut(&Browser) -> bool) {
    let ok = wait_until(PATIENCE, || check(browser));
    let text = browser.text_of("main").unwrap_or_default();
    assert!(ok, "{what}; the page says:\n{text}");
}

/// The text of workload `id`'s row on the workloads page.
fn row_text(browser: &Browser, id: &str) -> String {
    browser.text_of(&format!("tr[data-id='{id}']")).unwrap_or_default()
}

/// Whether `text` names `file` with a line: `file:<digits>`.
fn names_file_and_line(text: &str, file: &str) -> bool {
    text.match_indices(&format!("{file}:"))
        .any(|(at, m)| text[at + m.len()..].chars().next().is_some_and(|c| c.is_ascii_digit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_real_browser() {
    let Some(servers) = Servers::start() else { return };
    let Some(driver) = Chromedriver::start() else { return };
    let reg = servers.registry.host().to_owned();
    let images = [
        ("demo/app:1.0.0", T1),
        ("demo/app:1.2.0", T2),
        ("demo/web:v1.0", T1),
        ("demo/web:v1.1", T2),
        ("demo/web:v2.0", T3),
    ];
    for (image, at) in images {
        servers.push(image, at).await;
    }
    let hostile_yaml = HOSTILE.replace('"', "\\\"");
    let files = [
        ("deploy/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n".to_owned()),
        ("deploy/app.yaml", deployment("app", &format!("{reg}/demo/app:1.0.0"), "")),
        (
            "deploy/web.yaml",
            deployment("web", &format!("{reg}/demo/web:v1.0"), "  annotations:\n    fluxcd.io/tag.web: glob:v1.*\n"),
        ),
        (
            "deploy/notes.yaml",
            deployment(
                "notes",
                &format!("{reg}/demo/app:1.0.0"),
                &format!(
                    "  annotations:\n    fluxcd.io/locked: \"true\"\n    fluxcd.io/locked_msg: \"{hostile_yaml}\"\n"
                ),
            ),
        ),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    servers.commit(&refs, "The demo app");
    let fluxd = Fluxd::start(
        &servers,
        &["--git-poll-interval=1s", "--sync-interval=1m", "--automation-interval=1h", "--sync-garbage-collection"],
    );
    let url = fluxd.url.clone();
    assert!(
        wait_until(PATIENCE, || servers.repo.git(&["tag", "--list"]).contains("flux-sync")),
        "fluxd did not sync:\n{}",
        fluxd.log()
    );

    // Sign in; a wrong token is refused with the form again.
    let watcher = driver.browser().expect("a browser");
    watcher.goto(&format!("{url}/ui/login")).expect("open the sign-in form");
    shoot(&watcher, "login", None);
    sign_in(&watcher, &url, "not-the-token");
    wait_for(&watcher, "a wrong token is refused", |b| {
        b.text_of("main").is_ok_and(|t| t.contains("not the API token"))
    });
    assert!(watcher.url().expect("url").ends_with("/ui/login"), "a wrong token signed in");
    sign_in(&watcher, &url, TOKEN);
    wait_for(&watcher, "the overview after signing in", |b| b.title().is_ok_and(|t| t.starts_with("Overview")));
    let session = watcher.cookie("flux_ui_session").expect("cookies").expect("the session cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert!(session["expiry"].as_u64().is_some(), "the cookie expires: {session}");
    let overview = watcher.text_of("main").expect("text");
    assert!(overview.contains("Unit default") && overview.contains("Needs attention"), "{overview}");
    assert!(!overview.contains(TOKEN), "the token is shown");
    shoot(&watcher, "overview", None);

    // The workloads; the script in the lock message is text, and never ran.
    watcher.goto(&format!("{url}/ui/workloads")).expect("open the workloads");
    for id in ["demo:deployment/app", "demo:deployment/web", "demo:deployment/notes"] {
        assert!(!row_text(&watcher, id).is_empty(), "{id} is not listed:\n{}", watcher.text_of("main").expect("text"));
    }
    let notes = row_text(&watcher, "demo:deployment/notes");
    assert!(notes.contains("<script>window.__pwned=1;document.title='pwned'</script>"), "shown as text: {notes}");
    assert!(notes.contains("onerror="), "{notes}");
    let ran = watcher
        .execute(
            "return [window.__pwned === undefined, document.title, document.querySelectorAll('main script, main img').length];",
            vec![],
        )
        .expect("run a check");
    assert_eq!(ran[0], true, "the annotation's script ran: {ran}");
    assert!(!ran[1].as_str().unwrap_or_default().contains("pwned"), "{ran}");
    assert_eq!(ran[2], 0, "the annotation became elements: {ran}");
    assert!(row_text(&watcher, "demo:deployment/app").contains(&format!("{reg}/demo/app:1.0.0")));
    shoot(&watcher, "workloads", None);
    // The filter and its page, as plain links.
    watcher.goto(&format!("{url}/ui/workloads?q=web")).expect("filter");
    assert!(!row_text(&watcher, "demo:deployment/web").is_empty());
    assert!(row_text(&watcher, "demo:deployment/app").is_empty(), "the filter let app through");

    // The watcher stays on the workloads page; live updates are on.
    watcher.goto(&format!("{url}/ui/workloads")).expect("open the workloads");
    wait_for(&watcher, "the event stream connects", |b| {
        b.execute("return document.body.getAttribute('data-live');", vec![]).is_ok_and(|v| v == "on")
    });
    watcher.execute("window.__still_the_same_page = true;", vec![]).expect("mark the page");
    assert!(!row_text(&watcher, "demo:deployment/web").contains("locked"));

    // Another window locks web through its page, with a message.
    let actor = driver.browser().expect("a second browser");
    sign_in(&actor, &url, TOKEN);
    wait_for(&actor, "the overview", |b| b.title().is_ok_and(|t| t.starts_with("Overview")));
    actor.goto(&format!("{url}/ui/workload?id=demo%3Adeployment%2Fweb")).expect("open web");
    let page = actor.text_of("main").expect("text");
    assert!(page.contains("glob:v1.*"), "web's page: {page}");
    // Its tags newest first, the one in git and the filter's choice marked.
    let tags: Vec<String> = actor
        .find_all("table.tags tbody tr td:nth-child(2)")
        .expect("find")
        .iter()
        .map(|t| t.text().expect("text"))
        .collect();
    assert_eq!(tags, ["v2.0", "v1.1", "v1.0"], "{page}");
    assert_eq!(actor.text_of("table.tags tr.chosen td:nth-child(2)").expect("text"), "v1.1", "the filter's choice");
    assert_eq!(actor.text_of("table.tags tr.current td:nth-child(2)").expect("text"), "v1.0", "the tag in git");
    let before = servers.repo.head();
    actor
        .find("input[name=message]")
        .expect("find")
        .expect("the lock message field")
        .send_keys("hold for the demo")
        .expect("type");
    actor.find("button[value=lock]").expect("find").expect("the lock button").click().expect("lock");
    wait_for(&actor, "an action leads to its job's page", |b| b.url().is_ok_and(|u| u.contains("/ui/job?")));
    shoot(&actor, "job", None);
    let after = servers.wait_for_commit(&before);
    let diff = servers.changed_lines(&before, &after);
    assert!(diff.contains("+++ b/deploy/web.yaml"), "{diff}");
    assert!(diff.contains("+    fluxcd.io/locked: \"true\"") && diff.contains("hold for the demo"), "{diff}");
    let message = servers.repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Flux-Job: "), "the commit names its job: {message}");
    wait_for(&actor, "the job page follows the job to its end", |b| {
        b.text_of("main").is_ok_and(|t| t.contains("succeeded"))
    });

    // The watcher's page changed by itself: the same page (no reload), now showing the lock.
    wait_for(&watcher, "the workloads page shows the lock by itself", |b| {
        let row = row_text(b, "demo:deployment/web");
        row.contains("locked") && row.contains("\u{201c}hold for the demo\u{201d} by status page")
    });
    let same = watcher.execute("return window.__still_the_same_page === true;", vec![]).expect("check");
    assert_eq!(same, true, "the page was reloaded instead of updated");

    actor.goto(&format!("{url}/ui/workload?id=demo%3Adeployment%2Fweb")).expect("open web");
    wait_for(&actor, "web's history lists the lock", |b| {
        b.text_of("main").is_ok_and(|t| t.contains("demo:deployment/web: locked"))
    });
    shoot(&actor, "workload", Some("ui-workload.png"));
    // A release: the dry run first (nothing committed), then the real one from its page.
    actor.goto(&format!("{url}/ui/workload?id=demo%3Adeployment%2Fapp")).expect("open app");
    let target = format!("{reg}/demo/app:1.2.0");
    actor
        .find(&format!("input[name=image][value='{target}']"))
        .expect("find")
        .expect("the 1.2.0 choice")
        .click()
        .expect("choose");
    let before = servers.repo.head();
    actor
        .find("form[action='/ui/release'] button")
        .expect("find")
        .expect("the release button")
        .click()
        .expect("dry run");
    wait_for(&actor, "the dry run's result", |b| b.text_of("main").is_ok_and(|t| t.contains("That was a dry run")));
    let planned = actor.text_of("main").expect("text");
    assert!(planned.contains(&format!("{reg}/demo/app:1.0.0 → {target}")), "{planned}");
    assert_eq!(servers.repo.head(), before, "a dry run committed");
    shoot(&actor, "release-dry-run", None);
    actor.find("form[action='/ui/release'] button").expect("find").expect("the real release").click().expect("release");
    let after = servers.wait_for_commit(&before);
    assert_eq!(
        servers.changed_lines(&before, &after),
        format!(
            "--- a/deploy/app.yaml\n+++ b/deploy/app.yaml\n-        image: {reg}/demo/app:1.0.0\n+        image: {target}\n"
        )
    );
    wait_for(&actor, "the release job succeeds", |b| b.text_of("main").is_ok_and(|t| t.contains("succeeded")));

    actor.goto(&format!("{url}/ui/history")).expect("open the history");
    shoot(&actor, "history", None);

    // A broken manifest: the overview shows it under Needs attention, with file and line, by itself.
    watcher.goto(&format!("{url}/ui/")).expect("open the overview");
    wait_for(&watcher, "the event stream connects", |b| {
        b.execute("return document.body.getAttribute('data-live');", vec![]).is_ok_and(|v| v == "on")
    });
    let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n  namespace: demo\ndata: [unclosed\n";
    servers.commit(&[("deploy/broken.yaml", broken)], "A broken manifest");
    wait_for(&watcher, "Needs attention names deploy/broken.yaml:<line>", |b| {
        b.text_of("section.attention").is_ok_and(|t| names_file_and_line(&t, "deploy/broken.yaml"))
    });
    shoot(&watcher, "overview-attention", Some("ui-overview.png"));

    // Plain HTTP: no session, a wrong CSRF token, another site: refused, and nothing committed.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let anonymous = http.get(format!("{url}/ui/workloads")).send().await.expect("reach fluxd");
    assert_eq!(anonymous.status().as_u16(), 303);
    assert_eq!(anonymous.headers()["location"], "/ui/login");
    let events = http.get(format!("{url}/ui/events")).send().await.expect("reach fluxd");
    assert_eq!(events.status().as_u16(), 401);
    let cookie = format!("flux_ui_session={}", session["value"].as_str().expect("its value"));
    let head = servers.repo.head();
    let unlock = |csrf: &str| format!("id=demo%3Adeployment%2Fweb&action=unlock&csrf={csrf}");
    let post = |cookie: Option<String>, body: String| {
        let mut request = http
            .post(format!("{url}/ui/policy"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    assert_eq!(post(None, unlock("x")).await.expect("post").status().as_u16(), 401, "no session");
    assert_eq!(post(Some(cookie.clone()), unlock("wrong")).await.expect("post").status().as_u16(), 403, "wrong CSRF");
    assert_eq!(
        post(Some(cookie.clone()), "id=demo%3Adeployment%2Fweb&action=unlock".into())
            .await
            .expect("post")
            .status()
            .as_u16(),
        403
    );
    let page = http.get(format!("{url}/ui/")).header("cookie", &cookie).send().await.expect("get");
    assert_eq!(page.status().as_u16(), 200, "the session itself works over plain HTTP");
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(servers.repo.head(), head, "a refused request committed");
    drop((actor, watcher));
    let log = fluxd.log();
    assert!(!log.contains(TOKEN), "the token reached the log");
    fluxd.terminate();
}
