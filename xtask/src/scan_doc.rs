//! `cargo xtask scan --doc`: the scanner report in docs/scanner.md comes
//! from the scan itself, between two marker comments, so it cannot go
//! stale by hand.

use crate::Result;
use std::path::Path;

const BEGIN: &str = "<!-- scan-report:begin (cargo xtask scan --doc) -->";
const END: &str = "<!-- scan-report:end -->";

/// `doc` with the text between the markers replaced by `report` in a
/// fenced block.
pub fn splice(doc: &str, report: &str) -> Result<String> {
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err("docs/scanner.md has no scan-report markers".into());
    };
    if e < b {
        return Err("docs/scanner.md: the scan-report markers are out of order".into());
    }
    Ok(format!("{}{BEGIN}\n```\n{report}```\n{}", &doc[..b], &doc[e..]))
}

pub fn write(kernel: &Path) -> Result<u8> {
    let report = crate::scan::scan_file(kernel)?;
    let mut text = report.render();
    let outer = report.outer_hits().count();
    text.push_str(&if outer == 0 {
        "scan: ok: 0 protected instructions outside the nested kernel\n".to_string()
    } else {
        format!("scan: FAILED: {outer} protected instruction(s) outside the nested kernel\n")
    });
    let path = crate::setup::workspace_root().join("docs/scanner.md");
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    std::fs::write(&path, splice(&doc, &text)?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    print!("{text}");
    println!("wrote the report into {}", path.display());
    Ok(u8::from(outer > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_between_the_markers() {
        let doc = format!("a\n{BEGIN}\nold\n{END}\nb\n");
        assert_eq!(splice(&doc, "new\n").unwrap(), format!("a\n{BEGIN}\n```\nnew\n```\n{END}\nb\n"));
        assert!(splice("no markers", "x").is_err());
    }
}
