//! raw-image (not built yet).
