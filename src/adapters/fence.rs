//! The operator's fence command, run once per stale-primary incident with
//! `/bin/sh -c`. It runs in the background so a slow fence never stalls the loop;
//! its exit status is logged, and it is killed after `FENCE_LIMIT`.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{error, info};

use crate::pass::act::{Fencer, StepError};

pub const FENCE_LIMIT: Duration = Duration::from_secs(60);

pub struct ShellFence {
    pub command: String,
    pub vip: Ipv4Addr,
    pub node_id: i32,
}

impl Fencer for ShellFence {
    async fn fence(&self, holder: &str) -> Result<(), StepError> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .env("VIP_FENCE_HOLDER_ENI", holder)
            .env("VIP_FENCE_VIP", self.vip.to_string())
            .env("VIP_FENCE_NODE_ID", self.node_id.to_string())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| StepError::plain(format!("fence_command: cannot start /bin/sh: {e}")))?;
        let holder = holder.to_owned();
        // A blocking waiter thread: polls the child so the limit can be enforced.
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + FENCE_LIMIT;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => {
                        return info!(holder = %holder, "fence_command succeeded");
                    }
                    Ok(Some(status)) => {
                        return error!(holder = %holder, status = %status, "fence_command failed");
                    }
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return error!(holder = %holder, limit_s = FENCE_LIMIT.as_secs(), "fence_command timed out and was killed");
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                    Err(e) => {
                        return error!(holder = %holder, error = %e, "fence_command: wait failed");
                    }
                }
            }
        });
        Ok(())
    }
}

/// No `fence_command` configured: nothing to run.
impl Fencer for Option<ShellFence> {
    async fn fence(&self, holder: &str) -> Result<(), StepError> {
        match self {
            Some(f) => f.fence(holder).await,
            None => Ok(()),
        }
    }
}
