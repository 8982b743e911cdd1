//! image-assembler (not built yet).
