//! Reads libtest's summary lines and decides whether a kernel test run passed.

/// Totals over every `test result:` line of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests that were ignored (a failure for kernel tests: nothing may be skipped).
    pub ignored: u64,
    /// Tests filtered out by a name filter the user gave.
    pub filtered_out: u64,
    /// How many `test result:` lines were seen (one per test binary that finished).
    pub binaries: u64,
}

impl Totals {
    /// Adds up every libtest summary line in `output`, e.g.
    /// `test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s`.
    pub fn parse(output: &str) -> Self {
        let mut t = Self::default();
        for line in output.lines() {
            let Some(rest) = line.trim().strip_prefix("test result: ") else {
                continue;
            };
            t.binaries += 1;
            for part in rest.split(';') {
                let mut words = part.split_whitespace().skip_while(|w| w.ends_with('.'));
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => t.passed += n,
                    "failed" => t.failed += n,
                    "ignored" => t.ignored += n,
                    "filtered" => t.filtered_out += n,
                    _ => {}
                }
            }
        }
        t
    }

    /// Why this run is not a pass, if it is not. `expected_binaries` test binaries ran.
    pub fn verdict(&self, expected_binaries: u64) -> Result<(), String> {
        if self.binaries < expected_binaries {
            return Err(format!(
                "only {} of {expected_binaries} test binaries printed a summary (crashed or killed?)",
                self.binaries
            ));
        }
        if self.failed > 0 {
            return Err(format!("{} kernel tests failed", self.failed));
        }
        if self.ignored > 0 {
            return Err(format!(
                "{} kernel tests were skipped; a skip is a failure",
                self.ignored
            ));
        }
        if self.passed == 0 {
            return Err("no kernel test ran".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_binary() {
        let out = "running 2 tests\n\
            test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 3 filtered out; finished in 0.01s\n\
            \n\
            test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.5s\n";
        let t = Totals::parse(out);
        assert_eq!(
            t,
            Totals {
                passed: 6,
                failed: 1,
                ignored: 1,
                filtered_out: 3,
                binaries: 2
            }
        );
        assert!(t.verdict(2).unwrap_err().contains("1 kernel tests failed"));
    }

    #[test]
    fn skips_and_empty_runs_fail() {
        let ignored = Totals::parse(
            "test result: ok. 1 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0s",
        );
        assert!(ignored.verdict(1).unwrap_err().contains("skipped"));
        let none = Totals::parse(
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0s",
        );
        assert!(none.verdict(1).unwrap_err().contains("no kernel test ran"));
        assert!(Totals::parse("").verdict(1).unwrap_err().contains("0 of 1"));
        let ok = Totals::parse(
            "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0s",
        );
        assert_eq!(ok.verdict(1), Ok(()));
    }
}
