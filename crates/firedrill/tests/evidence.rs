//! The evidence of a real drill: report.html opened in a real headless
//! Chromium (screenshot, rendered DOM, console), junit.xml, and the run
//! history, including two firedrill processes recording at once.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// ------------------------------------------------------------ browser

/// Headless Chromium, when installed. Under CI=true a missing browser
/// fails the test instead of skipping it.
fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium is missing (CI=true: this is a failure, not a skip); install the Debian package `chromium`");
        }
        eprintln!("skipping: chromium not installed (apt-get install chromium)");
    }
    found
}

/// What the browser made of a page.
struct Page {
    /// The DOM after load (and after any script ran).
    dom: String,
    /// Every console message the page produced: uncaught exceptions,
    /// console.error/log. The report has no script, so any is a fault.
    console: Vec<String>,
}

fn headless(bin: &Path, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null());
    c
}

fn load(bin: &Path, page: &Path) -> Page {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = headless(bin, profile.path())
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    Page {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("CONSOLE("))
            .map(str::to_string)
            .collect(),
    }
}

fn screenshot(bin: &Path, page: &Path, png: &Path) {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = headless(bin, profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,2000")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium screenshot failed: {out:?}");
    let bytes = std::fs::read(png).expect("screenshot written");
    assert!(
        bytes.len() > 10_000,
        "screenshot too small: {} bytes",
        bytes.len()
    );
    assert_eq!(&bytes[1..4], b"PNG");
}

/// The negative control: the console check must catch a page error, or a
/// clean result below would prove nothing.
#[test]
fn browser_check_catches_page_errors() {
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><p>x</p><script>throw new Error('deliberate')</script></body></html>",
    )
    .unwrap();
    let p = load(&bin, &bad);
    assert!(
        p.console
            .iter()
            .any(|l| l.contains("Uncaught Error: deliberate")),
        "the thrown error was not seen: {:?}",
        p.console
    );
    let good = dir.path().join("good.html");
    std::fs::write(
        &good,
        "<!DOCTYPE html><html><body><p id=\"x\">fine</p></body></html>",
    )
    .unwrap();
    let p = load(&bin, &good);
    assert!(p.console.is_empty(), "{:?}", p.console);
    assert!(p.dom.contains("<p id=\"x\">fine</p>"));
}

// ------------------------------------------------------------ real drill

const KINDS: [&str; 6] = [
    "fault_start",
    "fault_in_effect",
    "heal",
    "detected",
    "first_write",
    "recovered",
];

/// Async replication cut at +1 s, primary killed at +2.5 s, n2 promoted:
/// a visible loss window before the disaster, and every marker kind.
fn short_drill(name: &str) -> String {
    format!(
        r#"
[lab]
name = "{name}"
dir = "@DIR@"
standbys = 1
replication = "async"

[drill]
name = "{name}"
description = "Short evidence drill: replication cut, then the primary dies."
[drill.workload]
mode = "closed"
clients = 4
op_timeout = "1s"
warmup = "1s"
duration = "5s"
[[drill.faults]]
at = "1s"
action = "cut_replication"
node = "n2"
for = "3s"
[[drill.faults]]
at = "2500ms"
action = "kill"
node = "primary"
[drill.recovery]
promote = "n2"
[drill.slo]
stable_for = "1s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "5s"
rto = "30s"
"#
    )
}

