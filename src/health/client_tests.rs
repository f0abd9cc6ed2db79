//! Unit tests of the health socket's client: a daemon that is not running, a timeout
//! and a malformed answer are told apart.
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn tells_not_running_timeout_and_malformed_apart() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let limit = Duration::from_millis(300);

        let missing = dir.path().join("missing.sock");
        let e = request(&missing, "GET", "/health", limit)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::NoSocket(_)) && e.not_running(),
            "{e:?}"
        );

        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        let e = request(&stale, "GET", "/health", limit).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Refused(_)) && e.not_running(),
            "{e:?}"
        );

        // Listening but never answering (connect succeeds from the backlog).
        let silent = dir.path().join("silent.sock");
        let _held = UnixListener::bind(&silent).expect("bind");
        let started = Instant::now();
        let e = request(&silent, "GET", "/health", limit).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Timeout(300)) && !e.not_running(),
            "{e:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "bounded");

        let garbage = dir.path().join("garbage.sock");
        let l = UnixListener::bind(&garbage).expect("bind");
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        });
        let e = request(&garbage, "GET", "/health", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Malformed(_)), "{e:?}");

        let e = request(&missing, "GET", "/health HTTP/1.1\r\nX: y", limit)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ClientError::Io(io) if io.kind() == io::ErrorKind::InvalidInput),
            "{e:?}"
        );
    });
}
