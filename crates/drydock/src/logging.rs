//! Logging through `tracing` to stderr. `-v` shows host tool commands, `-vv` their output.

use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Progress bars currently drawn on stderr; log lines are printed above them instead of through
/// them (see [`set_progress`]).
static PROGRESS: Mutex<Option<indicatif::MultiProgress>> = Mutex::new(None);

/// While progress bars are drawn, route log lines through them so the two do not garble each
/// other; `None` when the bars are gone.
pub fn set_progress(mp: Option<indicatif::MultiProgress>) {
    if let Ok(mut g) = PROGRESS.lock() {
        *g = mp;
    }
}

/// stderr, or above the progress bars when they are drawn.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mp = PROGRESS.lock().ok().and_then(|g| g.clone());
        match mp {
            Some(mp) => mp.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,drydock=info,rootfs_builder=info,kernel_packager=info,raw_image=info,deb_repo=info,image_assembler=info,artifact=info,tool=off",
        (false, 1) => "info,artifact=debug,tool=off",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("DRYDOCK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}
