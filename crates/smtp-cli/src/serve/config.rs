//! `smtp serve --config FILE` and `--check-config`.
//!
//! The file is TOML whose keys are the long option names of `smtp serve`
//! (`max-size = 1000000`, `local-domain = ["example.org"]`, `require-tls = true`). It
//! is read from clap's own description of the options, so an option added to
//! [`super::ServeArgs`] is a key at once: each key becomes `--key=value` arguments, checked
//! by that option's own value parser, and put before the command line's, whose options
//! replace the file's (a repeatable option on the command line replaces the file's list).
//! An unknown key or a bad value is an error that names the key and its line, before
//! anything listens.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};

use clap::builder::ValueParser;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches as _};
use toml::de::{DeTable, DeValue};

use super::ServeArgs;
use crate::passwords::PasswordFile;
use crate::{EX_CONFIG, EX_USAGE};

/// The options that say where the configuration comes from: they are not keys of the
/// file.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// Read options from this TOML file: keys are the long option names
    /// (`max-size = 1000`, `local-domain = ["example.org"]`, `require-tls = true`);
    /// options on the command line win.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Check the options (and the --config file, the --auth-file, the TLS certificate
    /// and key, the --dkim-sign keys), print the effective configuration as TOML
    /// (secrets redacted) and exit.
    #[arg(long)]
    check_config: bool,
}

/// Ids of the options that are not keys of the file.
const NOT_KEYS: &[&str] = &["config", "check_config", "help", "version"];

/// What a secret's value is printed as.
const REDACTED: &str = "[redacted]";

/// The command line with the `--config` file's options put in, for `smtp serve`; any
/// other command line comes back as it is. `Err` is the exit status, after a message on
/// stderr: the file is unreadable (EX_CONFIG) or wrong (EX_USAGE), or `--check-config`
/// is done (0 when the configuration is good).
pub(crate) fn prepare(argv: Vec<OsString>) -> Result<Vec<OsString>, u8> {
    if argv.get(1).map(OsString::as_os_str) != Some(OsStr::new("serve")) {
        return Ok(argv);
    }
    let cmd = command();
    let (given, file, check) = scan(&cmd, &argv[2..]);
    if file.is_none() && !check {
        return Ok(argv);
    }
    let mut merged: Vec<OsString> = argv[..2].to_vec();
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            eprintln!("smtp serve: --config {}: {e}", path.display());
            EX_CONFIG
        })?;
        let from_file = file_args(&cmd, &text).map_err(|e| {
            eprintln!("smtp serve: {}:{e}", path.display());
            EX_USAGE
        })?;
        merged.extend(
            from_file
                .into_iter()
                .filter(|(id, _)| !given.contains(id))
                .map(|(_, arg)| arg),
        );
    }
    merged.extend_from_slice(&argv[2..]);
    if check {
        return Err(check_config(cmd, &merged[1..]));
    }
    Ok(merged)
}

/// `smtp serve`'s options as clap knows them.
fn command() -> Command {
    ServeArgs::augment_args(Command::new("serve").bin_name("smtp serve"))
}

/// The options of `smtp serve` that are keys of the file.
fn keys(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some() && !NOT_KEYS.contains(&a.get_id().as_str()))
}

