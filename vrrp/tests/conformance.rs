//! Replays the event scripts in `tests/conformance/*.txt`.
//!
//! # Script format
//!
//! ```text
//! # comment
//! instance A version=3 vrid=10 prio=200 primary=10.0.0.2 vips=10.0.0.100
//! @ 0s A startup
//!   arm master-down at=3.21875s
//!   notify backup reason=startup
//! @ 3.21875s A timer master-down
//!   send-advert prio=200
//!   ...
//! @ 3.21875s B deliver A
//! = A master
//! ```
//!
//! * `instance NAME key=value...` declares an instance. Keys: `version`
//!   (2 or 3, default 3), `vrid` (default 10), `prio` (default 100),
//!   `primary` (required), `vips` (comma separated, required), `interval`
//!   (default 1s), `preempt` (on/off), `preempt_delay`, `garp_repeat`,
//!   `garp_delay` (a time or `off`), `garp_refresh`, `pass` (VRRPv2
//!   password), `garp_lower_prio_repeat`, `garp_lower_prio_delay`.
//! * `@ TIME NAME EVENT` feeds an event to instance NAME at TIME
//!   (`0`, `1.5s`, `250ms`, `10us`). Events: `startup`, `shutdown`,
//!   `hand-over`, `interface-up`, `interface-down`, `priority N`, `timer NAME` (advert,
//!   master-down, garp-delay, garp-refresh, garp-lower-prio), `deliver
//!   OTHER` (the last
//!   advert instance OTHER sent, from OTHER's primary address), `advert
//!   src=IP prio=N [interval=UNITS] [vrid=N] [addrs=A,B]` (a hand-made
//!   advert; interval in the version's units), `config key=value...`
//!   (the instance's declaration with these keys changed).
//! * Indented lines right after an event are the actions it must produce,
//!   all of them, in order, in the form of `Action`'s `Display`.
//! * `= NAME STATE` asserts the state (initialize, backup, master, fault).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use vrrp_proto::{
    Action, Advertisement, Auth, Event, GarpConfig, Instance, InstanceConfig, Time, Timer, Version,
    VersionFields,
};

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit_ns) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000u128)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else if s == "0" {
        ("0", 1)
    } else {
        return Err(format!("bad time {s:?}"));
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u128 = int.parse().map_err(|_| format!("bad time {s:?}"))?;
    let mut ns = int * unit_ns;
    let mut scale = unit_ns;
    for c in frac.chars() {
        let d = c.to_digit(10).ok_or_else(|| format!("bad time {s:?}"))?;
        scale /= 10;
        if scale == 0 {
            return Err(format!("too precise {s:?}"));
        }
        ns += u128::from(d) * scale;
    }
    Ok(Duration::from_nanos(
        u64::try_from(ns).map_err(|e| e.to_string())?,
    ))
}

fn kv(words: &[&str]) -> Result<BTreeMap<String, String>, String> {
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("expected key=value, got {w:?}"))
        })
        .collect()
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("bad address {s:?}"))
}

fn ips(s: &str) -> Result<Vec<IpAddr>, String> {
    s.split(',').filter(|x| !x.is_empty()).map(ip).collect()
}

fn config(keys: &BTreeMap<String, String>) -> Result<InstanceConfig, String> {
    let get = |k: &str| keys.get(k).map(String::as_str);
    let version = match get("version").unwrap_or("3") {
        "2" => Version::V2,
        "3" => Version::V3,
        v => return Err(format!("bad version {v}")),
    };
    let num = |k: &str, d: u32| -> Result<u32, String> {
        get(k).map_or(Ok(d), |v| v.parse().map_err(|_| format!("bad {k}")))
    };
    let primary = ip(get("primary").ok_or("primary missing")?)?;
    let vips = ips(get("vips").ok_or("vips missing")?)?;
    let mut c = InstanceConfig::new(
        u8::try_from(num("vrid", 10)?).map_err(|e| e.to_string())?,
        version,
        primary,
        vips,
    );
    c.priority = u8::try_from(num("prio", 100)?).map_err(|e| e.to_string())?;
    if let Some(i) = get("interval") {
        c.advert_interval = parse_duration(i)?;
    }
    if let Some(p) = get("preempt") {
        c.preempt = p == "on";
    }
    if let Some(d) = get("preempt_delay") {
        c.preempt_delay = parse_duration(d)?;
    }
    let defaults = GarpConfig::default();
    c.garp.repeat = num("garp_repeat", defaults.repeat)?;
    c.garp.delay = match get("garp_delay") {
        None => defaults.delay,
        Some("off") => None,
        Some(d) => Some(parse_duration(d)?),
    };
    if let Some(r) = get("garp_refresh") {
        c.garp.refresh = Some(parse_duration(r)?);
    }
    c.garp_lower_prio_repeat = num("garp_lower_prio_repeat", 0)?;
    if let Some(d) = get("garp_lower_prio_delay") {
        c.garp_lower_prio_delay = Some(parse_duration(d)?);
    }
    if let Some(p) = get("pass") {
        c.auth = Auth::password(p.as_bytes());
    }
    Ok(c)
}

