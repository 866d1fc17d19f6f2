//! The reference router as a target: started in this process on a loopback
//! socket, with an in-memory ledger so every run starts from the configured
//! balances.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::TargetError;
use crate::router::config::RouterConfig;
use crate::router::{Connector, Defects, Router, serve};

/// How long a stopping router may take to finish its connections.
const STOP_GRACE: Duration = Duration::from_secs(6);

/// The reference router serving on loopback.
#[derive(Debug)]
pub struct Serving {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Serves `config` (with `defects`) on a free loopback port.
pub async fn start(mut config: RouterConfig, defects: Defects) -> Result<Serving, TargetError> {
    // A run starts from the configured balances: its ledger lives in memory.
    config.ledger_path = None;
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.defects = defects;
    let router = Router::new(config, Connector::tcp())
        .await
        .map_err(|e| TargetError::Router(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(TargetError::Listen)?;
    let addr = listener.local_addr().map_err(TargetError::Listen)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, async move {
        let _ = stopped.await;
    }));
    Ok(Serving { addr, stop, task })
}

impl Serving {
    /// The API base, e.g. `http://127.0.0.1:40123/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(STOP_GRACE, self.task).await;
    }
}
