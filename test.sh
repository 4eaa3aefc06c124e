#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs the interop peers that
# are missing, then `cargo test --workspace` with any arguments given (`./test.sh --test
# send_interop` runs one test file). CI runs this too (.ci/run).
#
# The interop tests fail, not skip, when a peer is missing, so this installs them
# (quietly, and only what is missing): swaks with Perl's TLS modules, Postfix for its
# smtp-sink and smtp-source test programs only ("No configuration" keeps it from
# setting up a mail system), dnsmasq for DNS on loopback, and python3 with the PyPI
# packages below. Installing needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")"

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v swaks >/dev/null 2>&1 && perl -MNet::SSLeay -e1 >/dev/null 2>&1 \
  || need_apt+=(swaks libnet-ssleay-perl libio-socket-ssl-perl)
[ -x /usr/sbin/smtp-sink ] && [ -x /usr/sbin/smtp-source ] || need_apt+=(postfix)
# The relay's DNS tests run a real DNS server on loopback (dnsmasq-base: the binary only).
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if ((${#need_apt[@]})); then
  echo "postfix postfix/main_mailer_type select No configuration" \
    | "${sudo[@]}" debconf-set-selections
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# PyPI peers: aiosmtpd (a server), dkimpy and pyspf with dnspython (DKIM and SPF checked
# by implementations nobody here wrote; pynacl for dkimpy's Ed25519, RFC 8463),
# prometheus_client (its text-format parser).
if ! python3 -c 'import aiosmtpd, dkim, nacl, spf, dns.resolver, prometheus_client' 2>/dev/null; then
  pypi=(aiosmtpd dkimpy pynacl pyspf dnspython prometheus-client)
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${pypi[@]}" \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${pypi[@]}"
fi
echo "swaks: $(swaks --version 2>&1 | sed -n 1p)"
echo "smtp-sink: $(ls -l /usr/sbin/smtp-sink | awk '{print $NF}')"
echo "dnsmasq: $(PATH="$PATH:/usr/sbin" dnsmasq --version | sed -n 1p)"
python3 -c 'import aiosmtpd, sys; print("python", sys.version.split()[0], "aiosmtpd", aiosmtpd.__version__)'
python3 -m pip list 2>/dev/null | grep -iE '^(dkimpy|pynacl|pyspf|dnspython|prometheus.client) ' | tr -s ' ' | paste -sd, -

cargo test --workspace "$@"
