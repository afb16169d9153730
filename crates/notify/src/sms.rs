//! SMS gateways.
