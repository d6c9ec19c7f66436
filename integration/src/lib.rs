//! Kernel tests for the IPVS control plane, and the kernel lab that runs them.
//!
//! - [`lab`]: boots a real Linux kernel with IPVS under QEMU (`cargo lab ...`).
//! - [`netns`]: fresh network namespaces for tests, removed when dropped.

pub mod lab;
pub mod netns;
pub mod nlmon;
