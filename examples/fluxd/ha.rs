//! High availability (`--ha-namespace`): the replicas' Leases through flux-k8s's [`KubeLeases`],
//! adapted to flux-daemon's [`LeaseStore`] port, under a [`LeaseCoordinator`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flux_daemon::ha::{AnnotationChanges, LeaseCoordinator, LeaseRecord, LeaseStore, LeaseTiming, check_replica_id};
use flux_k8s::{ClusterOptions, KubeCluster, KubeLeases, LeaseState};

use crate::flags::Flags;

/// The value of the Leases' group label: one fluxd Deployment per namespace.
const LEASE_GROUP: &str = "fluxd";

/// flux-k8s's Leases as flux-daemon's store.
#[derive(Debug)]
struct KubeLeaseStore(KubeLeases);

fn record(state: LeaseState) -> LeaseRecord {
    LeaseRecord { name: state.name, holder: state.holder, version: state.version, annotations: state.annotations }
}

#[async_trait]
impl LeaseStore for KubeLeaseStore {
    async fn list(&self) -> flux_core::Result<Vec<LeaseRecord>> {
        Ok(self.0.list().await?.into_iter().map(record).collect())
    }

    async fn write(
        &self,
        name: &str,
        previous: Option<&LeaseRecord>,
        holder: Option<&str>,
        annotations: &AnnotationChanges,
        duration: Duration,
    ) -> flux_core::Result<LeaseRecord> {
        let previous = previous.map(|p| LeaseState {
            name: p.name.clone(),
            holder: p.holder.clone(),
            version: p.version.clone(),
            annotations: p.annotations.clone(),
        });
        self.0.write_annotated(name, previous.as_ref(), holder, annotations, duration).await.map(record)
    }
}

/// This replica's id: --ha-replica-id, else env `POD_NAME`, else the host name (lower-cased).
pub(crate) fn replica_id(flags: &Flags) -> Result<String, String> {
    let host = || {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()))
            .or_else(|| std::env::var("HOSTNAME").ok())
    };
    let id = flags
        .ha_replica_id
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()))
        .or_else(host)
        .ok_or("--ha-namespace: no --ha-replica-id, no POD_NAME and no host name to name this replica")?
        .to_lowercase();
    check_replica_id(&id).map_err(|e| e.to_string())?;
    Ok(id)
}

/// The API address this replica advertises: --ha-advertise-address, else `pod_ip` (env
/// `POD_IP`) with --listen's port, else --listen unless it is every interface; `None` then.
pub(crate) fn advertised_address(flags: &Flags, pod_ip: Option<&str>) -> Result<Option<String>, String> {
    if let Some(address) = &flags.ha_advertise_address {
        flux_daemon::ha::check_api_address(address).map_err(|e| e.to_string())?;
        return Ok(Some(address.clone()));
    }
    let listen = flags.listen;
    if let Some(ip) = pod_ip.map(str::trim).filter(|ip| !ip.is_empty()) {
        let ip: std::net::IpAddr = ip
            .parse()
            .map_err(|e| format!("env POD_IP {ip:?} is not an IP address ({e}): set --ha-advertise-address"))?;
        return Ok(Some(std::net::SocketAddr::new(ip, listen.port()).to_string()));
    }
    Ok((!listen.ip().is_unspecified()).then(|| listen.to_string()))
}

/// The coordinator when --ha-namespace is given (and this is a daemon, not --once or --dry-run).
pub(crate) async fn coordinator(flags: &Flags) -> flux_core::Result<Option<Arc<LeaseCoordinator>>> {
    let Some(namespace) = flags.ha_namespace.as_deref().filter(|_| !flags.once && !flags.dry_run) else {
        return Ok(None);
    };
    let replica = replica_id(flags).map_err(flux_core::Error::other)?;
    let kube = match &flags.kubeconfig {
        Some(path) => KubeCluster::from_kubeconfig(path, ClusterOptions::default()).await?,
        None => KubeCluster::infer(ClusterOptions::default()).await?,
    };
    let pod_ip = std::env::var("POD_IP").ok();
    let address = advertised_address(flags, pod_ip.as_deref())
        .map_err(|e| flux_core::Error::invalid(flux_core::Location::file("--ha-advertise-address"), e))?;
    let timing = LeaseTiming::new(flags.ha_lease_duration);
    let leases = KubeLeases::new(&kube, namespace, LEASE_GROUP).with_timeout(timing.call_timeout());
    tracing::info!(namespace, replica = %replica, lease_duration = ?timing.duration, api_address = ?address, "high availability on: Leases");
    let mut coordinator = LeaseCoordinator::new(&replica, Arc::new(KubeLeaseStore(leases)), timing)?;
    match address {
        Some(address) => coordinator = coordinator.with_address(address),
        None => tracing::warn!(
            replica = %replica,
            "no API address to advertise (--listen is every interface, no POD_IP, no --ha-advertise-address): \
             the other replicas answer writes for this replica's units with 503 instead of forwarding them"
        ),
    }
    Ok(Some(Arc::new(coordinator)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from([&["fluxd", "--git-url=/r"], args].concat()).expect("flags")
    }

    #[test]
    fn the_advertised_address_is_the_flag_else_the_pod_ip_else_a_specific_listen_address() {
        let given = flags(&["--ha-advertise-address=http://flux-0.flux:3030", "--listen=:3030"]);
        assert_eq!(advertised_address(&given, Some("10.0.0.9")), Ok(Some("http://flux-0.flux:3030".to_owned())));
        let every = flags(&["--listen=:3031"]);
        assert_eq!(advertised_address(&every, Some("10.0.0.9")), Ok(Some("10.0.0.9:3031".to_owned())));
        assert_eq!(advertised_address(&every, Some("fd00::9")), Ok(Some("[fd00::9]:3031".to_owned())));
        assert_eq!(advertised_address(&every, None), Ok(None), "every interface is no address to advertise");
        let local = flags(&["--listen=127.0.0.1:3032"]);
        assert_eq!(advertised_address(&local, Some("")), Ok(Some("127.0.0.1:3032".to_owned())));
        assert!(advertised_address(&every, Some("pod")).is_err_and(|e| e.contains("POD_IP")));
        let bad = flags(&["--ha-advertise-address=ftp://x"]);
        assert!(advertised_address(&bad, None).is_err());
    }
}
