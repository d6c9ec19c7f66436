//! Safe, typed, high-level API for Linux IPVS.
//!
//! Built on [`ipvs_sys`]; users of this crate never see netlink.
