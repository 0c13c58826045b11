//! The benchmark's report: the terminal table, `report.md`, `report.json`,
//! the SVG chart of the ratios (written by hand), the issue's goals judged
//! against the figures, and the check `cargo xtask test` runs on the JSON.

use super::rows::{ROWS, RowSpec, Source};
use super::stats::Cell;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Where and how the figures were taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// "TCG" or "KVM".
    pub accelerator: String,
    pub cpu_model: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    pub qemu: String,
    pub quick: bool,
    pub boots_per_backend: usize,
    /// Boots whose program or kernel rows did not run to the end, even
    /// when tried again.
    pub incomplete_boots: usize,
    /// Boots that stopped short once and were run again.
    pub retried_boots: usize,
}

/// One row: the native figure first, then each protected backend's.
#[derive(Debug, Clone, PartialEq)]
pub struct RowResult {
    pub spec: &'static RowSpec,
    /// (backend name, figure); `native` first.
    pub cells: Vec<(String, Cell)>,
}

impl RowResult {
    pub fn cell(&self, backend: &str) -> Option<&Cell> {
        self.cells.iter().find(|(b, _)| b == backend).map(|(_, c)| c)
    }

    /// `backend` / native, when both were measured.
    pub fn ratio(&self, backend: &str) -> Option<f64> {
        let native = self.cell("native")?.value()?.median;
        let other = self.cell(backend)?.value()?.median;
        (native > 0.0).then(|| other / native)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub meta: Meta,
    /// The protected backends, in column order (native is always there).
    pub backends: Vec<String>,
    pub rows: Vec<RowResult>,
}

/// One of the issue's goals and what this run shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub what: String,
    pub measured: String,
    /// `None`: not measured (the row is unavailable).
    pub met: Option<bool>,
}

/// A time per operation for people: ns, µs or ms.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

fn fmt_crossings(c: Option<f64>) -> String {
    match c {
        None => "—".into(),
        Some(c) if c.fract() == 0.0 => format!("{c:.0}"),
        Some(c) => format!("{c:.2}"),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}"))
}

impl Report {
    fn row(&self, name: &str) -> Option<&RowResult> {
        self.rows.iter().find(|r| r.spec.name == name)
    }

