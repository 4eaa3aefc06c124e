//! `smtp serve --verify`: inbound sender authentication with mail-auth. SPF (RFC 7208) at
//! MAIL for the MAIL FROM and the HELO identities, DKIM (RFC 6376) and DMARC (RFC 7489) at
//! the end of DATA, and the one `Authentication-Results:` header (RFC 8601) put at the top
//! of the message; the policies `--spf-reject` and `--dmarc-reject`.
//!
//! The checks are DNS lookups: async, on the server's runtime (`--io tokio`) or on a small
//! runtime of their own (`--io blocking`, whose session threads block on them).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimError, Signature};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::ResolverOpts;
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult,
    MessageAuthenticator, SpfOutput, SpfResult,
};
use smtp_proto::server::Refusal;
use smtp_proto::{Host, Reply, ReversePath};

use crate::dkim::{DkimSpec, Signers};
use crate::policy::Verdict;

/// The sender-authentication options of `smtp serve`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Check senders: SPF at MAIL (the MAIL FROM and the HELO identities), DKIM and DMARC at
    /// the end of data; the results go into an Authentication-Results header at the top of
    /// the message. DNS: --dns-server, else the system's resolvers.
    #[arg(long)]
    verify: bool,
    /// Refuse MAIL with 550 5.7.23 when SPF fails for the MAIL FROM identity.
    #[arg(long, requires = "verify")]
    spf_reject: bool,
    /// Refuse a message with 550 5.7.1 at the end of data when it fails DMARC for a domain
    /// whose policy is p=reject.
    #[arg(long, requires = "verify")]
    dmarc_reject: bool,
    /// Sign relayed mail and mail from AUTH clients whose From: domain is DOMAIN with the
    /// key in KEYFILE (PEM), published at SELECTOR._domainkey.DOMAIN (repeatable).
    #[arg(long, value_name = "DOMAIN:SELECTOR:KEYFILE", value_parser = crate::dkim::parse_dkim_sign)]
    dkim_sign: Vec<DkimSpec>,
}

impl VerifyArgs {
    /// The `--dkim-sign` keys, loaded (for `--check-config`, which listens for nothing).
    pub(crate) fn check_keys(&self) -> Result<(), String> {
        Signers::load(&self.dkim_sign).map(drop)
    }

    /// The verifier (`None` without --verify) and the signing keys, on `runtime` (or a
    /// runtime of its own); `Err` says what cannot be used.
    pub(crate) fn load(
        &self,
        hostname: &str,
        dns_servers: &[SocketAddr],
        runtime: Option<tokio::runtime::Handle>,
    ) -> Result<(Option<Arc<Verifier>>, Arc<Signers>), String> {
        let signers = Signers::load(&self.dkim_sign)?;
        let verifier = match self.verify {
            false => None,
            true => Some(Arc::new(Verifier::new(
                hostname,
                dns_servers,
                self.spf_reject,
                self.dmarc_reject,
                runtime,
            )?)),
        };
        Ok((verifier, Arc::new(signers)))
    }
}

/// Past this size (1 MiB), parsing and hashing a message for DKIM takes over a
/// millisecond: [`Job::is_large`].
const LARGE_MESSAGE: usize = 1 << 20;

/// How long one DNS query may take before it is a `temperror`.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The `--verify` options, as the sessions share them.
pub(crate) struct Verifier {
    authenticator: MessageAuthenticator,
    /// The `authserv-id` (RFC 8601 §2.5): `--hostname`.
    hostname: String,
    spf_reject: bool,
    dmarc_reject: bool,
    runtime: Runtime,
}

/// Where the lookups run.
enum Runtime {
    /// The server's (`--io tokio`).
    Shared(tokio::runtime::Handle),
    /// One of its own (`--io blocking`): session threads block on it.
    Own(tokio::runtime::Runtime),
}

impl Runtime {
    fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            Runtime::Shared(handle) => handle,
            Runtime::Own(rt) => rt.handle(),
        }
    }
}

