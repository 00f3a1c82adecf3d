//! The Kubernetes client: kube's own stack (TLS, timeouts, base URI, authentication, extra
//! headers), with one difference: its TCP connections set `TCP_NODELAY`.
//!
//! kube 5 builds its `HttpConnector` with Nagle's algorithm on, and hyper turns it off only if
//! asked, after connecting. On a new TLS connection the client's handshake end and its first
//! request are small writes in a row: Nagle holds the request until the server acknowledges
//! the handshake, and the server delays that acknowledgement (Linux: 40 ms). Every new
//! connection's first answer took 40 ms more, which was most of a `fluxd --once` no-op of
//! 1,000 objects (measured in `benches/README.md`, `fluxd_once`). Go's net/http, which
//! kubectl uses, sets `TCP_NODELAY` on every connection.

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::{Body, ClientBuilder, ConfigExt};
use kube::{Client, Config};
use tower::{BoxError, ServiceBuilder};

use flux_core::Error;

/// A client of `config`'s server, as kube's `Client::try_from` would build it (rustls,
/// `config`'s connect, read and write timeouts, its authentication and headers), with
/// `TCP_NODELAY` on every connection: what [`KubeCluster`](crate::KubeCluster) uses, for an
/// embedder's own clients too. Unlike kube's, it does not decompress gzip (no gzip is asked
/// for), nor trace each request (flux-k8s logs its own), nor know when a client certificate
/// from an exec plugin expires (kube's `Client::valid_until`; tokens are refreshed as kube's).
///
/// # Errors
/// `Other` when the TLS configuration or the authentication cannot be built from `config`.
pub fn kube_client(config: Config) -> Result<Client, Error> {
    let cannot = |e: kube::Error| Error::other_with("cannot build a Kubernetes client", e);
    // As kube does: aws-lc unless the embedder installed a provider (with two providers built
    // in, rustls would not pick one).
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let tls = config.rustls_https_connector_with_connector(tcp).map_err(cannot)?;
    let mut connector = TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(cannot)?)
        .layer(config.extra_headers_layer().map_err(cannot)?)
        .map_err(BoxError::from)
        .service(http);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}
