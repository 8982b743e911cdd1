//! kernel-packager (not built yet).
