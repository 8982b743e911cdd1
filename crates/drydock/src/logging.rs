//! Logging through `tracing` to stderr. `-v` shows host tool commands, `-vv` their output.

use tracing_subscriber::EnvFilter;

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
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
