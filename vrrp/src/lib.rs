//! Sans-IO VRRP: packet encoding and decoding and the per-instance state machine.
