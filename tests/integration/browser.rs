//! The settings page in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver, with fantoccini) against `./scripts/run` as a user starts it. A
//! person's whole visit: sign in through the local issuer's form, create a token with scopes
//! (the form sent with Enter), read its secret from the page and call the API with it, rotate
//! it, revoke it after a confirmation, see it gone and refused, and read the security log; on
//! the way, API errors in words, labels, the keyboard, a phone's width and a forged sign-in
//! answer. Each state is saved as a PNG under `target/browser/`.

use crate::local_run::{curl, LocalRun};
use fantoccini::{Client, ClientBuilder, Locator};
use harness::dynamodb_local::{free_port, progress};
use harness::workspace_root;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Generous: a cold function under the emulator answers in a second or two.
const LIMIT: Duration = Duration::from_secs(60);
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// chromedriver on a port of its own, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: run ./scripts/bootstrap (as root it installs Debian's chromium and chromium-driver; else: sudo apt-get install -y --no-install-recommends chromium chromium-driver)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let (status, body) = curl(&[&format!("{url}/status")]);
            if status == 200 && body.contains("\"ready\":true") {
                break;
            }
            assert!(started.elapsed() < LIMIT, "chromedriver not ready: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh profile, removed when the test ends.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn browser(driver: &Driver, profile: &Profile) -> Client {
    // Headless as root; without the background services, whose connections this closed
    // network refuses.
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        &format!("--user-data-dir={}", profile.0.display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver refused a session: {e}"))
}

/// Runs `script` until it returns something other than null or false; that value.
async fn eventually(client: &Client, what: &str, script: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if !value.is_null() && value != Value::Bool(false) {
            return value;
        }
        if started.elapsed() > LIMIT {
            let page = client
                .execute("return document.body.innerText", vec![])
                .await;
            panic!("{what}: not within {LIMIT:?}; the page says:\n{page:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn click(client: &Client, css: &str) {
    let element = client
        .wait()
        .at_most(LIMIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let element = client.find(Locator::Css(css)).await.expect(css);
    element.send_keys(text).await.expect(css);
}

/// The API with a secret, as a deployer's client calls it: (status, body).
fn list_with(api: &str, secret: &str) -> (u16, String) {
    curl(&[
        &format!("{api}/api/v1/user/apptoken"),
        "-H",
        &format!("Authorization: Bearer {secret}"),
    ])
}

const SECRET: &str = "return document.getElementById('new-secret').value || null";
/// The token rows' text, as a JavaScript expression.
const ROWS: &str = "[...document.querySelectorAll('#tokens tbody tr')].map(r => r.innerText)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_manages_a_token_on_the_settings_page() {
    let started = Instant::now();
    let shots = workspace_root().join("target").join("browser");
    std::fs::create_dir_all(&shots).expect("target/browser");
    let mut run = LocalRun::start(&["--in-memory"], free_port());
    let api = format!("http://127.0.0.1:{}", run.port);
    let driver = Driver::start();
    let profile = Profile(std::env::temp_dir().join(format!("chromium-{}", free_port())));
    let client = browser(&driver, &profile).await;

    // Signed out: the page offers the sign-in, and the banner names the page.
    assert!(
        run.output()
            .iter()
            .any(|l| l.contains(&format!("{api}/tokens"))),
        "./scripts/run prints the page's URL"
    );
    client.goto(&format!("{api}/tokens")).await.expect("open");
    eventually(
        &client,
        "the sign-in button",
        "return !document.getElementById('signed-out').hidden",
    )
    .await;
    shot(&client, &shots, "01-signed-out").await;

    // The issuer's development form: a user name, sent with Enter.
    click(&client, "#sign-in").await;
    client
        .wait()
        .at_most(LIMIT)
        .for_element(Locator::Css("#username"))
        .await
        .expect("form");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/authorize"));
    shot(&client, &shots, "02-issuer-sign-in").await;
    type_into(&client, "#username", &format!("alice{ENTER}")).await;
    let who = eventually(&client, "signed in", "return !document.getElementById('signed-in').hidden && document.getElementById('who').textContent").await;
    assert_eq!(who, "Signed in as alice");
    let url = client.current_url().await.unwrap();
    assert!(url.query().is_none(), "the code left the address: {url}");
    eventually(
        &client,
        "an empty list",
        "return !document.getElementById('no-tokens').hidden",
    )
    .await;
    shot(&client, &shots, "03-signed-in").await;

    // Every control is labelled for a screen reader.
    let unlabelled = client.execute(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, button')]
           .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
           .map(e => e.outerHTML)", vec![]).await.unwrap();
    assert_eq!(unlabelled, json!([]), "controls without a label");

    // An error of the API, in words: a session may not grant super:user.
    type_into(&client, "#title", "too much").await;
    click(&client, "#scopes input[value='super:user']").await;
    click(&client, "#create").await;
    let error = eventually(
        &client,
        "the refusal",
        "const e = document.getElementById('error'); return !e.hidden && e.textContent",
    )
    .await;
    assert!(
        error.as_str().unwrap().starts_with("Not allowed: "),
        "{error}"
    );
    assert!(error.as_str().unwrap().contains("super:user"), "{error}");
    shot(&client, &shots, "04-error").await;
    click(&client, "#scopes input[value='super:user']").await;
    client
        .execute("document.getElementById('title').value = ''", vec![])
        .await
        .unwrap();

    // Create, from the keyboard: scopes, an expiry, and Enter in the note.
    click(&client, "#scopes input[value='repo:read']").await;
    click(&client, "#scopes input[value='user:read']").await;
    let expiry = client.find(Locator::Css("#expiry")).await.unwrap();
    expiry
        .select_by_value("2592000")
        .await
        .expect("a 30-day choice");
    type_into(&client, "#title", &format!("ci pipeline{ENTER}")).await;
    let secret = eventually(&client, "the new secret", SECRET).await;
    let secret = secret.as_str().unwrap().to_owned();
    assert!(secret.starts_with("pat_") && secret.len() == 40, "{secret}");
    let notice = client
        .find(Locator::Css("#secret-box"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("you will not see it again"), "{notice}");
    assert!(notice.contains("Copy"), "{notice}");
    let rows = eventually(
        &client,
        "the new row",
        &format!("return {ROWS}.filter(t => t.includes('ci pipeline')).length === 1 && {ROWS}"),
    )
    .await;
    let row = rows[0].as_str().unwrap();
    for expected in ["repo:read", "user:read", "Expires in 30 days", "Never used"] {
        assert!(row.contains(expected), "{expected} missing from {row:?}");
    }
    shot(&client, &shots, "05-created").await;

    // The secret read from the page works on the API.
    let (status, body) = list_with(&api, &secret);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ci pipeline"), "{body}");

    // A phone: nothing wider than the screen.
    client.set_window_size(390, 844).await.unwrap();
    let fits = eventually(&client, "the phone layout", "return document.documentElement.scrollWidth <= window.innerWidth + 1 || [document.documentElement.scrollWidth, window.innerWidth]").await;
    assert_eq!(fits, true, "wider than a phone: {fits}");
    shot(&client, &shots, "06-phone").await;
    client.set_window_size(1280, 1400).await.unwrap();

    // Rotate, confirmed in a dialog: a new secret; the old one is refused at once (no grace).
    click(&client, "#tokens tbody tr .rotate").await;
    eventually(
        &client,
        "the rotate dialog",
        "return document.getElementById('confirm').open",
    )
    .await;
    shot(&client, &shots, "07-rotate-confirm").await;
    click(&client, "#confirm-ok").await;
    let rotated = eventually(&client, "the rotated secret", &format!("const s = document.getElementById('new-secret').value; return s && s !== '{secret}' && s")).await;
    let rotated = rotated.as_str().unwrap().to_owned();
    eventually(
        &client,
        "last used shown",
        &format!("return {ROWS}.some(t => t.includes('just now'))"),
    )
    .await;
    shot(&client, &shots, "08-rotated").await;
    assert_eq!(
        list_with(&api, &secret).0,
        401,
        "the old secret after rotation"
    );
    assert_eq!(list_with(&api, &rotated).0, 200, "the new secret");

    // Revoke: Escape cancels the dialog and keeps the token; the button revokes it.
    click(&client, "#tokens tbody tr .revoke").await;
    eventually(
        &client,
        "the revoke dialog",
        "return document.getElementById('confirm').open",
    )
    .await;
    shot(&client, &shots, "09-revoke-confirm").await;
    client
        .find(Locator::Css("#confirm-cancel"))
        .await
        .unwrap()
        .send_keys(ESCAPE)
        .await
        .unwrap();
    eventually(
        &client,
        "the dialog closed",
        "return !document.getElementById('confirm').open",
    )
    .await;
    let kept = client
        .execute(
            "return document.querySelectorAll('#tokens tbody tr').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, 1, "cancelled: the token stays");
    click(&client, "#tokens tbody tr .revoke").await;
    eventually(
        &client,
        "the revoke dialog",
        "return document.getElementById('confirm').open",
    )
    .await;
    click(&client, "#confirm-ok").await;
    eventually(&client, "the token gone", "return !document.getElementById('no-tokens').hidden && document.querySelectorAll('#tokens tbody tr').length === 0").await;
    let status = client
        .find(Locator::Css("#status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "Token \"ci pipeline\" revoked.");
    assert_eq!(list_with(&api, &rotated).0, 401, "the revoked token");

    // The security log: created, rotated, revoked, by the signed-in session.
    let kinds = eventually(&client, "the log", "const k = [...document.querySelectorAll('#logs tbody tr')].map(r => r.dataset.kind); return k.length >= 3 && k").await;
    for kind in [
        "create_app_specific_token",
        "rotate_app_specific_token",
        "revoke_app_specific_token",
    ] {
        assert!(
            kinds.as_array().unwrap().contains(&json!(kind)),
            "{kind} missing: {kinds}"
        );
    }
    let log = client
        .find(Locator::Css("#logs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("You, signed in") && log.contains("ci pipeline"),
        "{log}"
    );
    client
        .execute(
            "document.getElementById('log-heading').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    shot(&client, &shots, "10-revoked-and-log").await;

    // A sign-in answer this tab did not ask for is refused (state), and nothing is signed in.
    client
        .goto(&format!("{api}/tokens?code=forged&state=forged"))
        .await
        .unwrap();
    let refused = eventually(
        &client,
        "the forged answer refused",
        "const e = document.getElementById('error'); return !e.hidden && e.textContent",
    )
    .await;
    assert!(
        refused.as_str().unwrap().contains("does not belong"),
        "{refused}"
    );
    assert_eq!(
        client
            .execute("return document.getElementById('signed-in').hidden", vec![])
            .await
            .unwrap(),
        true
    );

    client.close().await.expect("close the browser");
    assert!(run.ctrl_c().success());
    progress(&format!(
        "browser: the whole visit in {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    ));
}

/// A link to the page's sign-in callback carrying an issuer "error" with an attacker's words
/// (`error_description`): without the state this tab's sign-in saved, the page shows only its
/// own generic refusal, never the address's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sign_in_error_shows_none_of_the_addresss_text() {
    let mut run = LocalRun::start(&["--in-memory"], free_port());
    let api = format!("http://127.0.0.1:{}", run.port);
    let driver = Driver::start();
    let profile = Profile(std::env::temp_dir().join(format!("chromium-{}", free_port())));
    let client = browser(&driver, &profile).await;
    const ATTACKER: &str = "Your account is locked, call +1 555 0100 now";

    let description = ATTACKER.replace(' ', "+");
    for query in [
        format!("error=access_denied&error_description={description}&state=forged"),
        format!("error=access_denied&error_description={description}"),
        "error=Call+555+0100+to+unlock&state=".to_owned(),
    ] {
        client.goto(&format!("{api}/tokens?{query}")).await.unwrap();
        let shown = eventually(
            &client,
            "the forged answer refused",
            "const e = document.getElementById('error'); return !e.hidden && e.textContent",
        )
        .await;
        let shown = shown.as_str().unwrap();
        assert!(shown.contains("does not belong"), "{query}: {shown}");
        let page = client
            .execute("return document.body.innerText", vec![])
            .await
            .unwrap();
        let page = page.as_str().unwrap();
        for words in [ATTACKER, "555 0100", "access_denied"] {
            assert!(
                !page.contains(words),
                "{query}: the page shows {words:?}:\n{page}"
            );
        }
        let url = client.current_url().await.unwrap();
        assert!(url.query().is_none(), "the answer left the address: {url}");
    }
    client.close().await.expect("close the browser");
    assert!(run.ctrl_c().success());
}