impl Verifier {
    /// A verifier asking `dns_servers` (the system's resolvers when empty), on `runtime`
    /// or, without one, on a runtime of its own. `Err` says why it cannot be built.
    pub(crate) fn new(
        hostname: &str,
        dns_servers: &[SocketAddr],
        spf_reject: bool,
        dmarc_reject: bool,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Result<Verifier, String> {
        let runtime = match runtime {
            Some(handle) => Runtime::Shared(handle),
            None => Runtime::Own(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("smtp-verify")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the DNS runtime: {e}"))?,
            ),
        };
        // The servers given, or the system's (resolv.conf); either way a query is a
        // temperror after DNS_TIMEOUT.
        let (config, mut options) = if dns_servers.is_empty() {
            read_system_conf().map_err(|e| format!("DNS: {e}"))?
        } else {
            let servers = smtp_relay::dns::servers_config(dns_servers);
            (servers, ResolverOpts::default())
        };
        options.timeout = DNS_TIMEOUT;
        let authenticator = {
            let _entered = runtime.handle().enter();
            MessageAuthenticator::new(config, options).map_err(|e| format!("DNS: {e}"))?
        };
        Ok(Verifier {
            authenticator,
            hostname: hostname.to_owned(),
            spf_reject,
            dmarc_reject,
            runtime,
        })
    }

    /// SPF for a transaction: the MAIL FROM identity (`postmaster@` the HELO name for a
    /// null sender, RFC 7208 §2.4) and the HELO identity (§2.3; not for an address
    /// literal, which has no record).
    pub(crate) async fn spf(&self, query: SpfQuery) -> Spf {
        let host = &self.hostname;
        let q = &query;
        // Both at once: a DNS server that does not answer costs one time-out, not two.
        let (mail_from, helo) = tokio::join!(
            self.authenticator
                .verify_spf(SpfParameters::verify_mail_from(
                    q.client,
                    &q.helo,
                    host,
                    &q.mail_from,
                )),
            async {
                match q.helo_is_domain {
                    true => Some(
                        self.authenticator
                            .verify_spf(SpfParameters::verify_ehlo(q.client, &q.helo, host))
                            .await,
                    ),
                    false => None,
                }
            }
        );
        Spf {
            query,
            mail_from,
            helo,
        }
    }

    /// [`Verifier::spf`] from a thread outside the runtime (`--io blocking`).
    pub(crate) fn spf_blocking(&self, query: SpfQuery) -> Spf {
        self.runtime.handle().block_on(self.spf(query))
    }

    /// The refusal of MAIL, with `--spf-reject`, for an SPF `fail` of the MAIL FROM
    /// identity (RFC 7372 §3.2's 5.7.23). A `temperror` is never refused.
    pub(crate) fn spf_verdict(&self, spf: &Spf) -> Option<Verdict> {
        if !self.spf_reject || spf.mail_from.result() != SpfResult::Fail {
            return None;
        }
        let text = format!(
            "SPF validation failed: {} does not designate {} as permitted sender",
            spf.mail_from.domain(),
            spf.query.client
        );
        Some(Verdict::reject(550, (5, 7, 23), text).unwrap_or(SPF_FAILED))
    }

    /// DKIM for every signature and DMARC for the `From:` domain of `message` (as
    /// received), with the `spf` of its transaction: the `Authentication-Results:` field
    /// and, with `--dmarc-reject`, the refusal of a message that fails DMARC for a domain
    /// whose policy is `p=reject` (never when a lookup timed out).
    pub(crate) async fn message(&self, message: &[u8], spf: Option<&Spf>) -> Checked {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            // Not a message mail-auth can read (no header section): nothing to report
            // but SPF.
            let mut results = AuthenticationResults::new(&self.hostname);
            if let Some(spf) = spf {
                results = spf.report(results);
            }
            return Checked {
                header: results.to_header(),
                refusal: None,
            };
        };
        let dkim = self.authenticator.verify_dkim(&parsed).await;
        let mut results = AuthenticationResults::new(&self.hostname);
        if let Some(spf) = spf {
            results = spf.report(results);
        }
        // RFC 8601 §2.7.1's `header.d` for each signature: mail-auth names `header.i`
        // instead when the signature has `i=` (dkimpy always writes one), so its entries
        // are written from the signatures without it.
        let by_domain: Vec<Option<Signature>> = dkim
            .iter()
            .map(|d| {
                d.signature().map(|s| Signature {
                    i: String::new(),
                    ..s.clone()
                })
            })
            .collect();
        let reported: Vec<DkimOutput<'_>> = dkim
            .iter()
            .zip(&by_domain)
            .map(|(d, s)| {
                let d = reported_result(d);
                match s {
                    Some(s) => d.with_signature(s),
                    None => d,
                }
            })
            .collect();
        results = results.with_dkim_results(&reported, parsed.from());
        let Some(spf) = spf else {
            return Checked {
                header: results.to_header(),
                refusal: None,
            };
        };
        let dmarc = self
            .authenticator
            .verify_dmarc(DmarcParameters::new(
                &parsed,
                &dkim,
                spf.mail_from_domain(),
                &spf.mail_from,
            ))
            .await;
        let header = results.with_dmarc_result(&dmarc).to_header();
        let temperror = spf.mail_from.result() == SpfResult::TempError
            || dkim
                .iter()
                .any(|d| matches!(d.result(), DkimResult::TempError(_)))
            || matches!(dmarc.result(), DmarcResult::TempError(_));
        let refused = self.dmarc_reject
            && !temperror
            && matches!(dmarc.result(), DmarcResult::Fail(_))
            && dmarc.policy() == mail_auth::dmarc::Policy::Reject;
        let refusal = refused.then(|| {
            let text = format!("Rejected by DMARC policy for {}", dmarc.domain());
            Verdict::reject(550, (5, 7, 1), text).unwrap_or(DMARC_FAILED)
        });
        Checked { header, refusal }
    }

