//! The benchmark's rows (what each measures, PerspicuOS's ratio for it,
//! the issue's goals) and the guest's lines that report them.

/// Where a row is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/bin/bench`, in a process.
    User,
    /// `nk bench`, in the kernel shell.
    Kernel,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSpec {
    /// The name in the guest's lines and in the JSON.
    pub name: &'static str,
    /// What it measures, for people.
    pub title: &'static str,
    pub source: Source,
    /// Native FreeBSD to PerspicuOS (DESIGN section 8), where the paper has the row.
    pub perspicuos: Option<f64>,
    /// At most this many NK crossings per operation on a protected backend.
    pub max_crossings: Option<f64>,
    /// At most this ratio to native under TCG.
    pub max_ratio: Option<f64>,
}

const fn user(name: &'static str, title: &'static str, perspicuos: Option<f64>) -> RowSpec {
    RowSpec { name, title, source: Source::User, perspicuos, max_crossings: None, max_ratio: None }
}

const fn kernel(name: &'static str, title: &'static str) -> RowSpec {
    RowSpec { name, title, source: Source::Kernel, perspicuos: None, max_crossings: None, max_ratio: None }
}

/// Every row, in table order. Values are nanoseconds per operation.
pub const ROWS: &[RowSpec] = &[
    RowSpec {
        max_crossings: Some(0.0),
        max_ratio: Some(1.05),
        ..user("null_syscall", "null system call (getppid)", Some(1.07))
    },
    RowSpec { max_ratio: Some(1.05), ..user("open_close", "open/close", Some(0.98)) },
    RowSpec {
        max_crossings: Some(17.0),
        max_ratio: Some(1.2),
        ..user("mmap_1mib", "mmap 1 MiB of a file (map, touch every page, unmap)", Some(2.57))
    },
    RowSpec {
        max_crossings: Some(1.0),
        max_ratio: Some(1.05),
        ..user("page_fault", "page fault on a mapped file (per page)", Some(1.04))
    },
    user("sig_install", "signal handler install (rt_sigaction)", None),
    user("sig_delivery", "signal delivery (kill self, handler runs)", None),
    RowSpec { max_crossings: Some(3.0), max_ratio: Some(1.3), ..user("fork_exit", "fork+exit", Some(2.90)) },
    RowSpec {
        max_crossings: Some(4.0),
        max_ratio: Some(1.25),
        ..user("fork_exec", "fork+exec (exec /bin/tiny, a 14 KB static program)", Some(2.52))
    },
    RowSpec {
        max_crossings: Some(2.0),
        max_ratio: Some(1.2),
        ..user("pipe_pingpong", "pipe ping-pong, round trip (2 context switches)", None)
    },
    RowSpec {
        max_crossings: Some(1.0),
        max_ratio: Some(1.2),
        ..user("ctx_switch", "context switch (2 processes pass a token, as lat_ctx -s 0 2)", None)
    },
    // The paper's macro rows: kernel compile +2.6 %, servers < 1 % to < 3.7 %.
    user("busybox_workload", "busybox sh job: fork, exec, pipes, gzip, tar (macro)", Some(1.026)),
    RowSpec { max_crossings: Some(1.0), ..user("null_syscall_audit", "null system call, audit log on", Some(4.41)) },
    kernel("gate_round_trip", "empty NK call (gate round trip)"),
    kernel("write_pte", "one write_pte (empty slot)"),
    kernel("write_ptes_512", "512 PTE updates in one write_ptes"),
    kernel("declare_ptp", "declare_ptp (zero, write-protect alias)"),
    kernel("load_cr3", "load_cr3 (same root again)"),
    kernel("raw_toggle", "raw protection toggle alone (off+on)"),
    kernel("module_load", "module load (hello.ko: link, map, vet text, init)"),
    kernel("module_unload", "module unload (exit, unmap, release text, free)"),
];

pub fn spec(name: &str) -> Option<&'static RowSpec> {
    ROWS.iter().find(|r| r.name == name)
}

/// What one boot said about one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Value {
        /// Nanoseconds per operation (the boot's median).
        ns: f64,
        /// NK crossings per operation; `None` where the kernel gave no count.
        crossings: Option<f64>,
    },
    Unavailable(String),
}

/// A `bench: row=NAME ...` or `nk-bench: row=NAME ...` line → (NAME, what it says).
pub fn parse_line(line: &str) -> Option<(&str, Observation)> {
    let rest = line.strip_prefix("bench: row=").or_else(|| line.strip_prefix("nk-bench: row="))?;
    let (name, fields) = rest.split_once(' ')?;
    if let Some(why) = fields.strip_prefix("unavailable=") {
        return Some((name, Observation::Unavailable(why.trim().to_string())));
    }
    let field = |key: &str| fields.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
    let ns: f64 = field("ns")?.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    let crossings = match field("crossings")? {
        "na" => None,
        c => Some(c.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?),
    };
    // A kernel row of zero ticks measured nothing: the native backend has
    // no protection to toggle.
    if field("ticks") == Some("0") {
        return Some((name, Observation::Unavailable("0 ticks: nothing to toggle on this backend".into())));
    }
    Some((name, Observation::Value { ns, crossings }))
}

