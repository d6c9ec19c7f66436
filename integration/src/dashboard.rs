//! Checks a Grafana dashboard against the metrics keepalive-d exposes: every PromQL
//! expression of the dashboard (panel queries and `label_values(...)` variables) may name
//! only known series. The known series come from `keepalive-d/METRICS.md`'s tables
//! ([`documented_series`]) or from a scrape of a running daemon ([`exposed_series`]).
//!
//! The PromQL scan ([`metric_names`]) is deliberately small: it skips strings, label
//! matchers (`{...}`), ranges (`[5m]`), numbers, Grafana variables (`$service`,
//! `${x}`, `$__rate_interval`) and the label lists of `by`/`without`/`on`/`ignoring`/
//! `group_left`/`group_right`; what is left followed by `(` must be a PromQL function or
//! aggregation, and every other name is a metric.

use std::collections::BTreeSet;

/// PromQL functions and aggregation operators (Prometheus 2.x), and Grafana's
/// `label_values`.
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg",
    "avg_over_time",
    "bottomk",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count",
    "count_over_time",
    "count_values",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "delta",
    "deriv",
    "exp",
    "floor",
    "group",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "minute",
    "month",
    "predict_linear",
    "present_over_time",
    "quantile",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev",
    "stddev_over_time",
    "stdvar",
    "stdvar_over_time",
    "sum",
    "sum_over_time",
    "time",
    "timestamp",
    "topk",
    "vector",
    "year",
    "label_values",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Binary operators and modifiers spelled as words.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];

/// Index just after the bracket that closes the one at `open` (`(`, `{` or `[`), skipping
/// strings; the end of `s` if it is not closed.
fn close(s: &[char], open: usize) -> usize {
    let (o, c) = match s.get(open) {
        Some('(') => ('(', ')'),
        Some('{') => ('{', '}'),
        _ => ('[', ']'),
    };
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&ch) = s.get(i) {
        if matches!(ch, '"' | '\'' | '`') {
            i = skip_string(s, i);
            continue;
        }
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    s.len()
}