#[test]
fn real_drill_leaves_html_junit_and_history() {
    if !pg_available() {
        return;
    }
    let browser = chromium();
    let _g = serial();
    let name = "evidence-pg";
    let lab = Lab::up(&short_drill(name));
    let d = lab.drill("run");
    assert!(d.code == 0 || d.code == 1, "drill failed: {}", d.stderr);
    assert!(d.stdout.contains("report.html"), "{}", d.stdout);

    // run.json carries the timeline series from the saved ledger.
    let series = &d.trial(0)["series"];
    let p99 = series["p99_ms"].as_array().expect("series in run.json");
    assert!(p99.iter().any(|v| v.as_f64().is_some()), "no latency");
    let lost_total: u64 = series["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        lost_total,
        d.u64(0, "rpo.lost"),
        "every lost write is on the chart"
    );
    assert!(lost_total > 0, "an async cut of 1.5 s must lose writes");

    // junit.xml: one testcase per objective, named drill/trial-n/objective.
    let junit = std::fs::read_to_string(d.dir.join("junit.xml")).expect("junit.xml");
    assert!(junit.contains(&format!("<testcase name=\"{name}/trial-1/rpo\"")));
    assert!(junit.contains(&format!("<testcase name=\"{name}/trial-1/rto\"")));
    // `report --junit=-` regenerates exactly what the drill wrote.
    let again = firedrill(&["report", d.dir.to_str().unwrap(), "--junit=-"]);
    assert_eq!(again.status.code(), Some(d.code));
    assert_eq!(String::from_utf8_lossy(&again.stdout), junit);

    // report.html, as written, and regenerated by `report --html`.
    let html_path = d.dir.join("report.html");
    let html = std::fs::read_to_string(&html_path).expect("report.html");
    for k in KINDS {
        assert!(
            html.contains(&format!("data-marker=\"{k}\"")),
            "no {k} marker"
        );
    }
    std::fs::remove_file(&html_path).unwrap();
    let r = firedrill(&["report", d.dir.to_str().unwrap(), "--html"]);
    assert_eq!(r.status.code(), Some(d.code), "{r:?}");
    assert_eq!(std::fs::read_to_string(&html_path).unwrap(), html);

    // History: the run is indexed, and the trend shows it.
    let runs = firedrill(&["runs", "--drill", name, "--json"]);
    assert_eq!(runs.status.code(), Some(0));
    let rows: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("runs json");
    let dir = std::fs::canonicalize(&d.dir).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["run_dir"] == dir.display().to_string()),
        "run missing from history: {rows}"
    );
    let trend = firedrill(&["runs", "trend", name]);
    assert_eq!(trend.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&trend.stdout).contains("meets RPO objective"));

    // The page in a real browser: no console error, every marker in the
    // rendered SVG timeline, and a screenshot.
    let Some(bin) = browser else { return };
    let page = load(&bin, &html_path);
    assert!(
        page.console.is_empty(),
        "console output: {:?}",
        page.console
    );
    assert!(page.dom.contains("<svg class=\"timeline\""), "no timeline");
    let timeline = page
        .dom
        .split("<svg class=\"timeline\"")
        .nth(1)
        .and_then(|s| s.split("</svg>").next())
        .expect("timeline svg");
    for k in KINDS {
        assert!(
            timeline.contains(&format!("data-marker=\"{k}\"")),
            "the rendered timeline has no {k} marker"
        );
    }
    assert!(timeline.contains("class=\"marker marker-fault-start\""));
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("evidence-report.png");
    screenshot(&bin, &html_path, &png);
    eprintln!("screenshot: {}", png.display());
}

// ------------------------------------------------------------ history

fn fixture_run() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firedrill-report/tests/fixtures/v1-pg-async-cut-crash")
}

/// Two `firedrill runs add` processes at the same moment, on a fresh and
/// then a shared history file, many times: both runs land and the file
/// passes SQLite's integrity check.
#[test]
fn parallel_processes_record_without_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let run_json = std::fs::read(fixture_run().join("run.json")).expect("fixture");
    const ROUNDS: usize = 12;
    for round in 0..ROUNDS {
        let state = tmp.path().join(format!("state-{}", round % 3));
        let dirs: Vec<PathBuf> = (0..2)
            .map(|w| {
                let d = tmp.path().join(format!("run-{round}-{w}"));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("run.json"), &run_json).unwrap();
                d
            })
            .collect();
        let children: Vec<_> = dirs
            .iter()
            .map(|d| {
                Command::new(BIN)
                    .args(["runs", "add", d.to_str().unwrap()])
                    .env("FIREDRILL_STATE_DIR", &state)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn firedrill")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let db = rusqlite::Connection::open(state.join("history.sqlite")).unwrap();
        for d in &dirs {
            let key = std::fs::canonicalize(d).unwrap().display().to_string();
            let n: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM runs WHERE run_dir = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "round {round}: {key} missing");
            let trials: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM trials t JOIN runs r ON r.id = t.run_id WHERE r.run_dir = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(trials, 1);
        }
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}

#[test]
fn bad_history_and_report_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("FIREDRILL_STATE_DIR", &state)
            .output()
            .unwrap()
    };
    let o = run(&["runs", "--verdict", "maybe"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["runs", "trend", "never-ran"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run history"));
    let o = run(&["runs", "add", tmp.path().join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[
        "report",
        tmp.path().join("nope").to_str().unwrap(),
        "--html",
    ]);
    assert_eq!(o.status.code(), Some(2));
    // An empty history lists nothing and is not created by listing.
    let o = run(&["runs"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no runs recorded"));
    assert!(!state.join("history.sqlite").exists());
    // Once a run is known, an unknown drill name is still bad input.
    let o = run(&["runs", "add", fixture_run().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = run(&["runs", "trend", "never-ran"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no runs of drill"));
    let o = run(&["runs", "trend", "pg-async-cut-crash"]);
    assert_eq!(o.status.code(), Some(0));
}
