//! mfad-radius-proto.