    /// [`Verifier::message`] from a thread outside the runtime (`--io blocking`).
    pub(crate) fn message_blocking(&self, message: &[u8], spf: Option<&Spf>) -> Checked {
        self.runtime.handle().block_on(self.message(message, spf))
    }

    /// The server's name, which forged `Authentication-Results:` fields claim.
    pub(crate) fn hostname(&self) -> &str {
        &self.hostname
    }
}

/// A DKIM result as reported: a body hash that does not match is `fail` (RFC 6376 §6.1.3's
/// PERMFAIL "body hash did not verify"; RFC 8601 §2.7.1: the signature failed
/// verification), where mail-auth says `neutral`. DMARC counts only `pass` either way.
fn reported_result<'x>(output: &DkimOutput<'x>) -> DkimOutput<'x> {
    match output.result() {
        DkimResult::Neutral(e @ mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            DkimOutput::fail(e.clone())
        }
        _ => output.clone(),
    }
}

/// When the refusal's text could not be a reply (never expected).
const SPF_FAILED: Verdict = Verdict::Reject(Refusal::constant(Reply::fixed(
    550,
    Some((5, 7, 23)),
    "SPF validation failed",
)));

/// When the refusal's text could not be a reply (never expected).
const DMARC_FAILED: Verdict = Verdict::Reject(Refusal::constant(Reply::fixed(
    550,
    Some((5, 7, 1)),
    "Rejected by DMARC policy",
)));

/// What SPF is checked for: the client, its HELO name and the MAIL FROM address.
pub(crate) struct SpfQuery {
    client: IpAddr,
    helo: String,
    helo_is_domain: bool,
    /// Empty for the null sender.
    mail_from: String,
}

impl SpfQuery {
    /// The identities of a MAIL command from `client` after `helo`.
    pub(crate) fn new(client: IpAddr, helo: Option<&Host<'_>>, from: &ReversePath<'_>) -> Self {
        SpfQuery {
            client,
            helo: helo.map_or_else(String::new, |h| h.to_string()),
            helo_is_domain: matches!(helo, Some(Host::Domain(_))),
            mail_from: from.mailbox().map_or_else(String::new, |m| m.to_string()),
        }
    }
}

/// A transaction's SPF results, kept for the `Authentication-Results:` field and DMARC.
pub(crate) struct Spf {
    query: SpfQuery,
    mail_from: SpfOutput,
    helo: Option<SpfOutput>,
}

impl Spf {
    /// The domain SPF was checked for: MAIL FROM's, or the HELO name for a null sender
    /// (RFC 7489 §3.1.2).
    fn mail_from_domain(&self) -> &str {
        self.query
            .mail_from
            .rsplit_once('@')
            .map_or(&self.query.helo, |(_, d)| d)
    }

