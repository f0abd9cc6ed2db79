//! One shutdown primitive: the first SIGTERM/SIGINT asks for a graceful stop, a
//! second one forces it. Tests trigger it directly.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Shutdown {
    graceful: CancellationToken,
    forced: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen for SIGTERM and SIGINT; needs a tokio runtime.
    pub fn from_signals() -> std::io::Result<Self> {
        let s = Shutdown::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let task = s.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                task.trigger();
            }
        });
        Ok(s)
    }

    /// First call: graceful. Second call: forced.
    pub fn trigger(&self) {
        if self.graceful.is_cancelled() {
            self.forced.cancel();
        } else {
            self.graceful.cancel();
        }
    }

    /// Ask for a graceful stop only (idempotent; never forces).
    pub fn trigger_graceful(&self) {
        self.graceful.cancel();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.graceful.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.graceful.cancelled().await;
    }

    pub async fn forced(&self) {
        self.forced.cancelled().await;
    }

    /// The token the health socket stops on.
    pub fn token(&self) -> CancellationToken {
        self.graceful.clone()
    }
}