/// Which options the command line gives (by id), its `--config` file, and whether it
/// asks for `--check-config`. Only long options exist, so a token is `--name`,
/// `--name=value` or a value after a `--name` that takes one.
fn scan(cmd: &Command, args: &[OsString]) -> (HashSet<String>, Option<std::path::PathBuf>, bool) {
    let mut given = HashSet::new();
    let (mut file, mut check) = (None, false);
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        let token = token.to_string_lossy();
        if token == "--" {
            break;
        }
        let Some(long) = token.strip_prefix("--") else {
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (long, None),
        };
        let Some(arg) = cmd.get_arguments().find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name))
        }) else {
            continue;
        };
        let value = if takes_value(arg) && inline.is_none() {
            tokens.next().map(|v| v.to_string_lossy().into_owned())
        } else {
            inline
        };
        match arg.get_id().as_str() {
            "config" => file = value.map(Into::into),
            "check_config" => check = true,
            id => {
                given.insert(id.to_owned());
            }
        }
    }
    (given, file, check)
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// The file's options as `--key=value` arguments, each with its option's id; `Err` is
/// `LINE: what is wrong`, naming the key.
fn file_args(cmd: &Command, text: &str) -> Result<Vec<(String, OsString)>, String> {
    let line = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        format!("{}: {}", line(at), e.message())
    })?;
    let mut out = Vec::new();
    for (key, value) in table.get_ref() {
        let name = key.get_ref().as_ref();
        let here = |why: String| format!("{}: {name}: {why}", line(key.span().start));
        let Some(arg) = keys(cmd).find(|a| a.get_long() == Some(name)) else {
            return Err(format!(
                "{}: unknown key {name:?} (the keys are the long options of smtp serve)",
                line(key.span().start)
            ));
        };
        let id = arg.get_id().as_str().to_owned();
        let values: Vec<_> = match (value.get_ref(), arg.get_action()) {
            (DeValue::Array(items), ArgAction::Append) => items.iter().collect(),
            (DeValue::Array(_), _) => return Err(here("takes one value, not an array".into())),
            _ => vec![value],
        };
        for item in values {
            let at = |why: String| format!("{}: {name}: {why}", line(item.span().start));
            let text = scalar(item.get_ref()).ok_or_else(|| {
                at(format!(
                    "expected a string, a number or a boolean, not {}",
                    item.get_ref().type_str()
                ))
            })?;
            match arg.get_action() {
                ArgAction::SetTrue => match text.as_str() {
                    "true" => out.push((id.clone(), format!("--{name}").into())),
                    "false" => {}
                    _ => return Err(at(format!("expected true or false, not {text:?}"))),
                },
                ArgAction::Set | ArgAction::Append => {
                    check_value(arg, &text).map_err(at)?;
                    out.push((id.clone(), format!("--{name}={text}").into()));
                }
                _ => return Err(here("cannot be set in a file".into())),
            }
        }
    }
    Ok(out)
}

/// A TOML scalar as the command line would spell it.
fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(
            u128::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .or_else(|_| i128::from_str_radix(i.as_str(), i.radix()).map(|n| n.to_string()))
                .unwrap_or_else(|_| i.to_string()),
        ),
        DeValue::Float(f) => Some(f.to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// Runs the option's own value parser on `value`; `Err` is its complaint.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let mut probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        probe = probe.value_names(names.to_vec());
    }
    Command::new("serve")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")])
        .map(drop)
        .map_err(|e| {
            // clap's message is `error: invalid value 'x' for '--value <N>': why`, or
            // the possible values on the next line.
            let text = e.render().to_string();
            let mut lines = text.lines().map(str::trim);
            let first = lines.next().unwrap_or_default();
            let why = match first.split_once("': ") {
                Some((_, why)) => Some(why),
                None => lines.next().filter(|l| l.starts_with('[')),
            };
            match why {
                Some(why) => format!("invalid value {value:?}: {why}"),
                None => format!("invalid value {value:?}"),
            }
        })
}

/// `--check-config`: parses `args` (the merged command line, from `serve`) as the server
/// would, checks the files it names, and prints every key with its effective value.
/// Returns the exit status.
fn check_config(mut cmd: Command, args: &[OsString]) -> u8 {
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EX_USAGE } else { 0 };
        }
    };
    let serve = match ServeArgs::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return EX_USAGE;
        }
    };
    if let Err((what, code)) = check_files(&serve) {
        eprintln!("smtp serve: {what}");
        return code;
    }
    print!("{}", effective(&cmd, &matches));
    0
}

/// What `smtp serve` would refuse at start without binding or creating anything: the
/// host name, the relay options, the auth file, the TLS certificate and key.
fn check_files(args: &ServeArgs) -> Result<(), (String, u8)> {
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(super::default_hostname);
    if let Err(e) = smtp_proto::server::ServerConfig::new(&hostname) {
        return Err((format!("--hostname {hostname}: {e}"), EX_USAGE));
    }
    if args.relay.enabled() {
        args.relay.config(&hostname).map_err(|e| (e, EX_USAGE))?;
    }
    if let Some(path) = &args.auth_file {
        PasswordFile::load(path)
            .map_err(|e| (format!("--auth-file {}: {e}", path.display()), EX_CONFIG))?;
    }
    if let Some(files) = args.tls_cert.as_ref().zip(args.tls_key.as_ref()) {
        super::tls_config(&hostname, Some(files)).map_err(|e| (format!("TLS: {e}"), EX_CONFIG))?;
    }
    args.verify.check_keys().map_err(|e| (e, EX_CONFIG))?;
    Ok(())
}

