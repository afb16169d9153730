//! mfad-core.
