//! `keepalive-d ipvs ...` against the kernel and against ipvsadm: save, restore, list,
//! zero and flush. `cargo lab test` builds the binary next to the test executables.

use ipvs_integration::netns::TestNs;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A table with every kind of service and option (as in sys_matrix), in the
/// `ipvsadm -S -n` format.
const TABLE: &str = "\
-A -t 192.0.2.61:80 -s wrr
-a -t 192.0.2.61:80 -r 10.0.1.1:8080 -m -w 1
-a -t 192.0.2.61:80 -r 10.0.1.2:80 -g -w 0
-a -t 192.0.2.61:80 -r 10.0.1.3:80 -i -w 1 --tun-type ipip
-a -t 192.0.2.61:80 -r 10.0.1.4:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 192.0.2.61:80 -r 10.0.1.5:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-a -t 192.0.2.61:80 -r 10.0.1.7:80 -i -w 1 --tun-type gre --tun-csum
-a -t 192.0.2.61:80 -r 10.0.1.9:80 -m -w 2147483647
-A -t 192.0.2.62:443 -s lc -p 300
-a -t 192.0.2.62:443 -r 10.0.2.1:443 -g -w 2
-A -t [2001:db8::61]:443 -s mh -p 300 -M 64 -b mh-port
-a -t [2001:db8::61]:443 -r [2001:db8:1::1]:443 -m -w 5
-a -t [2001:db8::61]:443 -r 10.0.1.10:443 -i -w 1 --tun-type ipip
-A -u 192.0.2.63:5060 -s rr -p 120 -M 255.255.255.0 --pe sip -o
-a -u 192.0.2.63:5060 -r 10.0.3.1:5060 -m -w 1
-A --sctp-service 192.0.2.64:3868 -s lc
-a --sctp-service 192.0.2.64:3868 -r 10.0.4.1:3868 -g -w 1
-A -f 11 -s sh -b sh-fallback,sh-port
-a -f 11 -r 10.0.1.11:0 -g -w 3
-A -f 12 -6 -s wrr
-a -f 12 -6 -r [2001:db8:1::12]:0 -g -w 4
";

/// `<dir of the test exe>/../keepalive-d` (target/debug/deps/kernel-HASH).
fn keepalive_d() -> String {
    let exe = std::env::current_exe().unwrap();
    let path: PathBuf = exe.parent().unwrap().join("../keepalive-d");
    assert!(path.exists(), "{} is not built", path.display());
    path.to_str().unwrap().to_string()
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(str::to_string).collect()
}

