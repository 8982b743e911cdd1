//! deb-repo (not built yet).
