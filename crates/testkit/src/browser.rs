//! A real headless browser for status-page tests: Debian's `chromium` (`.ci/run` installs it;
//! `CHROMIUM` overrides the binary). A missing browser fails the test: it is never skipped.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser binary: `$CHROMIUM`, else `chromium` on the PATH.
pub fn chromium_binary() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"))
}

/// Loads `url` in headless Chromium and returns the DOM after the page loaded (`--dump-dom`):
/// what a browser renders, not the bytes served. Panics, naming the fix, when Chromium is
/// missing or does not finish within 60 s.
pub fn dump_dom(url: &str) -> String {
    let binary = chromium_binary();
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {} failed ({e}); install it (apt-get install chromium, as .ci/run does) \
                 or set CHROMIUM",
                binary.display()
            )
        });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish loading {url} within 60 s",
                binary.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("<html"),
        "{} failed on {url}: {}\nstderr:\n{}",
        binary.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// The text content of the element of a dumped DOM that carries `attribute` (e.g.
/// `data-field="active-series"`) inside the first element carrying `scope` (e.g.
/// `data-seed="aws-eu1"`), tags removed. `None` when either is missing.
pub fn text_of(dom: &str, scope: &str, attribute: &str) -> Option<String> {
    let scoped = &dom[dom.find(scope)?..];
    let start = scoped.find(attribute)?;
    let after_tag = start + scoped[start..].find('>')? + 1;
    let end = after_tag + scoped[after_tag..].find("</td>")?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in scoped[after_tag..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text.trim().to_string())
}
