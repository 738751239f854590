//! Headless Chromium for the HTML pages firedrill writes (the drill
//! report, the assess page): the rendered DOM, console messages, and a
//! screenshot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Headless Chromium, when installed. Under CI=true a missing browser
/// fails the test instead of skipping it.
pub fn chromium() -> Option<PathBuf> {
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
pub struct Page {
    /// The DOM after load (and after any script ran).
    pub dom: String,
    /// Every console message the page produced: uncaught exceptions,
    /// console.error/log. The report has no script, so any is a fault.
    pub console: Vec<String>,
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

pub fn load(bin: &Path, page: &Path) -> Page {
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

pub fn screenshot(bin: &Path, page: &Path, png: &Path) {
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