/// Runs keepalive-d in `ns` with `input` on stdin: (status code, stdout, stderr).
fn kad(ns: &TestNs, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = ns
        .command(&keepalive_d())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn kad_ok(ns: &TestNs, args: &[&str], input: &str) -> String {
    let (code, stdout, stderr) = kad(ns, args, input);
    assert_eq!(code, Some(0), "keepalive-d {args:?}: {stderr}");
    stdout
}

#[test]
fn save_is_byte_identical_to_ipvsadm() {
    let ns = TestNs::new("cli-save").unwrap();
    ns.run_with_input("ipvsadm", &["-R"], TABLE).unwrap();
    let theirs = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    assert_eq!(lines(&theirs), lines(TABLE));
    assert_eq!(kad_ok(&ns, &["ipvs", "save"], ""), theirs);
}

#[test]
fn restore_writes_the_input_and_is_idempotent() {
    let ns = TestNs::new("cli-restore").unwrap();
    // A dry run writes nothing.
    let plan = kad_ok(&ns, &["ipvs", "restore", "--dry-run"], TABLE);
    assert_eq!(plan.lines().count(), TABLE.lines().count(), "{plan}");
    assert_eq!(ns.run("ipvsadm", &["-S", "-n"]).unwrap(), "");

    let (code, stdout, stderr) = kad(&ns, &["ipvs", "restore"], TABLE);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout, "",
        "like ipvsadm -R, nothing printed when all went in"
    );
    assert!(
        stderr.contains(&format!(
            "{} operations applied, 0 failed",
            TABLE.lines().count()
        )),
        "{stderr}"
    );
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    assert_eq!(lines(&saved), lines(TABLE), "saved:\n{saved}");

    let (code, stdout, stderr) = kad(&ns, &["ipvs", "restore"], TABLE);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("0 operations applied, 0 failed"),
        "{stderr}"
    );
    let plan = kad_ok(&ns, &["ipvs", "restore", "--dry-run"], TABLE);
    assert_eq!(plan, "");

    // Like ipvsadm -R it adds: another service is left alone.
    let (code, _, stderr) = kad(&ns, &["ipvs", "restore"], "-A -t 198.51.100.1:80 -s rr\n");
    assert_eq!(code, Some(0), "{stderr}");
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    assert_eq!(lines(&saved).len(), TABLE.lines().count() + 1);

    // A line the kernel refuses (no such scheduler): printed with why, exit 1, the
    // others written.
    let (code, stdout, stderr) = kad(
        &ns,
        &["ipvs", "restore"],
        "-A -t 198.51.100.4:80 -s nosuchsched\n-A -t 198.51.100.5:80 -s rr\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("-A -t 198.51.100.4:80 -s nosuchsched  # FAILED ("),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 operations applied, 1 failed"),
        "{stderr}"
    );
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    assert!(
        saved.contains("198.51.100.5") && !saved.contains("198.51.100.4"),
        "{saved}"
    );
    ns.run("ipvsadm", &["-D", "-t", "198.51.100.5:80"]).unwrap();

    // A bad line: its number, exit 1, nothing written.
    let (code, stdout, stderr) = kad(
        &ns,
        &["ipvs", "restore"],
        "-A -t 198.51.100.2:80 -s rr\n-A -t 198.51.100.3:80 -s rr --bogus\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(stderr.starts_with("keepalive-d: line 2"), "{stderr}");
    assert!(
        !ns.run("ipvsadm", &["-S", "-n"])
            .unwrap()
            .contains("198.51.100.2")
    );
}

#[test]
fn list_matches_ipvsadm() {
    let ns = TestNs::new("cli-list").unwrap();
    ns.run_with_input("ipvsadm", &["-R"], TABLE).unwrap();
    // Exact equality, column widths included.
    assert_eq!(
        kad_ok(&ns, &["ipvs", "list"], ""),
        ns.run("ipvsadm", &["-L", "-n"]).unwrap()
    );
    assert_eq!(
        kad_ok(&ns, &["ipvs", "list", "--stats"], ""),
        ns.run("ipvsadm", &["-L", "-n", "--stats"]).unwrap()
    );
    assert_eq!(
        kad_ok(&ns, &["ipvs", "list", "--rate"], ""),
        ns.run("ipvsadm", &["-L", "-n", "--rate"]).unwrap()
    );
    let json = kad_ok(&ns, &["ipvs", "list", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 7, "{json}");
    assert!(v["info"].is_object(), "{json}");
}

#[test]
fn zero_and_flush() {
    let ns = TestNs::new("cli-zero").unwrap();
    ns.run_with_input("ipvsadm", &["-R"], TABLE).unwrap();
    kad_ok(&ns, &["ipvs", "zero"], "");
    let stats = kad_ok(&ns, &["ipvs", "list", "--stats"], "");
    assert_eq!(stats, ns.run("ipvsadm", &["-L", "-n", "--stats"]).unwrap());
    for line in stats.lines().skip(3) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols[cols.len() - 5..].iter().all(|c| *c == "0"), "{line}");
    }
    kad_ok(&ns, &["ipvs", "flush"], "");
    assert_eq!(ns.run("ipvsadm", &["-S", "-n"]).unwrap(), "");
    assert_eq!(kad_ok(&ns, &["ipvs", "save"], ""), "");
}