/// What one boot reported: each row it printed, and whether both the
/// user program and the kernel rows ran to their end.
#[derive(Debug, Default, Clone)]
pub struct BootReport {
    pub rows: Vec<(String, Observation)>,
    pub user_done: bool,
    pub kernel_done: bool,
}

impl BootReport {
    pub fn line(&mut self, line: &str) {
        if let Some((name, obs)) = parse_line(line) {
            if spec(name).is_some() {
                self.rows.push((name.to_string(), obs));
            }
        } else if line.starts_with("bench: done") {
            self.user_done = true;
        } else if line.starts_with("nk-bench: backend=") {
            self.kernel_done = true;
        }
    }

    pub fn get(&self, name: &str) -> Option<&Observation> {
        self.rows.iter().rev().find(|(n, _)| n == name).map(|(_, o)| o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lines() {
        let (name, obs) =
            parse_line("bench: row=fork_exit ns=812345.5 min=1 max=2 crossings=7.000 iters=8 samples=3").unwrap();
        assert_eq!(name, "fork_exit");
        assert_eq!(obs, Observation::Value { ns: 812345.5, crossings: Some(7.0) });
        let (_, obs) = parse_line("bench: row=null_syscall ns=200.0 crossings=na iters=1").unwrap();
        assert_eq!(obs, Observation::Value { ns: 200.0, crossings: None });
        let (name, obs) =
            parse_line("bench: row=pipe_pingpong unavailable=pipe: ENOSYS (Function not implemented)").unwrap();
        assert_eq!(name, "pipe_pingpong");
        assert_eq!(obs, Observation::Unavailable("pipe: ENOSYS (Function not implemented)".into()));
    }

    #[test]
    fn kernel_lines() {
        let (name, obs) = parse_line("nk-bench: row=gate_round_trip ticks=9542 ns=3180.666 crossings=1.000").unwrap();
        assert_eq!((name, obs), ("gate_round_trip", Observation::Value { ns: 3180.666, crossings: Some(1.0) }));
        let (_, obs) = parse_line("nk-bench: row=raw_toggle ticks=0 ns=0.000 crossings=0.000").unwrap();
        assert!(matches!(obs, Observation::Unavailable(_)));
        let (name, obs) =
            parse_line("nk-bench: row=module_load unavailable=/lib/modules/hello.ko: no such file").unwrap();
        assert_eq!(
            (name, obs),
            ("module_load", Observation::Unavailable("/lib/modules/hello.ko: no such file".into()))
        );
    }

    #[test]
    fn broken_lines_are_ignored() {
        for bad in [
            "bench: row=x",
            "bench: row=x ns=abc crossings=1",
            "bench: row=x ns=1",
            "bench: row=x ns=-1 crossings=0",
            "bench: row=x ns=1 crossings=NaN",
            "bench: start quick=1",
            "row=x ns=1 crossings=0",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_boot_collects_known_rows_and_the_end_markers() {
        let mut b = BootReport::default();
        for l in [
            "bench: start quick=1 crossings=yes",
            "bench: row=null_syscall ns=100.0 crossings=0.000",
            "bench: row=made_up ns=1.0 crossings=0.000",
            "bench: done",
            "nk-bench: row=load_cr3 ticks=10 ns=5.000 crossings=1.000",
            "nk-bench: backend=wp tsc_per_ms=3000000 samples=201",
        ] {
            b.line(l);
        }
        assert_eq!(b.rows.len(), 2);
        assert!(b.user_done && b.kernel_done);
        assert_eq!(b.get("load_cr3"), Some(&Observation::Value { ns: 5.0, crossings: Some(1.0) }));
        assert_eq!(b.get("made_up"), None);
    }

    #[test]
    fn row_names_are_unique_and_goals_are_where_the_issue_sets_them() {
        let mut names: Vec<_> = ROWS.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ROWS.len());
        assert_eq!(spec("fork_exit").unwrap().max_crossings, Some(3.0));
        assert_eq!(spec("ctx_switch").unwrap().max_crossings, Some(1.0));
        assert_eq!(spec("null_syscall").unwrap().perspicuos, Some(1.07));
        assert_eq!(spec("null_syscall_audit").unwrap().perspicuos, Some(4.41));
        assert_eq!(ROWS.iter().filter(|r| r.source == Source::Kernel).count(), 8);
    }
}
