//! mfad-testkit.
