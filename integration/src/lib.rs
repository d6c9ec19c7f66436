//! Kernel lab and test support.
