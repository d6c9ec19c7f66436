//! `keepalive-d`: the keepalived replacement daemon.

fn main() {
    eprintln!("keepalive-d: not yet implemented");
    std::process::exit(2);
}
