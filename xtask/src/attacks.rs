//! Attack tests: boot each backend once, run the whole attack catalog with
//! `attack all`, and hold every attack to its expected outcome: blocked on
//! the protected kernel, succeeded on `native` (which shows it is real).

use crate::build::Backend;
use crate::qemu::{self, EXIT_SUCCESS, Machine};
use crate::test::{Tally, header};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// `attack NAME [INVARIANT]: VERDICT` → (NAME, VERDICT).
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("attack ")?;
    let (name, rest) = rest.split_once(' ')?;
    let (_, verdict) = rest.strip_prefix('[')?.split_once("]: ")?;
    Some((name, verdict))
}

/// Whether `verdict` is what `backend` must show.
pub fn expected(backend: Backend, verdict: &str) -> bool {
    match backend {
        Backend::Wp => verdict.starts_with("blocked"),
        // An attack the native build cannot survive is not run there.
        Backend::Native => verdict.starts_with("SUCCEEDED") || verdict.starts_with("not run"),
    }
}

pub fn run(backend: Backend, kernel: &Path, initrd: Option<&Path>, filter: Option<&str>, tally: &mut Tally) {
    header(&format!(
        "attacks on the {} kernel (expected: {})",
        backend.name(),
        match backend {
            Backend::Wp => "every one blocked",
            Backend::Native => "every one succeeds",
        }
    ));
    let machine = Machine::tested(kernel, initrd, "");
    let group = format!("attacks-{}", backend.name());
    let capture = match qemu::boot_capture(
        &machine,
        b"attack all\nnk audit\nnk verify proc\nnk verify audit\npoweroff\n",
        TIMEOUT,
        &mut |_| {},
    ) {
        Ok(c) => c,
        Err(e) => {
            println!("{group} ... FAILED: {e}");
            tally.fail(group);
            return;
        }
    };
    let mut seen = 0;
    for (name, verdict) in capture.output.lines().filter_map(parse_line) {
        let check = format!("{group}/{name}");
        if filter.is_some_and(|f| !check.contains(f)) {
            continue;
        }
        seen += 1;
        if expected(backend, verdict) {
            println!("attack {check} ... ok: {verdict}");
            tally.pass();
        } else {
            println!("attack {check} ... FAILED: {verdict}");
            tally.fail(check);
        }
    }
    // After every attack, the protected kernel's auditor must find the page
    // tables intact; the native kernel keeps no frame table to audit.
    let audit = capture.output.lines().find(|l| l.starts_with("audit: "));
    let check = format!("{group}/audit");
    if filter.is_none_or(|f| check.contains(f)) {
        match (backend, audit) {
            (Backend::Wp, Some(line)) if line.ends_with(" 0 violations") => {
                println!("attack {check} ... ok: {line}");
                tally.pass();
            }
            (Backend::Native, Some(line)) => {
                println!("attack {check} ... ok: {line}");
                tally.pass();
            }
            (_, line) => {
                println!("attack {check} ... FAILED: {}", line.unwrap_or("no audit line"));
                tally.fail(check);
            }
        }
    }
    // The logs' readers find them consistent after the attacks: on the
    // protected kernel because nothing got through, on `native` because the
    // attacker covered its tracks (undetected).
    for (name, prefix) in [("verify-proc", "verify proc: "), ("verify-audit", "verify audit: ")] {
        let check = format!("{group}/{name}");
        if filter.is_some_and(|f| !check.contains(f)) {
            continue;
        }
        match capture.output.lines().find(|l| l.starts_with(prefix)) {
            Some(line) if line[prefix.len()..].starts_with("ok") => {
                println!("attack {check} ... ok: {line}");
                tally.pass();
            }
            line => {
                println!("attack {check} ... FAILED: {}", line.unwrap_or("no verify line"));
                tally.fail(check);
            }
        }
    }
    let whole = capture.output.contains("attacks: ") && capture.code() == Some(EXIT_SUCCESS);
    // A filter that keeps none of this group's attacks does not make the
    // run a failure; an unfiltered run that shows none does.
    if (seen == 0 && filter.is_none()) || !whole {
        println!("{group}/run ... FAILED: the catalog did not run to the end");
        println!("{}", capture.report("attack run"));
        tally.fail(format!("{group}/run"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attack_lines() {
        assert_eq!(
            parse_line("attack clear-wp [I3]: blocked (NK refused)"),
            Some(("clear-wp", "blocked (NK refused)"))
        );
        assert_eq!(parse_line("attacks: 7 blocked, 0 succeeded"), None);
        assert_eq!(parse_line("attack: no attack named 'x'"), None);
    }

    #[test]
    fn expectations_per_backend() {
        assert!(expected(Backend::Wp, "blocked (fault)"));
        assert!(!expected(Backend::Wp, "SUCCEEDED (x)"));
        assert!(!expected(Backend::Wp, "not run (x)"));
        assert!(expected(Backend::Native, "SUCCEEDED (x)"));
        assert!(expected(Backend::Native, "not run (would crash)"));
        assert!(!expected(Backend::Native, "blocked (x)"));
    }
}
