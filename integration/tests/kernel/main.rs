//! Kernel tests: they need a kernel with IPVS and root, and run inside the lab VM
//! (`cargo lab test`) or on a real director box (`cargo lab test --native`).
//! Every test works in a fresh network namespace.

mod lab_ipvsadm;
