//! mfad-store.
