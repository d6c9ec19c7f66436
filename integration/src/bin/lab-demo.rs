//! The lab demo (`scripts/lab-demo`, run inside the lab VM): a director namespace running
//! `keepalive-d` with `keepalive-d/examples/configs/lab-nat.yaml`, three real-server
//! namespaces serving HTTP, and a client namespace sending requests. It shows the IPVS
//! table and the traffic spread, stops one real server and shows it leave the table (and
//! get no requests), starts it again and shows it come back, then stops the daemon.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{LbLab, Mode};
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The example configuration, found from the source tree (the VM shares it).
fn config() -> Result<String, Error> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../keepalive-d/examples/configs/lab-nat.yaml"
    );
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}").into())
}

fn section(title: &str) {
    println!("\n=== {title}");
}

/// Waits until the director's table holds exactly `n` destinations for the VIP.
fn wait_destinations(
    lab: &LbLab,
    d: &Daemon,
    n: usize,
    within: Duration,
) -> Result<Duration, Error> {
    let start = Instant::now();
    let prefix = format!("-a -t {}:80 -r ", lab.vip());
    loop {
        let saved = lab.ipvsadm(&["-S", "-n"])?;
        if saved.lines().filter(|l| l.starts_with(&prefix)).count() == n {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!(
                "the table did not reach {n} destinations within {within:?}:\n{saved}\nlog:\n{}",
                d.log()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn show_table(lab: &LbLab) -> Result<(), Error> {
    print!("{}", lab.ipvsadm(&["-L", "-n"])?);
    Ok(())
}

fn traffic(lab: &LbLab, n: usize) -> Result<(), Error> {
    let spread = lab.client_requests(n);
    println!(
        "{n} HTTP requests from the client to {}:80 — {spread}",
        lab.vip()
    );
    if spread.failures > 0 {
        return Err(format!("{} requests failed", spread.failures).into());
    }
    Ok(())
}

fn demo() -> Result<(), Error> {
    section("building the NAT layout: client, director, three real servers (lab-backend HTTP)");
    let mut lab = LbLab::new(Mode::Nat, 3)?;
    println!(
        "client {}  ->  VIP {}:80 on the director  ->  real servers {}, {}, {}",
        lab.client_addr(),
        lab.vip(),
        lab.real_server_addr(0),
        lab.real_server_addr(1),
        lab.real_server_addr(2)
    );

    section("keepalive-d run -c keepalive-d/examples/configs/lab-nat.yaml (in the director)");
    let cfg = config()?;
    print!("{cfg}");
    let d = Daemon::start(lab.director(), &cfg, "info")?;
    let t = wait_destinations(&lab, &d, 3, Duration::from_secs(30))?;
    println!("\nevery real server passed its HTTP check and is in the table after {t:.2?}:");
    show_table(&lab)?;
    traffic(&lab, 300)?;

    section(&format!(
        "stopping the HTTP server of {} ({})",
        lab.backend_name(1),
        lab.real_server_addr(1)
    ));
    lab.stop_backend(1)?;
    let t = wait_destinations(&lab, &d, 2, Duration::from_secs(10))?;
    println!("it left the table {t:.2?} later (fall 2 x interval 500ms = 1s):");
    show_table(&lab)?;
    traffic(&lab, 300)?;

    section(&format!("starting {} again", lab.backend_name(1)));
    lab.start_backend(1)?;
    let t = wait_destinations(&lab, &d, 3, Duration::from_secs(10))?;
    println!("it is back {t:.2?} later (rise 2 x interval 500ms = 1s):");
    show_table(&lab)?;
    traffic(&lab, 300)?;
    println!();
    print!("{}", lab.ipvsadm(&["-L", "-n", "--stats"])?);

    section("what keepalive-d logged");
    print!("{}", d.log());

    section("stopping keepalive-d (SIGTERM): it removes its service");
    let (code, _) = d.stop(Duration::from_secs(20))?;
    show_table(&lab)?;
    if code != Some(0) {
        return Err(format!("keepalive-d exited with {code:?}").into());
    }
    Ok(())
}