struct Sim {
    decl: BTreeMap<String, BTreeMap<String, String>>,
    instances: BTreeMap<String, Instance>,
    last_advert: BTreeMap<String, Advertisement>,
}

impl Sim {
    fn event(&mut self, name: &str, words: &[&str]) -> Result<Event, String> {
        let vr = self
            .instances
            .get(name)
            .ok_or_else(|| format!("unknown instance {name}"))?;
        let (verb, rest) = words.split_first().ok_or("missing event")?;
        Ok(match *verb {
            "startup" => Event::Startup,
            "resume" => Event::Resume,
            "shutdown" => Event::Shutdown,
            "hand-over" => Event::HandOver,
            "interface-up" => Event::InterfaceUp,
            "interface-down" => Event::InterfaceDown,
            "priority" => Event::PriorityChanged(
                rest.first()
                    .and_then(|p| p.parse().ok())
                    .ok_or("bad priority")?,
            ),
            "timer" => Event::TimerFired(match rest.first().copied() {
                Some("advert") => Timer::Advert,
                Some("master-down") => Timer::MasterDown,
                Some("garp-delay") => Timer::GarpDelay,
                Some("garp-refresh") => Timer::GarpRefresh,
                Some("garp-lower-prio") => Timer::GarpLowerPrio,
                t => return Err(format!("bad timer {t:?}")),
            }),
            "deliver" => {
                let from = rest.first().ok_or("deliver whom?")?;
                let advert = self
                    .last_advert
                    .get(*from)
                    .ok_or_else(|| format!("{from} has sent no advert"))?
                    .clone();
                let src = self.instances[*from].config().primary_address;
                Event::AdvertReceived { src, advert }
            }
            "advert" => {
                let k = kv(rest)?;
                let cfg = vr.config();
                let num = |key: &str, d: u32| -> Result<u32, String> {
                    k.get(key)
                        .map_or(Ok(d), |v| v.parse().map_err(|_| format!("bad {key}")))
                };
                let priority = u8::try_from(num("prio", 100)?).map_err(|e| e.to_string())?;
                let fields = match cfg.version {
                    Version::V2 => VersionFields::V2 {
                        auth: cfg.auth,
                        adver_int_secs: u8::try_from(num("interval", 1)?)
                            .map_err(|e| e.to_string())?,
                    },
                    Version::V3 => VersionFields::V3 {
                        max_adver_int_centis: u16::try_from(num("interval", 100)?)
                            .map_err(|e| e.to_string())?,
                    },
                };
                Event::AdvertReceived {
                    src: ip(k.get("src").ok_or("src missing")?)?,
                    advert: Advertisement {
                        vrid: u8::try_from(num("vrid", u32::from(cfg.vrid))?)
                            .map_err(|e| e.to_string())?,
                        priority,
                        fields,
                        addresses: match k.get("addrs") {
                            Some(a) => ips(a)?,
                            None => cfg.virtual_addresses.clone(),
                        },
                    },
                }
            }
            "config" => {
                let mut keys = self.decl[name].clone();
                keys.extend(kv(rest)?);
                let c = config(&keys)?.validate().map_err(|e| e.to_string())?;
                self.decl.insert(name.to_string(), keys);
                Event::ConfigChanged(Box::new(c))
            }
            v => return Err(format!("unknown event {v}")),
        })
    }
}

fn check_pending(
    pending: &mut Option<(usize, String, Vec<String>, usize)>,
    file: &str,
) -> Result<(), String> {
    if let Some((line, name, got, seen)) = pending.take() {
        if seen < got.len() {
            return Err(format!(
                "{file}:{line}: {name} produced unexpected actions after the listed ones:\n  {}",
                got[seen..].join("\n  ")
            ));
        }
    }
    Ok(())
}

