//! flux-core's Registry conformance suite against a real `docker-registry`: plain HTTP, and TLS
//! with htpasswd credentials.

mod common;

use std::collections::HashMap;

use flux_core::testkit::registry::{fixture, run};
use flux_registry::{Credential, DockerConfig, OciRegistry, RegistryConfig};
use flux_testenv::TestRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_contract_over_plain_http() {
    let Some(server) = TestRegistry::start() else { return };
    common::push_fixture(&server.pusher(), &fixture(server.host())).await;
    let registry = OciRegistry::new(common::plain_config(server.host())).expect("registry");
    run(&registry, server.host()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_contract_over_tls_with_htpasswd_and_small_pages() {
    let Some(server) = TestRegistry::start_tls("flux", "tls-pa55word") else { return };
    common::push_fixture(&server.pusher(), &fixture(server.host())).await;
    let registry = OciRegistry::new(RegistryConfig {
        ca_bundles: vec![server.ca_pem().expect("a TLS registry has a CA").to_owned()],
        credentials: HashMap::from([(server.host().to_owned(), Credential::basic("flux", "tls-pa55word"))]),
        docker_config: DockerConfig::Disabled,
        page_size: Some(25),
        ..RegistryConfig::default()
    })
    .expect("registry");
    run(&registry, server.host()).await;
}
