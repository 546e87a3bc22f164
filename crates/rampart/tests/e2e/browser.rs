//! A real browser (headless Chromium) against the edge with CSP nonces on: the nonced inline
//! script runs, scripts injected at run time (a `<script>` element and an inline event
//! handler) are blocked, and the violation reports reach the report endpoint.
//!
//! Needs `chromium` on PATH (`.ci/run` installs it). Set `RAMPART_SKIP_BROWSER=1` to skip
//! on a machine without it; the skip is printed, never silent.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_test_support::TempDir;

use crate::harness::serve;

const PAGE: &str = r#"<!doctype html><html><head><title>csp</title><style>#ran{color:green}</style></head><body>
<p id="ran">no</p><p id="injected">no</p><p id="attr">no</p>
<script>
document.getElementById('ran').textContent = 'yes';
var s = document.createElement('script');
s.textContent = "document.getElementById('injected').textContent = 'yes'";
document.body.appendChild(s);
var d = document.createElement('div');
d.innerHTML = '<img src="/missing.png" onerror="document.getElementById(\'attr\').textContent=\'yes\'">';
document.body.appendChild(d);
</script></body></html>
"#;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonced_script_runs_injected_ones_are_blocked_and_reported() {
    let Some(browser) = chromium() else {
        if std::env::var_os("RAMPART_SKIP_BROWSER").is_some() {
            eprintln!("SKIPPED: no chromium on PATH (RAMPART_SKIP_BROWSER is set)");
            return;
        }
        panic!("no chromium on PATH: install it (apt-get install chromium) or set RAMPART_SKIP_BROWSER=1");
    };
    let dir = TempDir::new("browser");
    dir.write("www/index.html", PAGE);
    // `report_to = false`: Chromium batches Reporting API uploads for about a minute, while
    // `report-uri` reports are sent at once (both formats are tested in `site`).
    dir.write(
        "rampart.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n[csp_report]\nreport_to = false\n[[routes]]\npath = \"/\"\nstatic = \"www\"\ncsp_nonce = true\n",
    );
    let mut edge = serve(dir.path(), &[], 1);
    let url = format!("http://{}/", edge.http.unwrap());
    let profile = dir.path().join("profile");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--virtual-time-budget=3000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut s = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut s).unwrap();
        s
    })
    .await
    .unwrap();
    assert!(
        out.contains("<p id=\"ran\">yes</p>"),
        "the nonced script did not run: {out}"
    );
    assert!(
        out.contains("<p id=\"injected\">no</p>"),
        "an injected script ran: {out}"
    );
    assert!(
        out.contains("<p id=\"attr\">no</p>"),
        "an inline handler ran: {out}"
    );
    // Both reports, in whatever order they come.
    let deadline = Instant::now() + Duration::from_secs(20);
    for directive in ["script-src-elem", "script-src-attr"] {
        let needle = format!("\"directive\":\"{directive}\"");
        while !edge.seen.iter().any(|l| l.contains(&needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if edge.wait_for_line(&needle, left).is_none() {
                panic!("no {directive} report arrived: {:?}", edge.seen);
            }
        }
        let line = edge.seen.iter().find(|l| l.contains(&needle)).unwrap();
        assert!(line.contains("csp.violation"), "{line}");
        assert!(line.contains("\"blocked_uri\":\"inline\""), "{line}");
    }
}