fn run(path: &Path) -> Result<usize, String> {
    let file = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let mut sim = Sim {
        decl: BTreeMap::new(),
        instances: BTreeMap::new(),
        last_advert: BTreeMap::new(),
    };
    // (line of the event, instance, actions it produced, how many matched)
    let mut pending: Option<(usize, String, Vec<String>, usize)> = None;
    let mut last_time = Time::ZERO;
    let mut events = 0;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| format!("{file}:{n}: {msg}");
        if raw.starts_with(char::is_whitespace) {
            let (ev_line, name, got, seen) = pending
                .as_mut()
                .ok_or_else(|| at("expected action without an event".into()))?;
            let want = line.trim();
            match got.get(*seen) {
                Some(g) if g == want => *seen += 1,
                Some(g) => {
                    return Err(at(format!(
                        "{name} (event on line {ev_line}): expected `{want}`, got `{g}`; all actions:\n  {}",
                        got.join("\n  ")
                    )));
                }
                None => {
                    return Err(at(format!(
                        "{name} (event on line {ev_line}): expected `{want}`, but there are no more actions"
                    )));
                }
            }
            continue;
        }
        check_pending(&mut pending, &file)?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["instance", name, rest @ ..] => {
                let keys = kv(rest).map_err(at)?;
                let cfg = config(&keys).map_err(at)?;
                let valid = cfg.validate().map_err(|e| at(e.to_string()))?;
                sim.decl.insert((*name).to_string(), keys);
                sim.instances
                    .insert((*name).to_string(), Instance::new(valid));
            }
            ["@", time, name, rest @ ..] => {
                let now = Time::from(parse_duration(time).map_err(at)?);
                if now < last_time {
                    return Err(at(format!("time goes backwards: {now} < {last_time}")));
                }
                last_time = now;
                let event = sim.event(name, rest).map_err(at)?;
                let vr = sim
                    .instances
                    .get_mut(*name)
                    .ok_or_else(|| at("no such instance".into()))?;
                let actions = vr.handle(now, event);
                for a in &actions {
                    if let Action::SendAdvert(adv) = a {
                        sim.last_advert.insert((*name).to_string(), adv.clone());
                    }
                }
                events += 1;
                pending = Some((
                    n,
                    (*name).to_string(),
                    actions.iter().map(ToString::to_string).collect(),
                    0,
                ));
            }
            ["=", name, state] => {
                let vr = sim
                    .instances
                    .get(*name)
                    .ok_or_else(|| at("no such instance".into()))?;
                if vr.state().name() != *state {
                    return Err(at(format!("{name} is {}, expected {state}", vr.state())));
                }
            }
            _ => return Err(at(format!("cannot parse `{line}`"))),
        }
    }
    check_pending(&mut pending, &file)?;
    Ok(events)
}

fn scripts() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn conformance_scripts() {
    let files = scripts();
    assert!(files.len() >= 6, "scripts missing: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        match run(f) {
            Ok(0) => failures.push(format!("{}: no events", f.display())),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn runner_rejects_wrong_expectations() {
    let dir = std::env::temp_dir().join(format!("vrrp-conformance-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let case = |name: &str, body: &str| {
        let p = dir.join(name);
        fs::write(&p, body).unwrap();
        run(&p)
    };
    let head = "instance A primary=10.0.0.2 vips=10.0.0.100\n@ 0s A startup\n";
    assert!(
        case(
            "ok.txt",
            &format!(
                "{head}  arm master-down at=3.609375s\n  notify backup reason=startup\n= A backup\n"
            )
        )
        .is_ok()
    );
    // Wrong action.
    assert!(case("wrong.txt", &format!("{head}  arm master-down at=3s\n")).is_err());
    // Unlisted action.
    assert!(
        case(
            "missing.txt",
            &format!("{head}  arm master-down at=3.609375s\n")
        )
        .is_err()
    );
    // Extra expected action.
    assert!(case("extra.txt", &format!(
        "{head}  arm master-down at=3.609375s\n  notify backup reason=startup\n  cancel advert\n"
    ))
    .is_err());
    // Wrong state.
    assert!(
        case(
            "state.txt",
            &format!(
                "{head}  arm master-down at=3.609375s\n  notify backup reason=startup\n= A master\n"
            )
        )
        .is_err()
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    assert_eq!(
        parse_duration("3.609375s").unwrap(),
        Duration::from_micros(3_609_375)
    );
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(
        parse_duration("1.5ms").unwrap(),
        Duration::from_micros(1500)
    );
    assert_eq!(parse_duration("7us").unwrap(), Duration::from_micros(7));
    assert!(parse_duration("7").is_err());
    assert!(parse_duration("1.0000000001s").is_err());
}
