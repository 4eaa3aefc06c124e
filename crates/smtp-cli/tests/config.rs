//! `smtp serve --config FILE` and `--check-config`, from outside: the built binary, its
//! exit status and output, and a server started from a file on 127.0.0.1 port 0.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::serve::{SMTP, Serve, ServeCommand};

/// The example file the README points to.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/smtp-serve.toml")
}

fn smtp(args: &[&str]) -> Output {
    Command::new(SMTP)
        .args(args)
        .output()
        .expect("the smtp binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A file in a fresh temporary directory.
fn file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smtp-serve.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_owned())
}

/// The keys of the example file: `key = ...` lines, and `#key = ...` ones commented out.
fn example_keys() -> Vec<String> {
    let text = std::fs::read_to_string(example()).unwrap();
    let mut keys: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (key, _) = l.trim_start_matches('#').split_once(" = ")?;
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            ok.then(|| key.to_owned())
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn example_file_has_every_option_of_smtp_serve() {
    let help = smtp(&["serve", "--help"]);
    assert!(help.status.success());
    let mut options: Vec<String> = text(&help.stdout)
        .lines()
        .filter_map(|l| {
            let long = l.trim_start().strip_prefix("--")?;
            let name = long.split([' ', '=']).next().unwrap();
            Some(name.to_owned())
        })
        .filter(|name| !["help", "config", "check-config"].contains(&name.as_str()))
        .collect();
    options.sort();
    assert!(options.len() > 40, "{options:?}");
    assert_eq!(
        example_keys(),
        options,
        "docs/smtp-serve.toml must hold every option of `smtp serve --help`"
    );
}

#[test]
fn example_file_checks_and_holds_the_defaults() {
    let example = example();
    let checked = smtp(&[
        "serve",
        "--check-config",
        "--config",
        example.to_str().unwrap(),
    ]);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
    let defaults = smtp(&["serve", "--check-config"]);
    assert_eq!(defaults.status.code(), Some(0));
    assert_eq!(text(&checked.stdout), text(&defaults.stdout));
    let out = text(&defaults.stdout);
    for line in [
        "max-size = 26214400\n",
        "maildir = \"./maildir\"\n",
        "listen = []\n",
        "require-tls = false\n",
        "io = \"tokio\"\n",
        "# hostname is not set\n",
        "# relay-auth is not set\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    // Every key of the example, and only those, is in the effective configuration.
    let mut printed: Vec<String> = out
        .lines()
        .map(|l| {
            let l = l.strip_prefix("# ").unwrap_or(l);
            l.split(' ').next().unwrap().to_owned()
        })
        .collect();
    printed.sort();
    assert_eq!(printed, example_keys());
}

#[test]
fn unknown_key_names_the_key_and_line() {
    let (_dir, path) = file("max-size = 1000\n# a comment\nfrobnicate = 1\n");
    let out = smtp(&["serve", "--config", &path, "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(text(&out.stdout), "", "nothing listens");
    assert_eq!(
        text(&out.stderr),
        format!(
            "smtp serve: {path}:3: unknown key \"frobnicate\" (the keys are the long options \
             of smtp serve)\n"
        )
    );
    let out = smtp(&["serve", "--config", &path, "--check-config"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn bad_values_name_the_key_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "lmtp = true\n\nmax-size = \"lots\"\n",
            "3: max-size: invalid value \"lots\": invalid digit found in string",
        ),
        (
            "io = \"threads\"\n",
            "1: io: invalid value \"threads\": [possible values: tokio, blocking]",
        ),
        (
            "relay-network = [\"10.0.0.0/8\",\n  \"10.0.0.0/33\"]\n",
            "2: relay-network: invalid value \"10.0.0.0/33\": \"10.0.0.0/33\": expected an \
             address or CIDR network (192.0.2.0/24, 2001:db8::/32)",
        ),
        (
            "require-tls = 1\n",
            "1: require-tls: expected true or false, not \"1\"",
        ),
        (
            "timeout = [1, 2]\n",
            "1: timeout: takes one value, not an array",
        ),
        (
            "config = \"other.toml\"\n",
            "1: unknown key \"config\" (the keys are the long options of smtp serve)",
        ),
    ];
    for (file_text, want) in cases {
        let (_dir, path) = file(file_text);
        for check in [false, true] {
            let mut args = vec!["serve", "--config", &path, "--listen", "127.0.0.1:0"];
            if check {
                args.push("--check-config");
            }
            let out = smtp(&args);
            assert_eq!(out.status.code(), Some(64), "{file_text}");
            assert_eq!(text(&out.stdout), "", "nothing listens: {file_text}");
            assert_eq!(text(&out.stderr), format!("smtp serve: {path}:{want}\n"));
        }
    }
}

#[test]
fn a_file_that_cannot_be_read_is_ex_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let out = smtp(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stderr),
        format!(
            "smtp serve: --config {}: No such file or directory (os error 2)\n",
            path.display()
        )
    );
}

#[test]
fn the_command_line_wins_over_the_file() {
    let (_dir, path) = file(
        "max-size = 1000\nlocal-domain = [\"a.example\", \"b.example\"]\nrelay-domain = \
         \"c.example\"\nrequire-tls = true\ntimeout = \"60\"\n",
    );
    let out = smtp(&[
        "serve",
        "--max-size",
        "2000",
        "--config",
        &path,
        "--local-domain=d.example",
        "--check-config",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    for line in [
        "max-size = 2000\n",
        "local-domain = [\"d.example\"]\n",
        "relay-domain = [\"c.example\"]\n",
        "require-tls = true\n",
        "timeout = 60\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
}

#[test]
fn check_config_redacts_secrets_and_checks_files() {
    let (dir, path) =
        file("relay-host = \"smarthost.example:587\"\nrelay-auth = \"relayuser:hunter2\"\n");
    let out = smtp(&["serve", "--config", &path, "--check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("relay-auth = \"[redacted]\"\n"), "{stdout}");
    assert!(stdout.contains("relay-host = \"smarthost.example:587\"\n"));
    assert!(!stdout.contains("hunter2"));
    // The files it names are read: an auth file that is not there is EX_CONFIG.
    let users = dir.path().join("users");
    let out = smtp(&[
        "serve",
        "--check-config",
        "--auth-file",
        users.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stderr),
        format!(
            "smtp serve: --auth-file {}: No such file or directory (os error 2)\n",
            users.display()
        )
    );
}

#[test]
fn check_config_checks_the_relay_options_and_the_tls_files() {
    let (dir, path) = file("relay-host = \"smarthost.example:587\"\nretry-min = 0\n");
    let out = smtp(&["serve", "--config", &path, "--check-config"]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        text(&out.stderr),
        "smtp serve: --retry-min must be at least 1 and --retry-max at least it\n"
    );
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let out = smtp(&[
        "serve",
        "--check-config",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stderr),
        format!(
            "smtp serve: TLS: {}: no certificate or key found\n",
            cert.display()
        )
    );
    assert_eq!(text(&out.stdout), "");
    // The --dkim-sign keys are loaded too.
    let out = smtp(&[
        "serve",
        "--check-config",
        "--dkim-sign",
        &format!("example.test:s1:{}", key.display()),
    ]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).starts_with(&format!("smtp serve: DKIM key file {}: ", key.display())),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
}

/// A server started with `--config` and `extra`; returns it and its listener's port.
fn serve(config: &str, extra: &[&str]) -> (Serve, u16) {
    let serve = ServeCommand::new()
        .args(["--config", config])
        .args(extra)
        .start();
    let port = serve.port();
    (serve, port)
}

/// SIGTERM, and a clean exit.
fn stop(mut serve: Serve) {
    assert!(serve.terminate().is_some_and(|s| s.success()));
}

/// The greeting and the EHLO reply.
fn greeting_and_ehlo(port: u16) -> (String, Vec<String>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    s.write_all(b"EHLO client.example\r\n").unwrap();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let done = line.as_bytes().get(3) == Some(&b' ');
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    s.write_all(b"QUIT\r\n").unwrap();
    (greeting.trim_end().to_owned(), lines)
}

fn served_as_the_file_says(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_conf, path) = file(&format!(
        "listen = \"127.0.0.1:0\"\nhostname = \"mx.file.example\"\nmaildir = {:?}\n\
         max-size = 12345\nno-tls = true\nio = \"{io}\"\nlmtp = false\n",
        dir.path().join("maildir")
    ));
    let (child, port) = serve(&path, &[]);
    let (greeting, ehlo) = greeting_and_ehlo(port);
    stop(child);
    assert_eq!(greeting, "220 mx.file.example ESMTP");
    assert_eq!(ehlo[0], "250-mx.file.example");
    assert!(ehlo.contains(&"250-SIZE 12345".to_owned()), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    assert!(dir.path().join("maildir/new").is_dir());

    // The command line wins.
    let (child, port) = serve(&path, &["--max-size", "999", "--hostname=mx.cli.example"]);
    let (greeting, ehlo) = greeting_and_ehlo(port);
    stop(child);
    assert_eq!(greeting, "220 mx.cli.example ESMTP");
    assert!(ehlo.contains(&"250-SIZE 999".to_owned()), "{ehlo:?}");
}

#[test]
fn served_as_the_file_says_tokio() {
    served_as_the_file_says("tokio");
}

#[test]
fn served_as_the_file_says_blocking() {
    served_as_the_file_says("blocking");
}