    /// The issue's goals, judged on each protected backend.
    pub fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        for b in &self.backends {
            for r in &self.rows {
                let stat = r.cell(b).and_then(Cell::value);
                if let Some(max) = r.spec.max_crossings {
                    let c = stat.and_then(|s| s.crossings);
                    goals.push(Goal {
                        what: format!("{b}: {} at most {max} crossings per operation", r.spec.name),
                        measured: c.map_or("not measured".into(), |c| fmt_crossings(Some(c))),
                        met: c.map(|c| c <= max + 1e-9),
                    });
                }
                if let Some(max) = r.spec.max_ratio {
                    let ratio = r.ratio(b);
                    goals.push(Goal {
                        what: format!("{b}: {} at most {max} times native", r.spec.name),
                        measured: ratio.map_or("not measured".into(), |x| format!("{x:.2}")),
                        met: ratio.map(|x| x <= max),
                    });
                }
            }
            let ns = |name| self.row(name).and_then(|r| r.cell(b)).and_then(Cell::value).map(|s| s.median);
            let gate = ns("gate_round_trip").zip(ns("raw_toggle")).filter(|&(_, t)| t > 0.0).map(|(g, t)| g / t);
            goals.push(Goal {
                what: format!("{b}: gate round trip at most 1.5 times the raw toggle"),
                measured: gate.map_or("not measured".into(), |x| format!("{x:.2}")),
                met: gate.map(|x| x <= 1.5),
            });
        }
        goals
    }

    fn header(&self) -> Vec<String> {
        let mut h = vec!["row".to_string(), "native".to_string()];
        for b in &self.backends {
            h.push(b.clone());
            h.push(format!("{b}/native"));
        }
        h.push("PerspicuOS".into());
        for b in &self.backends {
            h.push(format!("crossings/op {b} (native)"));
        }
        h.push("spread native".into());
        for b in &self.backends {
            h.push(format!("spread {b}"));
        }
        h
    }

    fn cells(&self, r: &RowResult) -> Vec<String> {
        let show = |c: Option<&Cell>| match c {
            Some(Cell::Value(s)) => fmt_ns(s.median),
            _ => "n/a".to_string(),
        };
        let spread = |c: Option<&Cell>| match c {
            Some(Cell::Value(s)) => format!("{:.0}%", s.spread_pct),
            _ => "—".to_string(),
        };
        let crossings = |c: Option<&Cell>| c.and_then(Cell::value).and_then(|s| s.crossings);
        let mut out = vec![r.spec.title.to_string(), show(r.cell("native"))];
        for b in &self.backends {
            out.push(show(r.cell(b)));
            out.push(fmt_ratio(r.ratio(b)));
        }
        out.push(fmt_ratio(r.spec.perspicuos));
        for b in &self.backends {
            out.push(format!(
                "{} ({})",
                fmt_crossings(crossings(r.cell(b))),
                fmt_crossings(crossings(r.cell("native")))
            ));
        }
        out.push(spread(r.cell("native")));
        for b in &self.backends {
            out.push(spread(r.cell(b)));
        }
        out
    }

    /// Rows that could not be measured, with the reason, per backend.
    fn unavailable(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rows {
            let mut reasons: Vec<(String, &str)> = Vec::new();
            for (b, c) in &r.cells {
                if let Cell::Unavailable(why) = c {
                    match reasons.iter_mut().find(|(_, w)| *w == why.as_str()) {
                        Some((bs, _)) => *bs = format!("{bs}, {b}"),
                        None => reasons.push((b.clone(), why)),
                    }
                }
            }
            for (bs, why) in reasons {
                out.push(format!("{} ({bs}): {why}", r.spec.name));
            }
        }
        out
    }

    fn about(&self) -> String {
        let m = &self.meta;
        format!(
            "{} run, {} boots per backend, interleaved; accelerator {}; CPU {}; {}; {} UTC",
            if m.quick { "quick" } else { "full" },
            m.boots_per_backend,
            m.accelerator,
            m.cpu_model,
            m.qemu,
            m.date
        )
    }

    /// The table for the terminal, aligned in columns.
    pub fn table(&self) -> String {
        let mut lines = vec![self.header()];
        lines.extend(self.rows.iter().map(|r| self.cells(r)));
        let cols = lines[0].len();
        let width: Vec<usize> =
            (0..cols).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for (n, l) in lines.iter().enumerate() {
            let mut line = String::new();
            for (i, cell) in l.iter().enumerate() {
                let pad = width[i] - cell.chars().count();
                if i == 0 {
                    line += &format!("{cell}{}  ", " ".repeat(pad));
                } else {
                    line += &format!("{}{cell}  ", " ".repeat(pad));
                }
            }
            out += line.trim_end();
            out.push('\n');
            if n == 0 {
                out += &"-".repeat(width.iter().sum::<usize>() + 2 * (cols - 1));
                out.push('\n');
            }
        }
        out += &format!("{}\n", self.about());
        if self.meta.incomplete_boots > 0 {
            out += &format!("warning: {} boot(s) did not run to the end\n", self.meta.incomplete_boots);
        }
        if self.meta.retried_boots > 0 {
            out += &format!("warning: {} boot(s) stopped short and were run again\n", self.meta.retried_boots);
        }
        for u in self.unavailable() {
            out += &format!("n/a {u}\n");
        }
        for g in self.goals() {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            out += &format!("goal {}: {} ({verdict})\n", g.what, g.measured);
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# Benchmark: native kernel against the nested kernel\n\n");
        let m = &self.meta;
        let _ = writeln!(
            out,
            "- run: {}",
            if m.quick { "quick (`cargo xtask bench --quick`)" } else { "full (`cargo xtask bench`)" }
        );
        let _ = writeln!(out, "- accelerator: {}", m.accelerator);
        let _ = writeln!(out, "- CPU: {}", m.cpu_model);
        let _ = writeln!(out, "- {}", m.qemu);
        let _ = writeln!(out, "- date: {} UTC", m.date);
        let _ = writeln!(
            out,
            "- boots: {} per backend, interleaved (native, {}, native, ...)",
            m.boots_per_backend,
            self.backends.join(", ")
        );
        if m.incomplete_boots > 0 {
            let _ = writeln!(out, "- **{} boot(s) did not run to the end**", m.incomplete_boots);
        }
        if m.retried_boots > 0 {
            let _ = writeln!(out, "- {} boot(s) stopped short (hang or crash) and were run again", m.retried_boots);
        }
        out += "\nTimes are per operation, the median over boots of each boot's median; spread is \
                (max - min) / median over the boots. Crossings are NK gate crossings per operation, \
                exact, from the NK's counter.\n\n";
        let header = self.header();
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", self.cells(r).join(" | "));
        }
        let unavailable = self.unavailable();
        if !unavailable.is_empty() {
            out += "\nNot measured:\n\n";
            for u in unavailable {
                let _ = writeln!(out, "- {u}");
            }
        }
        out += "\nGoals (issues 7 and 18):\n\n| goal | measured | verdict |\n| --- | --- | --- |\n";
        for g in self.goals() {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {} | {} | {verdict} |", g.what, g.measured);
        }
        out += "\nChart of the ratios: `report.svg`.\n";
        out
    }

    pub fn json(&self) -> Value {
        let cell = |c: Option<&Cell>| match c {
            Some(Cell::Value(s)) => json!({
                "value": s.median,
                "min": s.min,
                "max": s.max,
                "spread_pct": s.spread_pct,
                "crossings_per_op": s.crossings,
                "boots": s.boots,
            }),
            Some(Cell::Unavailable(why)) => json!({ "value": null, "unavailable": why }),
            None => json!({ "value": null, "unavailable": "not run" }),
        };
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut results = serde_json::Map::new();
                results.insert("native".into(), cell(r.cell("native")));
                let mut ratios = serde_json::Map::new();
                for b in &self.backends {
                    results.insert(b.clone(), cell(r.cell(b)));
                    ratios.insert(b.clone(), json!(r.ratio(b)));
                }
                json!({
                    "name": r.spec.name,
                    "title": r.spec.title,
                    "unit": "ns",
                    "source": match r.spec.source { Source::User => "user", Source::Kernel => "kernel" },
                    "results": results,
                    "ratio": ratios,
                    "perspicuos_ratio": r.spec.perspicuos,
                    "goal_max_crossings": r.spec.max_crossings,
                    "goal_max_ratio": r.spec.max_ratio,
                })
            })
            .collect();
        let goals: Vec<Value> =
            self.goals().iter().map(|g| json!({ "goal": g.what, "measured": g.measured, "met": g.met })).collect();
        let m = &self.meta;
        json!({
            "accelerator": m.accelerator,
            "cpu_model": m.cpu_model,
            "date": m.date,
            "qemu": m.qemu,
            "quick": m.quick,
            "boots_per_backend": m.boots_per_backend,
            "incomplete_boots": m.incomplete_boots,
            "retried_boots": m.retried_boots,
            "backends": std::iter::once("native".to_string()).chain(self.backends.iter().cloned()).collect::<Vec<_>>(),
            "rows": rows,
            "goals": goals,
        })
    }

    /// A horizontal bar per row: each protected backend's ratio to native
    /// on a log scale, bars growing from 1.0, PerspicuOS's ratio as a mark.
    pub fn svg(&self) -> String {
        const LABEL: f64 = 360.0;
        const PLOT: f64 = 460.0;
        const ROW: f64 = 24.0;
        const TOP: f64 = 56.0;
        let ratios: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| self.backends.iter().filter_map(|b| r.ratio(b)).chain(r.spec.perspicuos))
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        let lo = ratios.iter().copied().fold(0.5f64, f64::min).max(1e-3);
        let hi = ratios.iter().copied().fold(4.0f64, f64::max) * 1.15;
        let x = |r: f64| LABEL + (r.ln() - lo.ln()) / (hi.ln() - lo.ln()) * PLOT;
        let bars = self.backends.len().max(1) as f64;
        let height = TOP + ROW * self.rows.len() as f64 + 40.0;
        let width = LABEL + PLOT + 90.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
            xml(&format!(
                "Protected / native, per operation ({}, {})",
                self.backends.join(", "),
                self.meta.accelerator
            ))
        );
        let _ = writeln!(
            s,
            r##"<text x="10" y="38" fill="#555">{}</text>"##,
            xml("log scale; bar: this kernel; black mark: PerspicuOS on hardware; n/a: not measured")
        );
        let mut tick = 0.1f64;
        while tick <= hi {
            for m in [1.0, 2.0, 5.0] {
                let t = tick * m;
                if t >= lo && t <= hi {
                    let tx = x(t);
                    let colour = if t == 1.0 { "#000" } else { "#ddd" };
                    let _ = writeln!(
                        s,
                        r#"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="{colour}"/>"#,
                        TOP - 6.0,
                        height - 30.0
                    );
                    let _ = writeln!(
                        s,
                        r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                        height - 16.0,
                        trim_float(t)
                    );
                }
            }
            tick *= 10.0;
        }
        let colours = ["#3b6fb6", "#d9822b", "#3a9a5b"];
        for (i, r) in self.rows.iter().enumerate() {
            let y = TOP + ROW * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                y + 15.0,
                xml(r.spec.title)
            );
            for (j, b) in self.backends.iter().enumerate() {
                let h = (ROW - 6.0) / bars;
                let by = y + 3.0 + h * j as f64;
                match r.ratio(b) {
                    Some(ratio) if ratio > 0.0 && ratio.is_finite() => {
                        let (x0, x1) = (x(1.0).min(x(ratio)), x(1.0).max(x(ratio)));
                        let _ = writeln!(
                            s,
                            r#"<rect x="{x0:.1}" y="{by:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}</title></rect>"#,
                            (x1 - x0).max(1.0),
                            colours[j % colours.len()],
                            xml(&format!("{} {b}: {ratio:.2}", r.spec.name))
                        );
                        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{ratio:.2}</text>"#, x1 + 4.0, by + h - 2.0);
                    }
                    _ => {
                        let _ = writeln!(
                            s,
                            r##"<text x="{:.1}" y="{:.1}" fill="#999">n/a</text>"##,
                            x(1.0) + 4.0,
                            by + h - 2.0
                        );
                    }
                }
            }
            if let Some(p) = r.spec.perspicuos {
                let px = x(p);
                let _ = writeln!(
                    s,
                    r##"<path d="M{px:.1} {:.1} l4 5 l-4 5 l-4 -5 z" fill="#000"><title>PerspicuOS {p:.2}</title></path>"##,
                    y + 7.0
                );
            }
        }
        s += "</svg>\n";
        s
    }
}

