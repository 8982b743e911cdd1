//! rootfs-builder (not built yet).
