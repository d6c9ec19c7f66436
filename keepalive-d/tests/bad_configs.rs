//! Every file in `tests/bad-configs/` is rejected with exactly the errors its
//! `# expect: LINE:COL: message substring` lines announce (one line per expected error).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use keepalive_d::config::{self, Position};

fn bad_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Parses `# expect: 12:5: some text` lines.
fn expectations(text: &str) -> Vec<(Position, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().unwrap().trim().parse().unwrap();
            let column = parts.next().unwrap().trim().parse().unwrap();
            let message = parts.next().unwrap().trim().to_owned();
            (Position { line, column }, message)
        })
        .collect()
}

#[test]
fn every_bad_config_fails_with_its_expected_errors() {
    let files = bad_configs();
    assert!(files.len() >= 50, "only {} bad configs found", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        let errors = match config::load(path) {
            Ok(_) => {
                failures.push(format!("{}: accepted", path.display()));
                continue;
            }
            Err(errors) => errors.into_vec(),
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        if errors.len() != expected.len() {
            failures.push(format!(
                "{}: expected {} errors, got {}:\n  {}",
                path.display(),
                expected.len(),
                errors.len(),
                shown.join("\n  ")
            ));
            continue;
        }
        for (position, message) in &expected {
            let found = errors
                .iter()
                .any(|e| e.position == Some(*position) && e.message.contains(message.as_str()));
            if !found {
                failures.push(format!(
                    "{}: no error at {}:{} containing {message:?}; got:\n  {}",
                    path.display(),
                    position.line,
                    position.column,
                    shown.join("\n  ")
                ));
            }
        }
        // Every error names the file it came from.
        for error in &errors {
            assert_eq!(error.file, path.display().to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
