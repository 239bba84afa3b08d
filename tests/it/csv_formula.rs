//! Formula injection through exports, with the real binary: an address
//! anyone can type into the subscribe form (`=cmd|'/Ccalc'!A0@example.org`)
//! and names or notes starting with `=`, `+`, `-` or `@` are exported with
//! a leading `'`, so a spreadsheet shows them as text; importing the export
//! takes the `'` off again, and export -> import -> export gives the same
//! bytes.

use super::digest_cli::{digest_site, text};
use super::helpers::TestSite;

fn ok(site: &TestSite, args: &[&str]) -> String {
    let out = site.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn exports_quote_formula_cells_and_import_round_trips_them_byte_for_byte() {
    let site = digest_site();
    ok(
        &site,
        &["subscribers", "add", "=cmd|'/Ccalc'!A0@example.org"],
    );
    ok(
        &site,
        &[
            "subscribers",
            "add",
            "+1@example.org",
            "--name",
            "@SUM(A1:A9)",
            "--confirmed",
            "--note=-2+3 at the fair",
        ],
    );
    ok(
        &site,
        &[
            "subscribers",
            "add",
            "x@example.org",
            "--name",
            "'=already quoted",
        ],
    );
    ok(
        &site,
        &["subscribers", "add", "plain@example.org", "--name", "Ann"],
    );
    let first = site.dir.path().join("first.csv");
    ok(&site, &["subscribers", "export", first.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&first).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(exported.as_bytes());
    for record in reader.records() {
        for cell in record.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a spreadsheet would run {cell:?}:\n{exported}"
            );
        }
    }
    assert!(
        exported.contains("'=cmd|'/Ccalc'!A0@example.org"),
        "{exported}"
    );
    assert!(exported.contains("'@SUM(A1:A9)"), "{exported}");
    assert!(exported.contains("''=already quoted"), "{exported}");
    assert!(exported.contains("plain@example.org,Ann,"), "{exported}");

    // Into another database, and out again.
    let other = digest_site();
    let out = other.cli(&["subscribers", "import", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = ok(&other, &["subscribers", "list"]);
    assert!(list.contains("=cmd|'/Ccalc'!A0@example.org"), "{list}");
    assert!(!list.contains("'=cmd"), "{list}");
    let second = other.dir.path().join("second.csv");
    ok(&other, &["subscribers", "export", second.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&second).unwrap(), exported);
}
