//! The status page over a daemon of in-memory adapters, served on a loopback port and asked
//! over real HTTP: sign-in, sessions, CSRF, headers, escaping.

use std::sync::Arc;

use flux_core::SyncIdentity;
use flux_core::generate::ManifestGenerator;
use flux_core::memory::{MemoryCluster, MemoryRegistry, MemorySource};
use flux_core::sync::SyncConfig;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

use super::pages::enc;

const FORM: &str = "application/x-www-form-urlencoded";

/// `fields` as a form body.
fn encode(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

use crate::{ApiAuth, ApiToken, Daemon, SyncUnit};

const TOKEN: &str = "ui-test-token-8c1f";

const HOSTILE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  \
annotations:\n    fluxcd.io/locked: \"true\"\n    fluxcd.io/locked_msg: \"<script>document.title='pwned'</script>\"\n\
spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: registry.test/web:1.0\n";

/// Serves a one-unit daemon's router; its URL.
async fn serve() -> String {
    let source =
        Arc::new(MemorySource::with_files([("deploy/web.yaml".to_owned(), HOSTILE.to_owned())]).expect("source"));
    let generator = Arc::new(ManifestGenerator::new(Default::default()));
    let config = SyncConfig::new(SyncIdentity::new("ui-test").expect("identity"), vec!["deploy".to_owned()]);
    let unit = SyncUnit::new(
        "shop",
        source,
        Arc::new(MemoryCluster::new()),
        Arc::new(MemoryRegistry::new()),
        generator,
        config,
    )
    .expect("unit");
    let daemon = Arc::new(Daemon::builder().unit(unit).build().expect("daemon"));
    let router = daemon.router(ApiAuth::token(ApiToken::new(TOKEN).expect("token")), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Signs in; the session cookie (`name=value`) and the whole `Set-Cookie`.
async fn sign_in(url: &str) -> (String, String) {
    let response = client()
        .post(format!("{url}/ui/login"))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", TOKEN)]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/ui/");
    let set = response.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    (set.split(';').next().expect("name=value").to_owned(), set)
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn nothing_is_readable_without_signing_in_and_the_token_is_checked() {
    let url = serve().await;
    let anonymous = client().get(format!("{url}/ui/workloads")).send().await.expect("get");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER, "a page sends to the sign-in form");
    assert_eq!(anonymous.headers()[LOCATION], "/ui/login");
    let events = client().get(format!("{url}/ui/events")).send().await.expect("get");
    assert_eq!(events.status(), StatusCode::UNAUTHORIZED);
    let forged = client().get(format!("{url}/ui/")).header(COOKIE, "flux_ui_session=00ff").send().await.expect("get");
    assert_eq!(forged.status(), StatusCode::SEE_OTHER, "an unknown session is no session");

    let form = client().get(format!("{url}/ui/login")).send().await.expect("login form");
    assert_eq!(form.status(), StatusCode::OK);
    let csp = form.headers()[CONTENT_SECURITY_POLICY].to_str().expect("ascii").to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = form.text().await.expect("body");
    assert_eq!(html.matches("<input").count(), 1, "one field: {html}");
    assert!(html.contains("type=\"password\" name=\"token\""), "{html}");

    let wrong = client()
        .post(format!("{url}/ui/login"))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", "nope")]))
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let (cookie, set) = sign_in(&url).await;
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=28800"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");
    let page = client().get(format!("{url}/ui/workloads")).header(COOKIE, &cookie).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert!(html.contains("shop:deployment/web"), "{html}");
    assert!(!html.contains(TOKEN), "a page holds the token");

    let behind_tls = client()
        .post(format!("{url}/ui/login"))
        .header("X-Forwarded-Proto", "https")
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("token", TOKEN)]))
        .send()
        .await
        .expect("post");
    assert!(behind_tls.headers()[SET_COOKIE].to_str().expect("ascii").contains("; Secure"));
}

