//! The three simulators together, for `heartsuite sandbox` and the demo. Each simulator is its
//! own crate (written from `shared/reference/`, never from the connector code); this crate only
//! starts them side by side.

pub use heartsuite_sandbox_heartland as heartland;
pub use heartsuite_sandbox_netsuite as netsuite;

use std::net::SocketAddr;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("NetSuite sandbox: {0}")]
    NetSuite(#[from] netsuite::Error),
    #[error("Heartland sandbox: {0}")]
    Heartland(#[from] heartland::Error),
}

pub struct Options {
    pub netsuite_addr: String,
    pub gpapi_addr: String,
    pub retail_addr: String,
    pub netsuite: netsuite::Config,
    pub heartland: heartland::Config,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            netsuite_addr: "127.0.0.1:9101".into(),
            gpapi_addr: "127.0.0.1:9102".into(),
            retail_addr: "127.0.0.1:9103".into(),
            netsuite: netsuite::Config::default(),
            heartland: heartland::Config::default(),
        }
    }
}

pub struct Sandboxes {
    pub netsuite: netsuite::SandboxHandle,
    pub heartland: heartland::SandboxHandle,
}

impl Sandboxes {
    pub fn netsuite_addr(&self) -> SocketAddr {
        self.netsuite.addr()
    }
    pub async fn shutdown(self) {
        self.netsuite.shutdown().await;
        self.heartland.shutdown().await;
    }
}

async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr: addr.to_string(), source })
}

/// Starts all three (use port 0 in an address for a random port).
pub async fn start(opts: Options) -> Result<Sandboxes, Error> {
    let ns = bind(&opts.netsuite_addr).await?;
    let gp = bind(&opts.gpapi_addr).await?;
    let rt = bind(&opts.retail_addr).await?;
    let netsuite = netsuite::spawn(ns, opts.netsuite).await?;
    let heartland = heartland::spawn(gp, rt, opts.heartland).await?;
    Ok(Sandboxes { netsuite, heartland })
}