/// Every key with its value in `matches` as TOML, defaults included; a key without a
/// value is a comment, a secret is [`REDACTED`].
fn effective(cmd: &Command, matches: &ArgMatches) -> String {
    let mut out = String::new();
    for arg in keys(cmd) {
        let name = arg.get_long().expect("keys are long options");
        let id = arg.get_id().as_str();
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = match arg.get_action() {
            ArgAction::SetTrue => toml::Value::Boolean(matches.get_flag(id)),
            ArgAction::Append => toml::Value::Array(raw.iter().map(|v| typed(arg, v)).collect()),
            _ => match raw.first() {
                Some(v) => typed(arg, v),
                None => {
                    out.push_str(&format!("# {name} is not set\n"));
                    continue;
                }
            },
        };
        let value = if is_secret(arg) {
            toml::Value::String(REDACTED.into())
        } else {
            value
        };
        out.push_str(&format!("{name} = {value}\n"));
    }
    out
}

/// A value as TOML: an integer for an option whose parser makes integers, else a
/// string.
fn typed(arg: &Arg, raw: &str) -> toml::Value {
    let parser = arg.get_value_parser().type_id();
    let integer = [
        ValueParser::from(clap::value_parser!(u64)).type_id(),
        ValueParser::from(clap::value_parser!(u32)).type_id(),
        ValueParser::from(clap::value_parser!(u16)).type_id(),
        ValueParser::from(clap::value_parser!(u8)).type_id(),
        ValueParser::from(clap::value_parser!(usize)).type_id(),
        ValueParser::from(clap::value_parser!(i64)).type_id(),
    ]
    .contains(&parser);
    match raw.parse::<i64>() {
        Ok(n) if integer => toml::Value::Integer(n),
        _ => toml::Value::String(raw.to_owned()),
    }
}

/// Whether an option's value is a secret: it holds a password (`USER:PASS`).
fn is_secret(arg: &Arg) -> bool {
    let name = arg.get_long().unwrap_or_default();
    name.contains("password")
        || name.contains("secret")
        || arg
            .get_value_names()
            .is_some_and(|v| v.iter().any(|n| n.as_str().contains("PASS")))
}

/// The arguments a file's text gives (for the unit tests).
#[cfg(test)]
fn check_text(text: &str) -> Result<Vec<(String, OsString)>, String> {
    file_args(&command(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_arguments() {
        let args = check_text(
            "max-size = 1000\nlocal-domain = [\"a.example\", \"b.example\"]\nrequire-tls = true\n\
             lmtp = false\nhostname = \"mx.example\"\nmax-connections = 0x10\n",
        )
        .unwrap();
        let args: Vec<String> = args
            .into_iter()
            .map(|(_, a)| a.into_string().unwrap())
            .collect();
        let mut args = args;
        args.sort();
        assert_eq!(
            args,
            [
                "--hostname=mx.example",
                "--local-domain=a.example",
                "--local-domain=b.example",
                "--max-connections=16",
                "--max-size=1000",
                "--require-tls",
            ]
        );
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "lmtp = true\nfrobnicate = 1\n",
                "2: unknown key \"frobnicate\" (the keys are the long options of smtp serve)",
            ),
            (
                "\n\nmax-size = \"lots\"\n",
                "3: max-size: invalid value \"lots\": invalid digit found in string",
            ),
            (
                "max-size = [1, 2]\n",
                "1: max-size: takes one value, not an array",
            ),
            (
                "require-tls = \"maybe\"\n",
                "1: require-tls: expected true or false, not \"maybe\"",
            ),
            (
                "listen = [\"127.0.0.1:0\",\n  {a = 1}]\n",
                "2: listen: expected a string, a number or a boolean, not table",
            ),
            (
                "config = \"x.toml\"\n",
                "1: unknown key \"config\" (the keys are the long options of smtp serve)",
            ),
            (
                "io = \"threads\"\n",
                "1: io: invalid value \"threads\": [possible values: tokio, blocking]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(check_text(text).unwrap_err(), *want, "{text}");
        }
    }
}