/// Index just after the string literal that starts at `i`.
fn skip_string(s: &[char], i: usize) -> usize {
    let quote = s.get(i).copied().unwrap_or('"');
    let mut j = i + 1;
    while let Some(&ch) = s.get(j) {
        if ch == '\\' && quote != '`' {
            j += 2;
            continue;
        }
        if ch == quote {
            return j + 1;
        }
        j += 1;
    }
    s.len()
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Whether `word` is an aggregation whose `by`/`without` clause comes before its
/// argument (`sum by (service) (...)`), the clause starting at `after`.
fn aggregation_with_clause(s: &[char], word: &str, after: usize, end: usize) -> bool {
    if !FUNCTIONS.contains(&word) {
        return false;
    }
    let mut j = after;
    while j < end && s.get(j).is_some_and(|c| is_ident(*c)) {
        j += 1;
    }
    let next: String = s.get(after..j).unwrap_or_default().iter().collect();
    next == "by" || next == "without"
}

/// The metric names an expression selects, in order (with repeats); an error for a word
/// used as a function that PromQL does not have (a typo, or a metric written as a call).
pub fn metric_names(expr: &str) -> Result<Vec<String>, String> {
    let s: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    scan(&s, 0, s.len(), &mut out)?;
    Ok(out)
}

fn next_non_space(s: &[char], mut i: usize, end: usize) -> usize {
    while i < end && s.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn scan(s: &[char], from: usize, end: usize, out: &mut Vec<String>) -> Result<(), String> {
    let mut i = from;
    while i < end {
        let Some(&c) = s.get(i) else { break };
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(s, i);
        } else if c == '{' || c == '[' {
            i = close(s, i);
        } else if c == '$' {
            // A Grafana variable: `$name` or `${name...}`.
            i += 1;
            if s.get(i) == Some(&'{') {
                i = close(s, i);
            } else {
                while i < end && s.get(i).is_some_and(|c| is_ident(*c)) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (`0.99`, `1e3`, `5m`).
            while i < end
                && s.get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
            {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < end && s.get(i).is_some_and(|c| is_ident(*c)) {
                i += 1;
            }
            let word: String = s.get(start..i).unwrap_or_default().iter().collect();
            let after = next_non_space(s, i, end);
            let call = s.get(after) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if call {
                    i = close(s, after);
                }
            } else if KEYWORDS.contains(&word.as_str())
                || aggregation_with_clause(s, &word, after, end)
            {
                // An operator, or `sum by (...) (...)`: the clause and the call follow.
            } else if call && word == "label_values" {
                // label_values(metric{...}, label) or label_values(label).
                let stop = close(s, after);
                let mut depth = 0usize;
                let mut comma = None;
                let mut j = after + 1;
                while j < stop {
                    match s.get(j) {
                        Some('"' | '\'' | '`') => {
                            j = skip_string(s, j);
                            continue;
                        }
                        Some('(' | '{' | '[') => depth += 1,
                        Some(')' | '}' | ']') => depth = depth.saturating_sub(1),
                        Some(',') if depth == 0 => {
                            comma = Some(j);
                            break;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if let Some(comma) = comma {
                    scan(s, after + 1, comma, out)?;
                }
                i = stop;
            } else if call {
                if !FUNCTIONS.contains(&word.as_str()) {
                    return Err(format!("`{word}(` is not a PromQL function"));
                }
                i = after + 1;
            } else {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Every PromQL expression of a dashboard, with where it is (`panel "Title"`,
/// `variable service`): each `expr` at any depth (panel targets, rows' nested panels) and
/// each variable's query.
pub fn expressions(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    collect(dashboard, "dashboard", &mut out);
    if let Some(vars) = dashboard
        .pointer("/templating/list")
        .and_then(serde_json::Value::as_array)
    {
        for v in vars {
            if v.get("type").and_then(serde_json::Value::as_str) != Some("query") {
                continue;
            }
            let name = v
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?");
            let query = v
                .get("query")
                .and_then(|q| q.get("query").or(Some(q)))
                .and_then(serde_json::Value::as_str);
            if let Some(q) = query {
                out.push((format!("variable {name}"), q.to_owned()));
            }
        }
    }
    out
}

fn collect(v: &serde_json::Value, place: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            let here = match map.get("title").and_then(serde_json::Value::as_str) {
                Some(t) if map.contains_key("type") => format!("panel {t:?}"),
                _ => place.to_owned(),
            };
            for (k, val) in map {
                if k == "templating" {
                    continue;
                }
                match (k.as_str(), val) {
                    ("expr", serde_json::Value::String(e)) => out.push((here.clone(), e.clone())),
                    _ => collect(val, &here, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect(item, place, out);
            }
        }
        _ => {}
    }
}

/// The series names a metrics table (`| \`name\` | type | ...`, as in METRICS.md) documents:
/// gauges and counters as written (counters end in `_total`), histograms as their
/// `_bucket`, `_sum` and `_count` series.
pub fn documented_series(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(name), Some(kind)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(name) = name
            .strip_prefix('`')
            .and_then(|n| n.strip_suffix('`'))
            .filter(|n| n.starts_with("keepalive_d_"))
        else {
            continue;
        };
        add_series(&mut out, name.trim_end_matches("_total"), kind);
    }
    out
}

/// The series names an exposition (OpenMetrics or Prometheus text) declares with its
/// `# TYPE` lines, whether or not they have samples.
pub fn exposed_series(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            add_series(&mut out, name.trim_end_matches("_total"), kind);
        }
    }
    out
}

fn add_series(out: &mut BTreeSet<String>, family: &str, kind: &str) {
    match kind {
        "counter" => {
            out.insert(format!("{family}_total"));
        }
        "histogram" => {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{family}{suffix}"));
            }
        }
        _ => {
            out.insert(family.to_owned());
        }
    }
}

/// The metrics a dashboard's expressions name, with where; or the problems: an
/// expression that does not scan, or that names a series not in `known`.
pub fn check(
    dashboard: &serde_json::Value,
    known: &BTreeSet<String>,
) -> Result<BTreeSet<String>, Vec<String>> {
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    let exprs = expressions(dashboard);
    if exprs.is_empty() {
        problems.push("no PromQL expression in the dashboard".to_owned());
    }
    for (place, expr) in exprs {
        match metric_names(&expr) {
            Err(e) => problems.push(format!("{place}: {e} in {expr:?}")),
            Ok(names) if names.is_empty() => {
                problems.push(format!("{place}: no metric in {expr:?}"));
            }
            Ok(names) => {
                for n in names {
                    if !known.contains(&n) {
                        problems.push(format!("{place}: unknown metric `{n}` in {expr:?}"));
                    }
                    used.insert(n);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(used)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_expressions() {
        let n = |e: &str| metric_names(e).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            n(
                r#"sum by (service, server) (rate(a_total{service=~"$service", x="}{"}[$__rate_interval]))"#
            ),
            ["a_total"]
        );
        assert_eq!(
            n(
                "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) / on(instance) group_left(version) b offset 1h"
            ),
            ["h_bucket", "b"]
        );
        assert_eq!(
            n("(x{state=\"master\"} == 1) * 3 or (y == 1) * 2 unless z > bool 1e3"),
            ["x", "y", "z"]
        );
        assert_eq!(n("label_values(m{instance=~\"$d\"}, service)"), ["m"]);
        assert!(n("label_values(service)").is_empty());
        assert_eq!(n("-sum(${var} + .5)"), Vec::<String>::new());
        // A metric name made from a variable cannot be checked: its rest is reported.
        assert_eq!(n("${prefix}_up"), ["_up"]);
        assert!(metric_names("rat(x[5m])").is_err());
    }

    #[test]
    fn series_from_tables_and_expositions() {
        let md = "| metric | type |\n|---|---|\n| `keepalive_d_a_total` | counter | x |\n\
                  | `keepalive_d_b` | gauge | |\n| `keepalive_d_h_seconds` | histogram | |\n| `other` | gauge |\n";
        let want: BTreeSet<String> = [
            "keepalive_d_a_total",
            "keepalive_d_b",
            "keepalive_d_h_seconds_bucket",
            "keepalive_d_h_seconds_count",
            "keepalive_d_h_seconds_sum",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(documented_series(md), want);
        let text = "# HELP keepalive_d_a x\n# TYPE keepalive_d_a counter\nkeepalive_d_a_total 1\n\
                    # TYPE keepalive_d_b gauge\n# TYPE keepalive_d_h_seconds histogram\n# EOF\n";
        assert_eq!(exposed_series(text), want);
    }

    #[test]
    fn dashboard_check_reports_unknown_metrics() {
        let d = serde_json::json!({
            "panels": [
                {"type": "row", "title": "r", "panels": [
                    {"type": "timeseries", "title": "Inner", "targets": [{"expr": "rate(k_total[1m])"}]}
                ]},
                {"type": "stat", "title": "Bad", "targets": [{"expr": "nope + k_total"}]}
            ],
            "templating": {"list": [
                {"type": "query", "name": "s", "query": {"query": "label_values(k_total, service)"}},
                {"type": "datasource", "name": "ds", "query": "prometheus"}
            ]}
        });
        let known: BTreeSet<String> = ["k_total".to_owned()].into();
        let problems = check(&d, &known).err().unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("panel \"Bad\": unknown metric `nope`"),
            "{problems:?}"
        );
        assert_eq!(expressions(&d).len(), 3);
    }
}
