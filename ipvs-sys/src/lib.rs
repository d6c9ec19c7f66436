//! The Linux IPVS generic-netlink protocol.
//!
//! This crate is the lowest layer of the project: a sans-IO message layer that
//! encodes and decodes every IPVS command and attribute byte for byte as the
//! kernel does, and a socket transport that batches requests.
