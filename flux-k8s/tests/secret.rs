//! KubeSecret against a real kube-apiserver: data written only if the Secret is still at the
//! version read (a stale writer loses with a Conflict and changes nothing).

mod common;

use common::*;
use flux_k8s::{ClusterOptions, KubeSecret};
use flux_testenv::KubeApiServer;
use flux_testenv::kube::ADMIN;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

#[test]
fn data_is_written_only_at_the_version_read() {
    let Some(server) = KubeApiServer::start() else { return };
    runtime().block_on(async {
        let cluster = cluster(&server, ADMIN, ClusterOptions::default()).await;
        let empty = Secret {
            metadata: ObjectMeta { name: Some("flux-git-deploy".into()), ..Default::default() },
            ..Default::default()
        };
        Api::<Secret>::namespaced(cluster.client().clone(), "default")
            .create(&PostParams::default(), &empty)
            .await
            .expect("an empty Secret");
        let secret = KubeSecret::new(&cluster, Some("default"), "flux-git-deploy");
        let (none, version) = secret.data_at("identity").await.expect("read");
        assert!(none.is_none(), "no key yet");
        // Two writers from the same read: the first wins, the second is refused.
        secret.set_data_at(&[("identity", b"first")], &version).await.expect("the first writer");
        let second = secret.set_data_at(&[("identity", b"second")], &version).await;
        assert!(matches!(second, Err(flux_core::Error::Conflict { .. })), "a stale writer loses: {second:?}");
        let (value, newer) = secret.data_at("identity").await.expect("read");
        assert_eq!(value.map(|v| v.expose().to_vec()), Some(b"first".to_vec()), "the first key stays");
        assert_ne!(newer, version);
        secret.set_data_at(&[("identity.pub", b"pub")], &newer).await.expect("at the version read");
        assert_eq!(secret.data("identity").await.expect("read").map(|v| v.expose().to_vec()), Some(b"first".to_vec()));
    });
}
