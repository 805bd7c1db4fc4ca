//! One log capture for the whole test binary. A tracing subscriber is process-global and the server
//! installs its own with `try_init` when it starts, so the capture is installed before any server of
//! this binary starts ([`super::TestServer::start_with_clock`] calls [`captured`]); tests that check
//! that no secret is ever logged read it with [`text`].

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged in this test binary so far (installs the capture on first use).
pub fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        capture
    })
    .0
    .clone()
}

/// The captured log lines as text.
pub fn text() -> String {
    let logs = captured();
    let bytes = logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    String::from_utf8_lossy(&bytes).into_owned()
}
