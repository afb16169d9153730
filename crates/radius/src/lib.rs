//! mfad-radius.