fn trim_float(t: f64) -> String {
    let s = format!("{t:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

/// Text made safe for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Rows every run must measure on every backend: their system calls exist
/// today. The others may be unavailable until their feature lands.
pub const MUST_MEASURE: &[&str] = &[
    "null_syscall",
    "open_close",
    "sig_install",
    "fork_exit",
    "fork_exec",
    "pipe_pingpong",
    "ctx_switch",
    "null_syscall_audit",
    "gate_round_trip",
    "write_pte",
    "write_ptes_512",
    "declare_ptp",
    "load_cr3",
    // The initrd always holds /lib/modules/hello.ko.
    "module_load",
    "module_unload",
];

/// Checks a `report.json`: it parses, records where it ran, holds every
/// row once with a figure or a reason on every backend, each figure
/// positive, and the rows in `MUST_MEASURE` measured. Returns a summary.
pub fn check_json(text: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    for key in ["accelerator", "cpu_model", "date"] {
        match v.get(key).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => {}
            _ => return Err(format!("no {key}")),
        }
    }
    if v.get("incomplete_boots").and_then(Value::as_u64) != Some(0) {
        return Err(format!("incomplete_boots is {:?}, expected 0", v.get("incomplete_boots")));
    }
    let backends: Vec<&str> =
        v.get("backends").and_then(Value::as_array).ok_or("no backends")?.iter().filter_map(Value::as_str).collect();
    if backends.first() != Some(&"native") || backends.len() < 2 {
        return Err(format!("backends {backends:?}: expected native and at least one protected backend"));
    }
    let rows = v.get("rows").and_then(Value::as_array).ok_or("no rows")?;
    let (mut measured, mut unavailable) = (0, 0);
    for spec in ROWS {
        let found: Vec<&Value> =
            rows.iter().filter(|r| r.get("name").and_then(Value::as_str) == Some(spec.name)).collect();
        let [row] = found[..] else { return Err(format!("row {} appears {} times", spec.name, found.len())) };
        if row.get("unit").and_then(Value::as_str) != Some("ns") {
            return Err(format!("row {}: no unit", spec.name));
        }
        for b in &backends {
            let cell = row.pointer(&format!("/results/{b}")).ok_or(format!("row {}: no result for {b}", spec.name))?;
            match (cell.get("value").and_then(Value::as_f64), cell.get("unavailable").and_then(Value::as_str)) {
                (Some(x), _) if x > 0.0 && x.is_finite() => measured += 1,
                (Some(x), _) => return Err(format!("row {} on {b}: value {x} is not positive", spec.name)),
                (None, Some(why)) if !why.is_empty() => {
                    // The native kernel has no protection to toggle.
                    let exempt = spec.name == "raw_toggle" && *b == "native";
                    if MUST_MEASURE.contains(&spec.name) || (spec.name == "raw_toggle" && !exempt) {
                        return Err(format!("row {} on {b} must be measured, but: {why}", spec.name));
                    }
                    unavailable += 1;
                }
                _ => return Err(format!("row {} on {b}: neither a value nor a reason", spec.name)),
            }
        }
        // The monitor's goal is a count, not a time, so the check can hold
        // it: at most one NK crossing per audited call (plus the counter
        // reads that bracket each sample).
        if spec.name == "null_syscall_audit" {
            for b in &backends[1..] {
                let c = row.pointer(&format!("/results/{b}/crossings_per_op")).and_then(Value::as_f64);
                if !c.is_some_and(|c| c <= 1.01) {
                    return Err(format!("row null_syscall_audit on {b}: {c:?} crossings per call, expected at most 1"));
                }
            }
        }
        for b in &backends[1..] {
            let native = row.pointer("/results/native/value").and_then(Value::as_f64);
            let other = row.pointer(&format!("/results/{b}/value")).and_then(Value::as_f64);
            let ratio = row.pointer(&format!("/ratio/{b}"));
            if native.is_some() && other.is_some() && !ratio.and_then(Value::as_f64).is_some_and(|r| r > 0.0) {
                return Err(format!("row {}: no positive ratio for {b}", spec.name));
            }
        }
    }
    Ok(format!("{} rows, {measured} figures, {unavailable} not measured (with reasons)", ROWS.len()))
}

#[cfg(test)]
mod tests {
    use super::super::stats::Stat;
    use super::*;

    fn stat(median: f64, crossings: Option<f64>) -> Cell {
        Cell::Value(Stat { median, min: median * 0.9, max: median * 1.1, spread_pct: 20.0, crossings, boots: 2 })
    }

    /// A report with every row: wp costs twice native and crosses once,
    /// except the rows the kernel cannot run yet.
    fn sample() -> Report {
        let rows = ROWS
            .iter()
            .map(|spec| {
                let cells = match spec.name {
                    "busybox_workload" => vec![
                        ("native".to_string(), Cell::Unavailable("no /bin/busybox".into())),
                        ("wp".to_string(), Cell::Unavailable("no /bin/busybox".into())),
                    ],
                    "raw_toggle" => vec![
                        ("native".to_string(), Cell::Unavailable("0 ticks".into())),
                        ("wp".to_string(), stat(2000.0, Some(0.0))),
                    ],
                    "gate_round_trip" => {
                        vec![("native".to_string(), stat(20.0, Some(1.0))), ("wp".to_string(), stat(2800.0, Some(1.0)))]
                    }
                    _ => {
                        vec![("native".to_string(), stat(100.0, Some(1.0))), ("wp".to_string(), stat(200.0, Some(1.0)))]
                    }
                };
                RowResult { spec, cells }
            })
            .collect();
        Report {
            meta: Meta {
                accelerator: "TCG".into(),
                cpu_model: "Test CPU <x> & co".into(),
                date: "2026-11-30 12:00".into(),
                qemu: "QEMU emulator version 10.0".into(),
                quick: true,
                boots_per_backend: 2,
                incomplete_boots: 0,
                retried_boots: 0,
            },
            backends: vec!["wp".into()],
            rows,
        }
    }

    #[test]
    fn time_formats() {
        assert_eq!(fmt_ns(123.4), "123 ns");
        assert_eq!(fmt_ns(12_345.0), "12.35 µs");
        assert_eq!(fmt_ns(2_500_000.0), "2.50 ms");
        assert_eq!(fmt_crossings(Some(2.0)), "2");
        assert_eq!(fmt_crossings(Some(0.125)), "0.12");
        assert_eq!(fmt_crossings(None), "—");
    }

    #[test]
    fn ratios_and_goals() {
        let r = sample();
        let fork = r.row("fork_exit").unwrap();
        assert_eq!(fork.ratio("wp"), Some(2.0));
        assert_eq!(r.row("busybox_workload").unwrap().ratio("wp"), None);
        let goals = r.goals();
        let find = |what: &str| goals.iter().find(|g| g.what == what).unwrap_or_else(|| panic!("{what}"));
        assert_eq!(find("wp: fork_exit at most 3 crossings per operation").met, Some(true));
        assert_eq!(find("wp: null_syscall at most 0 crossings per operation").met, Some(false));
        assert_eq!(find("wp: fork_exit at most 1.3 times native").met, Some(false));
        let gate = find("wp: gate round trip at most 1.5 times the raw toggle");
        assert_eq!((gate.met, gate.measured.as_str()), (Some(true), "1.40"));
    }

    #[test]
    fn the_table_and_markdown_have_every_row() {
        let r = sample();
        let (table, md) = (r.table(), r.markdown());
        for spec in ROWS {
            assert!(table.contains(spec.title), "table lacks {}", spec.name);
            assert!(md.contains(&format!("| {} |", spec.title)), "markdown lacks {}", spec.name);
        }
        assert!(table.contains("n/a busybox_workload (native, wp): no /bin/busybox"));
        assert!(md.contains("accelerator: TCG") && md.contains("Test CPU"));
        // Every markdown table line has as many cells as the header.
        let cols = md.lines().find(|l| l.starts_with("| row |")).unwrap().matches('|').count();
        for l in md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| goal") && l.contains("µs")) {
            assert_eq!(l.matches('|').count(), cols, "{l}");
        }
        // The fork row: native, wp, ratio, PerspicuOS, crossings, spreads.
        let fork = table.lines().find(|l| l.starts_with("fork+exit ")).unwrap();
        let words: Vec<&str> = fork.split_whitespace().collect();
        assert_eq!(words[1..], ["100", "ns", "200", "ns", "2.00", "2.90", "1", "(1)", "20%", "20%"]);
    }

    #[test]
    fn json_round_trips_through_the_check() {
        let r = sample();
        let text = serde_json::to_string_pretty(&r.json()).unwrap();
        let summary = check_json(&text).unwrap();
        assert!(summary.starts_with(&format!("{} rows", ROWS.len())), "{summary}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let fork = v["rows"].as_array().unwrap().iter().find(|r| r["name"] == "fork_exit").unwrap();
        assert_eq!(fork["results"]["wp"]["value"], 200.0);
        assert_eq!(fork["results"]["wp"]["crossings_per_op"], 1.0);
        assert_eq!(fork["ratio"]["wp"], 2.0);
        assert_eq!(fork["perspicuos_ratio"], 2.90);
        let busybox = v["rows"].as_array().unwrap().iter().find(|r| r["name"] == "busybox_workload").unwrap();
        assert_eq!(busybox["results"]["native"]["unavailable"], "no /bin/busybox");
        assert!(busybox["ratio"]["wp"].is_null());
    }

    #[test]
    fn the_check_refuses_broken_reports() {
        let good = sample().json();
        let refuse = |edit: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            edit(&mut v);
            check_json(&v.to_string()).is_err()
        };
        assert!(check_json("{").is_err());
        assert!(refuse(&|v| v["rows"].as_array_mut().unwrap().retain(|r| r["name"] != "page_fault")));
        assert!(refuse(&|v| {
            let dup = v["rows"][0].clone();
            v["rows"].as_array_mut().unwrap().push(dup);
        }));
        assert!(refuse(&|v| v["rows"][0]["results"]["wp"]["value"] = json!(0.0)));
        assert!(refuse(&|v| v["rows"][0]["results"]["wp"] = json!({ "value": null, "unavailable": "ENOSYS" })));
        assert!(refuse(&|v| v["rows"][2]["results"]["wp"] = json!({ "value": null })));
        assert!(refuse(&|v| v["accelerator"] = json!("")));
        assert!(refuse(&|v| v["incomplete_boots"] = json!(1)));
        assert!(refuse(&|v| v["backends"] = json!(["native"])));
    }

    #[test]
    fn the_svg_is_well_formed_and_labels_every_row() {
        let svg = sample().svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        for spec in ROWS {
            assert!(svg.contains(&format!(">{}</text>", xml(spec.title))), "svg lacks {}", spec.name);
        }
        // One bar per measured ratio, one n/a per missing one, a mark per PerspicuOS figure.
        let measured = sample().rows.iter().filter(|r| r.ratio("wp").is_some()).count();
        assert_eq!(svg.matches("<rect x=").count(), measured);
        assert_eq!(svg.matches(">n/a</text>").count(), ROWS.len() - measured);
        assert_eq!(svg.matches("<path ").count(), ROWS.iter().filter(|r| r.perspicuos.is_some()).count());
        assert!(svg.contains("(wp, TCG)"));
        // Balanced elements: every opened text, rect and path is closed.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(svg.matches("<rect x=").count(), svg.matches("</rect>").count());
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