    /// `results` with the `spf` entries: `smtp.mailfrom`, then `smtp.helo`.
    fn report<'x>(&self, results: AuthenticationResults<'x>) -> AuthenticationResults<'x> {
        let q = &self.query;
        let results =
            results.with_spf_mailfrom_result(&self.mail_from, q.client, &q.mail_from, &q.helo);
        match &self.helo {
            Some(helo) => results.with_spf_ehlo_result(helo, q.client, &q.helo),
            None => results,
        }
    }
}

/// The end-of-data checks of one message, taken from its session while they run.
pub(crate) struct Job {
    verifier: Arc<Verifier>,
    message: Vec<u8>,
    spf: Option<Spf>,
}

impl Job {
    /// `message` (as received) to check with the `spf` of its transaction.
    pub(crate) fn new(verifier: Arc<Verifier>, message: Vec<u8>, spf: Option<Spf>) -> Job {
        Job {
            verifier,
            message,
            spf,
        }
    }

    /// Whether hashing the message takes long enough (milliseconds of CPU) that a tokio
    /// host should run the checks on its blocking pool, as it does a slow password hash.
    pub(crate) fn is_large(&self) -> bool {
        self.message.len() > LARGE_MESSAGE
    }

    /// Runs the checks; gives the message back with their outcome.
    pub(crate) async fn run(self) -> (Vec<u8>, Checked) {
        let checked = self
            .verifier
            .message(&self.message, self.spf.as_ref())
            .await;
        (self.message, checked)
    }

    /// [`Job::run`] from a thread outside the runtime (`--io blocking`).
    pub(crate) fn run_blocking(self) -> (Vec<u8>, Checked) {
        let checked = self
            .verifier
            .message_blocking(&self.message, self.spf.as_ref());
        (self.message, checked)
    }
}

/// One session's sender authentication, transaction by transaction: the SPF results of
/// MAIL, the message held until the end of data, and what the checks said of it.
#[derive(Default)]
pub(crate) struct SenderAuth {
    /// The transaction's SPF results (`--verify`, not for AUTH clients).
    spf: Option<Spf>,
    /// The client had authenticated at MAIL: not checked, signed.
    authenticated: bool,
    /// The message is signed (relayed, or from an AUTH client).
    sign: bool,
    /// The message, held until the end of data to be checked or signed.
    held: Option<Vec<u8>>,
    /// The outcome of the end-of-data checks, once they ran.
    checked: Option<Checked>,
}

impl SenderAuth {
    /// MAIL was accepted: a new transaction.
    pub(crate) fn mail(&mut self, spf: Option<Spf>, authenticated: bool) {
        self.spf = spf;
        self.authenticated = authenticated;
    }

    /// Whether the client had authenticated at MAIL.
    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The message starts: it is held whole when headers that depend on all of it go
    /// before it (checked, or signed); --max-size bounds it.
    pub(crate) fn start(&mut self, verify: bool, sign: bool) {
        self.sign = sign;
        self.checked = None;
        self.held = (verify || sign).then(Vec::new);
    }

    /// Keeps a piece of the message if it is held; `false`: it is not, write it.
    pub(crate) fn hold(&mut self, chunk: &[u8]) -> bool {
        match &mut self.held {
            Some(held) => {
                held.extend_from_slice(chunk);
                true
            }
            None => false,
        }
    }

    /// Whether the message is held.
    pub(crate) fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// End of data, `--verify`: the checks to run (the held message taken meanwhile),
    /// unless they ran; then [`SenderAuth::verified`]. Not for AUTH clients.
    pub(crate) fn job(&mut self, verifier: Option<&Arc<Verifier>>) -> Option<Job> {
        let verifier = verifier?;
        if self.authenticated || self.checked.is_some() {
            return None;
        }
        let message = self.held.take()?;
        Some(Job::new(Arc::clone(verifier), message, self.spf.take()))
    }

    /// The checks ran: the message comes back with their outcome.
    pub(crate) fn verified(&mut self, message: Vec<u8>, checked: Checked) {
        self.held = Some(message);
        self.checked = Some(checked);
    }