#[tokio::test]
async fn every_action_needs_the_sessions_csrf_token() {
    let url = serve().await;
    let (cookie, _) = sign_in(&url).await;
    let (other_cookie, _) = sign_in(&url).await;
    let page = client().get(format!("{url}/ui/")).header(COOKIE, &cookie).send().await.expect("get");
    let csrf = csrf_of(&page.text().await.expect("body"));
    let other = client().get(format!("{url}/ui/")).header(COOKIE, &other_cookie).send().await.expect("get");
    let other_csrf = csrf_of(&other.text().await.expect("body"));
    assert_ne!(csrf, other_csrf, "each session has its own token");

    let post = |cookie: Option<&str>, fields: Vec<(&'static str, String)>| {
        let mut request = client()
            .post(format!("{url}/ui/policy"))
            .header(CONTENT_TYPE, FORM)
            .body(encode(&fields.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie.to_owned());
        }
        request.send()
    };
    let fields = |csrf: &str| {
        vec![
            ("unit", "shop".to_owned()),
            ("id", "shop:deployment/web".to_owned()),
            ("action", "unlock".to_owned()),
            ("csrf", csrf.to_owned()),
        ]
    };
    assert_eq!(post(None, fields(&csrf)).await.expect("post").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post(Some(&cookie), fields("")).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(post(Some(&cookie), fields(&other_csrf)).await.expect("post").status(), StatusCode::FORBIDDEN);
    let cross_site = client()
        .post(format!("{url}/ui/sync"))
        .header(COOKIE, &cookie)
        .header("Origin", "http://evil.example")
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("unit", "shop"), ("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN, "another origin is refused even with the token");
    let ok = post(Some(&cookie), fields(&csrf)).await.expect("post");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER, "the right token queues a job");
    assert!(ok.headers()[LOCATION].to_str().expect("ascii").starts_with("/ui/job?unit=shop&id="));

    let out = client()
        .post(format!("{url}/ui/logout"))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .expect("post");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = client().get(format!("{url}/ui/")).header(COOKIE, &cookie).send().await.expect("get");
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn text_from_manifests_is_escaped_in_pages() {
    let url = serve().await;
    let (cookie, _) = sign_in(&url).await;
    for path in ["/ui/workloads?unit=shop", "/ui/workload?unit=shop&id=shop%3Adeployment%2Fweb"] {
        let html = client()
            .get(format!("{url}{path}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body");
        assert!(html.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "{path}: {html}");
        assert!(!html.contains("<script>document"), "{path}: the annotation became markup");
    }
}

#[tokio::test]
async fn a_sync_is_remembered_and_wakes_watchers() {
    let source = Arc::new(
        MemorySource::with_files([
            ("deploy/ns.yaml".to_owned(), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".to_owned()),
            ("deploy/web.yaml".to_owned(), HOSTILE.to_owned()),
        ])
        .expect("source"),
    );
    let generator = Arc::new(ManifestGenerator::new(Default::default()));
    let config = SyncConfig::new(SyncIdentity::new("ui-test").expect("identity"), vec!["deploy".to_owned()]);
    let unit = SyncUnit::new(
        "shop",
        source,
        Arc::new(MemoryCluster::new()),
        Arc::new(MemoryRegistry::new()),
        generator,
        config,
    )
    .expect("unit")
    .with_intervals(crate::Intervals {
        git_poll: std::time::Duration::from_secs(3600),
        sync: std::time::Duration::from_secs(3600),
        automation: std::time::Duration::from_millis(50),
    });
    let daemon = Arc::new(Daemon::builder().unit(unit).build().expect("daemon"));
    let shop = daemon.select(Some("shop")).expect("unit").clone();
    let mut changes = shop.changes();
    assert!(shop.sync_history().is_empty() && shop.next_sync_due().is_none());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stopping = daemon.stopping();
    let running = tokio::spawn(daemon.clone().run(async {
        let _ = stopped.await;
    }));
    changes.changed().await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while shop.sync_history().is_empty() {
                changes.changed().await;
            }
        })
        .await
        .is_ok(),
        "the start-up sync was not recorded"
    );
    let last = &shop.sync_history()[0];
    assert!(last.summary.success, "{:?}", last.summary.errors);
    assert!(shop.next_sync_due().is_some_and(|due| due > last.finished_at));
    assert!(shop.jobs().iter().any(|(_, view)| matches!(view, crate::results::JobView::Succeeded { .. })));
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while shop.next_automation_due().is_none() {
                changes.changed().await;
            }
        })
        .await
        .is_ok(),
        "the automation pass was not recorded"
    );
    assert!(!*stopping.borrow_and_update());
    let _ = stop.send(());
    running.await.expect("joined").expect("ran");
    assert!(*stopping.borrow_and_update(), "stopping says so once the daemon shuts down");
}
