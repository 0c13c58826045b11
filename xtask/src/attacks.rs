//! Attack tests: boot each backend once, list the catalog (`attack list`)
//! and run it with `attack all`, and hold every attack to its expected
//! outcome: blocked on the protected kernel, succeeded on `native` (which
//! shows it is real). Every attack in the list must print a verdict, so
//! one that kills the machine before printing is a failure. The attacks
//! the protected kernel blocks by stopping the machine (class `alone`;
//! `attack all` skips them) each get a boot of their own on each backend:
//! on `wp` the NK must report `nk: FAIL-STOP:` and QEMU exit with the
//! failure status, on `native` the attack must succeed and the machine
//! power off normally.

use crate::build::Backend;
use crate::qemu::{self, EXIT_FAILURE, EXIT_SUCCESS, Machine};
use crate::test::{Tally, header};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
/// One attack in a boot of its own.
const ALONE_TIMEOUT: Duration = Duration::from_secs(60);

/// `attack NAME [INVARIANT]: VERDICT` → (NAME, VERDICT).
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("attack ")?;
    let (name, rest) = rest.split_once(' ')?;
    let (_, verdict) = rest.strip_prefix('[')?.split_once("]: ")?;
    Some((name, verdict))
}

/// `catalog NAME INVARIANT CLASS` (from `attack list`) → (NAME, whether
/// it runs alone: class `alone`).
pub fn parse_catalog(line: &str) -> Option<(&str, bool)> {
    let mut words = line.strip_prefix("catalog ")?.split(' ');
    let (name, _invariant, class) = (words.next()?, words.next()?, words.next()?);
    match class {
        "all" => Some((name, false)),
        "alone" => Some((name, true)),
        _ => None,
    }
}

/// The line the NK prints when it stops the machine.
const FAIL_STOP: &str = "nk: FAIL-STOP:";

/// Judges the boot of its own that an `alone` attack gets: the line that
/// shows the expected end, or why it is not there.
pub fn judge_alone(backend: Backend, name: &str, output: &str, code: Option<i32>) -> Result<String, String> {
    let verdict = output.lines().filter_map(parse_line).find(|(n, _)| *n == name).map(|(_, v)| v);
    match backend {
        Backend::Wp => match (output.lines().find(|l| l.contains(FAIL_STOP)), code) {
            (Some(line), Some(EXIT_FAILURE)) => Ok(line.trim().to_string()),
            (Some(_), c) => Err(format!("the NK reported a fail-stop, but QEMU ended with {c:?}")),
            (None, _) => Err(format!("no fail-stop (verdict: {})", verdict.unwrap_or("none"))),
        },
        Backend::Native => match (verdict, code) {
            (Some(v), Some(EXIT_SUCCESS)) if expected(backend, v) => Ok(v.to_string()),
            (Some(v), c) => Err(format!("{v} (QEMU ended with {c:?})")),
            (None, c) => Err(format!("no verdict (QEMU ended with {c:?})")),
        },
    }
}

/// Whether `verdict` is what `backend` must show in `attack all`.
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
        b"attack list\nattack all\nnk audit\nnk verify proc\nnk verify audit\npoweroff\n",
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
    let catalog: Vec<(&str, bool)> = capture.output.lines().filter_map(parse_catalog).collect();
    let verdicts: Vec<(&str, &str)> = capture.output.lines().filter_map(parse_line).collect();
    let mut seen = 0;
    for &(name, alone) in &catalog {
        let check = format!("{group}/{name}");
        if filter.is_some_and(|f| !check.contains(f)) {
            continue;
        }
        seen += 1;
        let ok = |v: &str| if alone { v.starts_with("skipped") } else { expected(backend, v) };
        match verdicts.iter().find(|(n, _)| *n == name) {
            Some((_, verdict)) if ok(verdict) => {
                println!("attack {check} ... ok: {verdict}");
                tally.pass();
            }
            Some((_, verdict)) => {
                println!("attack {check} ... FAILED: {verdict}");
                tally.fail(check);
            }
            None => {
                println!("attack {check} ... FAILED: no verdict (the run ended before this attack printed one)");
                tally.fail(check);
            }
        }
    }
    // An attack that printed a verdict but is not in the list.
    for (name, verdict) in verdicts.iter().filter(|(n, _)| !catalog.iter().any(|(c, _)| c == n)) {
        let check = format!("{group}/{name}");
        if filter.is_none_or(|f| check.contains(f)) {
            println!("attack {check} ... FAILED: not in 'attack list' ({verdict})");
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
    // The attacks that stop the protected machine, one boot each.
    for &(name, _) in catalog.iter().filter(|(_, alone)| *alone) {
        let check = format!("{group}/{name}/alone");
        if filter.is_some_and(|f| !check.contains(f)) {
            continue;
        }
        let input = format!("attack {name}\npoweroff\n");
        match qemu::boot_capture(&machine, input.as_bytes(), ALONE_TIMEOUT, &mut |_| {}) {
            Err(e) => {
                println!("attack {check} ... FAILED: {e}");
                tally.fail(check);
            }
            Ok(c) => match judge_alone(backend, name, &c.output, c.code()) {
                Ok(line) => {
                    println!("attack {check} ... ok: {line}");
                    tally.pass();
                }
                Err(why) => {
                    println!("attack {check} ... FAILED: {why}");
                    println!("{}", c.report(name));
                    tally.fail(check);
                }
            },
        }
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
    fn parses_catalog_lines() {
        assert_eq!(parse_catalog("catalog clear-wp I3 all"), Some(("clear-wp", false)));
        assert_eq!(parse_catalog("catalog site-cr4 I6 alone"), Some(("site-cr4", true)));
        assert_eq!(parse_catalog("catalog site-cr4 I6 sometimes"), None);
        assert_eq!(parse_catalog("attack clear-wp [I3]: blocked (x)"), None);
    }

    #[test]
    fn alone_attacks_stop_the_protected_machine_and_succeed_on_native() {
        let stop = "ksh> attack site-cr4\r\nnk: FAIL-STOP: CR4 lost a pinned bit 0x1\r\n";
        assert!(judge_alone(Backend::Wp, "site-cr4", stop, Some(EXIT_FAILURE)).is_ok());
        assert!(judge_alone(Backend::Wp, "site-cr4", stop, Some(EXIT_SUCCESS)).is_err());
        assert!(
            judge_alone(Backend::Wp, "site-cr4", "attack site-cr4 [I6]: SUCCEEDED (x)", Some(EXIT_SUCCESS)).is_err()
        );
        let ran = "attack site-cr4 [I6]: SUCCEEDED (SMEP off)\nattacks: 0 blocked, 1 succeeded\npoweroff\n";
        assert!(judge_alone(Backend::Native, "site-cr4", ran, Some(EXIT_SUCCESS)).is_ok());
        assert!(judge_alone(Backend::Native, "site-cr4", ran, Some(EXIT_FAILURE)).is_err());
        assert!(judge_alone(Backend::Native, "site-cr4", "nk: FAIL-STOP: x", Some(EXIT_FAILURE)).is_err());
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