    /// The held message to write: its `Authentication-Results:` and `DKIM-Signature:`
    /// fields, then the message without forged results. `Ok(None)`: nothing is held;
    /// `Err`: the checks refused it (`--dmarc-reject`).
    pub(crate) fn release(
        &mut self,
        verifier: Option<&Verifier>,
        signers: &Signers,
    ) -> Result<Option<(String, Vec<u8>)>, Verdict> {
        let Some(held) = self.held.take() else {
            return Ok(None);
        };
        let checked = self.checked.take();
        if let Some(refused) = checked.as_ref().and_then(|c| c.refusal.clone()) {
            return Err(refused);
        }
        let message = match verifier {
            Some(v) => drop_forged_results(&held, v.hostname()),
            None => held,
        };
        let mut head = checked.map(|c| c.header).unwrap_or_default();
        if self.sign
            && let Some(signature) = signers.sign(&message)
        {
            head.push_str(&signature);
        }
        Ok(Some((head, message)))
    }

    /// The message goes (aborted, or refused for a loop).
    pub(crate) fn drop_message(&mut self) {
        self.held = None;
        self.checked = None;
    }
}

/// The outcome of the end-of-data checks.
pub(crate) struct Checked {
    /// The `Authentication-Results:` field, CRLF-terminated.
    pub(crate) header: String,
    /// `--dmarc-reject`'s refusal.
    pub(crate) refusal: Option<Verdict>,
}

/// `message` without the `Authentication-Results:` fields of its header section whose
/// `authserv-id` is `hostname` (any case): RFC 8601 §5, a sender must not be able to
/// forge this server's verdict. Other servers' fields stay.
pub(crate) fn drop_forged_results(message: &[u8], hostname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    let mut dropping = false;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        if line == b"\r\n" || line == b"\n" {
            // The end of the header section: the body is kept as it is.
            out.extend_from_slice(rest);
            break;
        }
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            dropping = claims(line, hostname);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        rest = tail;
    }
    out
}

/// Whether a header line is an `Authentication-Results:` field for `hostname`.
fn claims(line: &[u8], hostname: &str) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = line.split_at(colon);
    if !name
        .trim_ascii()
        .eq_ignore_ascii_case(b"Authentication-Results")
    {
        return false;
    }
    // authserv-id = value (RFC 8601 §2.2): the first token, before any ';', space or
    // comment.
    let value = value[1..].trim_ascii_start();
    let id_end = value
        .iter()
        .position(|&b| b == b';' || b == b'(' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let id = &value[..id_end];
    let id = id.strip_prefix(b"\"").unwrap_or(id);
    let id = id.strip_suffix(b"\"").unwrap_or(id);
    id.eq_ignore_ascii_case(hostname.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::drop_forged_results;

    #[test]
    fn forged_results_go_others_stay() {
        for (input, expected) in [
            (
                "Authentication-Results: mx.example.net; spf=pass\r\nFrom: a\r\n\r\nbody\r\n",
                "From: a\r\n\r\nbody\r\n",
            ),
            (
                "Authentication-Results: MX.Example.NET;\r\n\tdkim=pass\r\n header.d=x\r\nFrom: a\r\n\r\n",
                "From: a\r\n\r\n",
            ),
            (
                "authentication-results:mx.example.net (forged); none\r\nX: y\r\n\r\n",
                "X: y\r\n\r\n",
            ),
            (
                "Authentication-Results: other.example; spf=pass\r\nFrom: a\r\n\r\n",
                "Authentication-Results: other.example; spf=pass\r\nFrom: a\r\n\r\n",
            ),
            (
                "Authentication-Results: mx.example.network; spf=pass\r\n\r\n",
                "Authentication-Results: mx.example.network; spf=pass\r\n\r\n",
            ),
            (
                "From: a\r\n\r\nAuthentication-Results: mx.example.net; spf=pass\r\n",
                "From: a\r\n\r\nAuthentication-Results: mx.example.net; spf=pass\r\n",
            ),
        ] {
            let out = drop_forged_results(input.as_bytes(), "mx.example.net");
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{input:?}");
        }
    }
}
